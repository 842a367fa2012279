"""In-context RL: train S5 PPO on randomly projected CartPole tasks, plot the per-trial return on held-out ones.

    python scripts/incontext.py --total-steps 1e7 --trials 8 --episode-limit 50
    python scripts/incontext.py --env xminigrid/XLand-MiniGrid-R1-9x9 --trials 4 --episode-limit 20 \
        --doc docs/ENVIRONMENTS.md --section xland-incontext --figure docs/incontext-xland.png

Trains ``mnemax.agents.incontext.incontext_config`` on
``PrevActionReward(MetaRL(CartPole-v1, trials))`` training tasks, then plays one
meta-episode on each of ``--eval-envs`` held-out tasks with the untrained and
the trained policy, and writes the mean return of every trial (table, plot,
command) into the ``results`` block of docs/INCONTEXT.md (the prose around it
is kept) and docs/incontext.png. With ``--env xminigrid/<id>`` the tasks are
XLand-MiniGrid rulesets (``trivial-local``; train and held-out parts of the
benchmark) instead of projections (:func:`mnemax.agents.incontext.make_meta_env`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mnemax.experiment.runtime import configure_jax

configure_jax()  # sets an XLA flag, so it runs before gymnax (imported below) starts JAX's backend


import jax  # noqa: E402
import numpy as np  # noqa: E402

from mnemax.agents import make_train, make_trainer  # noqa: E402
from mnemax.agents.incontext import evaluate_trials, incontext_config, make_meta_env, runs_own_trials  # noqa: E402
from mnemax.experiment.markdown import replace_section  # noqa: E402
from mnemax.experiment.runner import seed_keys  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--episode-limit", type=int, default=50, help="steps per trial (inner max_steps_in_episode)")
    parser.add_argument("--total-steps", default="1e7", help="training env steps; 1e7 is read as 10000000")
    parser.add_argument("--seed", type=int, default=0, help="root seed; seed i of --seeds is train.py's seed i")
    parser.add_argument("--seeds", type=int, default=3, help="seeds trained together (vmapped) and reported one by one")
    parser.add_argument("--eval-envs", type=int, default=256, help="held-out tasks, one meta-episode each")
    parser.add_argument("--doc", default=str(ROOT / "docs" / "INCONTEXT.md"))
    parser.add_argument("--section", default="results", help="the <!-- SECTION --> block of --doc to write")
    parser.add_argument("--figure", default=str(ROOT / "docs" / "incontext.png"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    config = incontext_config(int(float(args.total_steps)))
    env, params = make_meta_env(args.env, args.trials, episode_limit=args.episode_limit)
    keys = jax.vmap(jax.random.split)(seed_keys(args.seed, args.seeds))  # [S, 2, 2]: a train and an eval key per seed
    train_keys, eval_keys = keys[:, 0], keys[:, 1]
    train = jax.jit(jax.vmap(make_train(config, env, params)))
    start = time.perf_counter()
    state, metrics = jax.block_until_ready(train(train_keys))
    seconds = time.perf_counter() - start
    evaluate = jax.jit(jax.vmap(
        lambda state, key: evaluate_trials(
            config, state, args.env, args.trials, key, num_envs=args.eval_envs, episode_limit=args.episode_limit
        )
    ))
    untrained = jax.jit(jax.vmap(make_trainer(config, env, params).init))(train_keys)  # what training starts from
    before = [np.asarray(x) for x in evaluate(untrained, eval_keys)]  # mean, standard error: [S, trials] each
    after = [np.asarray(x) for x in evaluate(state, eval_keys)]
    returns = np.asarray(metrics["episode_return"])  # [S, updates]
    final = np.nanmean(returns[:, -10:], axis=1)
    print(f"trained {config.total_steps} steps x {args.seeds} seeds in {seconds:.0f}s; meta-episode return at the end {final.round(1)}")
    for name, (mean, err) in (("untrained", before), ("trained", after)):
        for seed, (m, e) in enumerate(zip(mean, err)):
            print(name, f"seed {seed}:", " ".join(f"trial {i + 1}: {a:.3g} +- {b:.2g}" for i, (a, b) in enumerate(zip(m, e))))
    write_doc(args, argv, config, seconds, before, after, metrics)


def in_context_gains(after: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's last-trial minus first-trial return and its standard error: ``([S], [S])``."""
    mean, err = after
    return mean[:, -1] - mean[:, 0], np.hypot(err[:, -1], err[:, 0])


def write_doc(args, argv, config, seconds, before, after, metrics) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trials = np.arange(1, args.trials + 1)
    seeds = range(before[0].shape[0])
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, (mean, _), color in (("untrained", before, "tab:gray"), ("trained", after, "tab:blue")):
        for seed in seeds:
            left.plot(trials, mean[seed], marker="o", color=color, alpha=0.8, label=label if seed == 0 else None)
    left.set(xlabel="trial within the meta-episode", ylabel="mean return (held-out tasks), one line per seed", xticks=trials)
    left.legend()
    steps = np.asarray(metrics["env_steps"])  # [S, updates]
    for seed in seeds:
        right.plot(steps[seed], np.asarray(metrics["episode_return"])[seed], label=f"seed {seed}")
    right.set(xlabel="env steps", ylabel="meta-episode return (training tasks)")
    right.legend()
    figure.tight_layout()
    figure.savefig(args.figure, dpi=120)
    cell = lambda mean, err, seed, i: f"{mean[seed, i]:.3g} ± {err[seed, i]:.2g}"  # noqa: E731
    header = "| trial | untrained, mean over seeds | " + " | ".join(f"trained, seed {s}" for s in seeds) + " |"
    rows = "\n".join(
        f"| {i + 1} | {before[0][:, i].mean():.3g} | " + " | ".join(cell(*after, s, i) for s in seeds) + " |"
        for i in range(args.trials)
    )
    gains, gain_errs = in_context_gains(after)
    per_seed = ", ".join(f"{g:+.2g} ± {e:.2g}" for g, e in zip(gains, gain_errs))
    learned = int(np.sum(gains > 2.0 * gain_errs))
    tasks = "rulesets" if runs_own_trials(args.env) else "projections"
    verdict = (
        f"Last trial minus first, per seed: {per_seed}. On {learned} of {len(gains)} seeds the gain exceeds twice "
        "its standard error, i.e. the agent learns within the meta-episode there; where it does not, PPO has "
        f"learnt one policy that works across {tasks} from the first trial."
    )
    backbone = config.backbone
    held_out = "the benchmark's held-out rulesets" if runs_own_trials(args.env) else "`MetaRL(eval_tasks=True)`"
    figure_link = os.path.relpath(args.figure, Path(args.doc).resolve().parent)
    block = f"""![per-trial return]({figure_link})

{header}
|{"---|" * (len(seeds) + 2)}
{rows}

{verdict}

Mean return ± standard error over {args.eval_envs} held-out tasks (sampled actions), one
meta-episode each of {args.trials} trials of at most {args.episode_limit} steps on {args.env}.
Trained for {config.total_steps:,} env steps per seed, {len(gains)} seeds together (vmapped; seed i is
`train.py`'s seed i under root seed {args.seed}), in {seconds:.0f} s on a 2-core CPU:
PPO `mnemax.agents.incontext.incontext_config`, {config.num_envs} envs x {config.num_steps} steps,
{config.update_epochs} epochs x {config.num_minibatches} minibatches, learning rate {config.learning_rate:g} annealed,
backbone `{backbone.name}` {dict(backbone.options).get("num_layers")} layers x {backbone.features}.
The evaluation is `mnemax.agents.incontext.evaluate_trials`
(acting with the trained parameters on {held_out}, `mnemax.agents.make_evaluate`).

Reproduce:

```
python scripts/incontext.py {" ".join(argv)}
```
"""
    # Only the block is the script's: the explanation and the reading of the results around it survive a rerun.
    replace_section(args.doc, args.section, block, "# In-context RL\n\n")


if __name__ == "__main__":
    main()
