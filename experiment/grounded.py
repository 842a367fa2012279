"""Fast word learning: which memory binds a new name to an object after one exposure (Hill et al., 2021).

The comparison behind docs/GROUNDED.md. Every variant (a memory core, or DCEM
without its reconstruction loss or with one memory column) trains PPO on
``grounded/FastBinding-N3`` in its own run folder, ``<root>/<variant>``, with
``resume=true``: a finished cell is skipped, a stopped one continues from its
last checkpoint, so the whole comparison is one command that can be rerun
until every cell is done. Each trained cell is then evaluated (sampled policy,
fresh episodes) on more objects (N = 5, 8), on object types never used in
training, and on names never used in training; the evaluation is stored next
to the run (``evaluation.json``) and reused.

A :class:`Task` picks the version of FastBinding (:data:`TASKS`): the paper's
(``explore``), objects shown with their names (``shown``), or the control
without binding (``fixed-names``); each has its own results folder and doc
block. On a shown task, DCEM cells also store where the memory looked
(:func:`retrieval_weight`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.agents.evaluation import make_evaluate
from mnemax.agents.ppo import make_ppo_env
from mnemax.envs import make
from mnemax.experiment.compare import Variant, parameter_count, resumable_run
from mnemax.experiment.markdown import replace_section
from mnemax.experiment.plots import _matplotlib, plot_return_curve
from mnemax.experiment.run_folder import load_metrics, write_json
from mnemax.experiment.runner import saved_states

TRAIN_ENV = "grounded/FastBinding-N3"

# PPO settings shared by every variant: configs/agent/ppo.yaml, plus the reconstruction loss at a weight
# where its gradient does not swamp the policy's (the first update's approx KL stays near 1e-3).
COMMON = ("agent.reconstruction_weight=0.1",)

VARIANTS = (
    Variant("dcem", ("backbone=dcem",)),
    Variant("dcem-no-reconstruction", ("backbone=dcem", "agent.reconstruction_weight=0")),
    Variant("dcem-single-column", ("backbone=dcem", "backbone.options.single_column=true")),
    Variant("dcem-read-first", ("backbone=dcem", "backbone.options.read_before_write=true")),
    Variant("lstm", ("backbone=lstm",)),
    Variant("gru", ("backbone=gru",)),
    Variant("transformer", ("backbone=transformer",)),
    Variant("s5", ("backbone=s5",)),
)


@dataclasses.dataclass(frozen=True)
class Task:
    """A version of FastBinding to train and evaluate on: env keyword arguments over the registered levels.

    ``label`` names the results folder and the doc's block (``explore``, the
    paper's task, keeps the unlabelled ones); ``drops`` lists evaluations that
    mean nothing for the task; ``settings`` are overrides of the agent for
    every variant of the task, ``core_settings`` ``(core, overrides)`` pairs for
    the variants with that core.
    """

    label: str
    kwargs: tuple[tuple[str, Any], ...]
    description: str
    drops: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    core_settings: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def variant_overrides(self, variant: Variant) -> tuple[str, ...]:
        """The task's overrides for ``variant``: its env and ``settings``, and ``core_settings`` of the variant's core."""
        own = tuple(o for core, options in self.core_settings if f"backbone={core}" in variant.overrides for o in options)
        return (*self.overrides, *own)

    @property
    def overrides(self) -> tuple[str, ...]:
        """The Hydra overrides that give a run this task's env and the task's agent ``settings``."""
        return (*(f"+env.kwargs.{key}={value}" for key, value in self.kwargs), *self.settings)

    @property
    def suffix(self) -> str:
        """``""`` for the paper's task, ``-<label>`` for the others (run names, folders, doc blocks)."""
        return "" if self.label == "explore" else f"-{self.label}"

    @property
    def results_name(self) -> str:
        """The task's results folders are ``<results>/<results_name>-<total steps>``; its figure ``docs/<results_name>.png``."""
        return f"grounded{self.suffix}"


SHOWN_MEMORY = (("dcem", ("backbone.options.capacity=32",)),)
"""DCEM's slots on the shown tasks: the longest episode there (N = 8: 8 shown steps and 18 to act) is 26 steps."""

WIDE_ENCODER = ("agent.encoder_sizes=[256]",)
"""The shown tasks' encoder: 256 units in front of every core. With the default 64, an LSTM on the
fixed-names control reached about 0.45 success after 5e5 steps, with 256 about 0.7 after 3.5e5
(2 seeds each, chosen on those seeds); the egocentric view is 9 x 9 x 10 numbers."""

TASKS = {
    task.label: task
    for task in (
        Task("explore", (), "the paper's task: the agent walks to the objects to hear their names; top-down grid view"),
        Task(
            "shown",
            (("discovery", "shown"), ("view", "egocentric")),
            "the objects are shown one per step with their names (no exploration); egocentric view; encoder width 256",
            settings=WIDE_ENCODER,
            core_settings=SHOWN_MEMORY,
        ),
        Task(
            "fixed-names",
            (("discovery", "shown"), ("view", "egocentric"), ("naming", "fixed")),
            "the control without binding: every object type keeps one name for good, so the words can be learned "
            "across episodes and no memory of the discovery phase is needed; shown objects, egocentric view; "
            "encoder width 256",
            drops=("N=3, held-out names",),
            settings=WIDE_ENCODER,
            core_settings=SHOWN_MEMORY,
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One column of the table: an env name and its keyword arguments."""

    label: str
    env: str
    kwargs: tuple[tuple[str, Any], ...] = ()


EVALUATIONS = (
    Evaluation("N=3", "grounded/FastBinding-N3"),
    Evaluation("N=5", "grounded/FastBinding-N5"),
    Evaluation("N=8", "grounded/FastBinding-N8"),
    Evaluation("N=3, held-out objects", "grounded/FastBinding-N3", (("held_out_objects", True),)),
    Evaluation("N=3, held-out names", "grounded/FastBinding-N3", (("held_out_names", True),)),
)


@dataclasses.dataclass
class Cell:
    """A trained variant: its run folder, summary, learning curve ``[U, S]`` and evaluated success ``{label: [S]}``."""

    variant: str
    run_dir: Path
    summary: dict[str, Any]
    env_steps: np.ndarray
    success: np.ndarray
    evaluation: dict[str, list[float]]
    parameters: int


def success_rate(rewards: jax.Array, terminated: jax.Array, truncated: jax.Array) -> jax.Array:
    """Finished episodes that ended with the reward (the named object touched), over all finished episodes.

    ``rewards``, ``terminated``, ``truncated``: ``[T, B]``. FastBinding pays 1
    only for the right object, so the return of an episode is its success.
    """
    finished = jnp.sum(jnp.logical_or(terminated, truncated))
    return jnp.sum(rewards) / jnp.maximum(finished, 1)


def evaluate_cell(config, states, evaluations: Sequence[Evaluation], episodes: int, key: jax.Array) -> dict[str, list[float]]:
    """Success rate per seed ``{label: [S]}`` of the policies in ``states`` on each evaluation env.

    ``episodes`` envs each play from a fresh reset for four times the env's
    longest episode; every episode that finishes counts.
    """
    out = {}
    for evaluation in evaluations:
        env, params = make_ppo_env(evaluation.env, **dict(evaluation.kwargs))
        steps = 4 * int(params.max_steps_in_episode)
        evaluate = make_evaluate(config.agent, env, params, episodes, steps)

        @jax.jit
        def seeds_success(states, key, evaluate=evaluate):
            played = jax.vmap(evaluate, in_axes=(0, None))(states, key)
            return jax.vmap(success_rate)(played.rewards, played.terminated, played.truncated)

        out[evaluation.label] = [float(x) for x in seeds_success(states, key)]
    return out


def task_evaluations(task: Task, evaluations: Sequence[Evaluation] = EVALUATIONS) -> list[Evaluation]:
    """``evaluations`` on ``task``'s version of each env, without the ones the task drops."""
    return [
        dataclasses.replace(e, kwargs=(*task.kwargs, *e.kwargs)) for e in evaluations if e.label not in task.drops
    ]


RETRIEVAL = "weight on the named object's slot"
"""The key of :func:`retrieval_weight`'s result in a DCEM cell's ``evaluation.json`` (shown tasks)."""


def retrieval_weight(config, states, task: Task, episodes: int, key: jax.Array) -> list[float]:
    """Per seed: the weight DCEM's language -> vision read puts on the target's slot when the instruction first comes.

    On a task whose discovery shows object ``i`` at step ``i`` (``shown``), the
    memory holds object ``i``'s view in slot ``i``, so a memory that binds
    looks there when it hears the target's name; reading the written slots
    evenly puts ``1 / (N + 1)`` on it (the instruction's own step is written
    first), or ``1 / N`` with ``read_before_write``. Mean over heads and over
    ``episodes`` fresh episodes, sampled policy.
    """
    if dict(task.kwargs).get("discovery") != "shown":
        raise ValueError(f"retrieval_weight needs a task with shown discovery (slot i holds object i); {task.label!r} has none.")
    env, params = make_ppo_env(TRAIN_ENV, **dict(task.kwargs))
    discovery_steps = make(TRAIN_ENV, **dict(task.kwargs))[0].discovery_steps
    evaluate = make_evaluate(config.agent, env, params, episodes, 2 * int(params.max_steps_in_episode),
                             info_keys=("time", "target"), sown=("slot_weights",))

    @jax.jit
    def per_seed(states, key):
        def one(state):
            played = evaluate(state, key)
            weights = jnp.mean(played.info["slot_weights"], axis=2)  # [T, B, M], mean over heads
            on_target = jnp.take_along_axis(weights[1:], played.info["target"][:-1, :, None], axis=-1)[..., 0]
            first = played.info["time"][:-1] == discovery_steps  # the step whose outcome is the first instruction
            return jnp.sum(on_target * first) / jnp.maximum(jnp.sum(first), 1)

        return jax.vmap(one)(states)

    return [float(x) for x in per_seed(states, key)]


def cell_overrides(variant: Variant, total_steps: int, seeds: int, common: Sequence[str], task: Task = TASKS["explore"]) -> list[str]:
    """The Hydra overrides of one variant's run."""
    return [
        f"env={TRAIN_ENV}", *task.variant_overrides(variant), f"seeds={seeds}", f"total_steps={total_steps}",
        f"name=grounded{task.suffix}-{variant.label}", *common, *variant.overrides,
    ]


def run_cell(variant: Variant, root: Path, total_steps: int, seeds: int, episodes: int,
             common: Sequence[str] = COMMON, evaluations: Sequence[Evaluation] | None = None, log: Callable = print,
             task: Task = TASKS["explore"]) -> Cell:
    """Train ``variant`` on ``task`` (or continue, or skip it when finished), then evaluate it once; see the module doc."""
    evaluations = task_evaluations(task) if evaluations is None else evaluations
    run_dir = root / variant.label
    config, result = resumable_run(cell_overrides(variant, total_steps, seeds, common, task), run_dir)
    stored = run_dir / "evaluation.json"
    evaluation = json.loads(stored.read_text()) if stored.exists() else {}
    looks = RETRIEVAL in evaluation or not (config.backbone.name == "dcem" and dict(task.kwargs).get("discovery") == "shown")
    if not evaluation or not looks:
        states = result.states if result.states is not None else saved_states(config, run_dir)[1]
        if not evaluation:
            log(f"{variant.label}: evaluating on {', '.join(e.label for e in evaluations)} ...")
            evaluation = evaluate_cell(config, states, evaluations, episodes, jax.random.key(1_000_003))
        if not looks:
            log(f"{variant.label}: measuring where the memory looks ...")
            evaluation[RETRIEVAL] = retrieval_weight(config, states, task, episodes, jax.random.key(1_000_033))
        write_json(stored, evaluation)
    metrics = load_metrics(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    return Cell(variant.label, run_dir, summary, metrics["env_steps"], metrics["episode_return"], evaluation, parameter_count(config))


def _spread(values: Sequence[float]) -> str:
    values = np.asarray(values, float)
    return f"{values.mean():.2f} ± {values.std():.2f}"


def markdown_table(cells: Sequence[Cell], evaluations: Sequence[Evaluation]) -> str:
    """One row per variant: parameters, final training success, success on every evaluation env, time."""
    head = ["variant", "parameters", "train success (last 10%)", *(e.label for e in evaluations), "steps/s", "compile s", "wall s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in cells:
        s = cell.summary
        row = [
            cell.variant,
            f"{cell.parameters:,}",
            f"{s['final_return_mean']:.2f} ± {s['final_return_std']:.2f}",
            *(_spread(cell.evaluation[e.label]) for e in evaluations),
            f"{s['steps_per_second']:,.0f}",
            f"{s['compile_seconds']:.0f}",
            f"{s['wall_seconds']:.0f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_seed_table(cells: Sequence[Cell], evaluations: Sequence[Evaluation]) -> str:
    """Every seed's success on every evaluation env (the figures the means above come from), and DCEM's retrieval weight."""
    seeds = len(next(iter(cells[0].evaluation.values())))
    lines = ["| variant | evaluation | " + " | ".join(f"seed {i}" for i in range(seeds)) + " |", "|---|---|" + "---|" * seeds]
    for cell in cells:
        for label in [*(e.label for e in evaluations), *([RETRIEVAL] if RETRIEVAL in cell.evaluation else [])]:
            lines.append(f"| {cell.variant} | {label} | " + " | ".join(f"{v:.2f}" for v in cell.evaluation[label]) + " |")
    return "\n".join(lines)


def plot(cells: Sequence[Cell], path: str | os.PathLike, task: Task = TASKS["explore"]) -> None:
    """Success rate against env steps, mean and ±1 std over seeds, one curve per variant."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4))
    for cell in cells:
        plot_return_curve(ax, cell.env_steps, cell.success, label=cell.variant)
    ax.set(xlabel="env steps (per seed)", ylabel=f"success rate ({TRAIN_ENV}{task.suffix.replace('-', ', ')})", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(cells: Sequence[Cell], doc: str | os.PathLike, figure: str | os.PathLike, command: str, machine: str,
                 evaluations: Sequence[Evaluation] | None = None, task: Task = TASKS["explore"]) -> None:
    """The generated block of ``doc`` for ``task`` (command, machine, tables, figure) and the figure.

    The paper's task writes the block ``results``; another task ``results-<label>``.
    """
    evaluations = task_evaluations(task) if evaluations is None else evaluations
    plot(cells, figure, task)
    doc, figure = Path(doc), Path(figure)
    seeds = len(next(iter(cells[0].evaluation.values())))
    block = (
        f"Command: `{command}`\n\nMachine: {machine}. {seeds} seeds per variant (trained together, vmapped), "
        f"trained on {TRAIN_ENV} ({task.description}); success = finished episodes that ended on the named object, "
        "evaluated with the sampled policy on fresh episodes of the same task.\n\n"
        f"{markdown_table(cells, evaluations)}\n\nPer seed:\n\n{per_seed_table(cells, evaluations)}\n\n"
        + (
            f"*{RETRIEVAL}*: DCEM's language -> vision read at the first instruction step, mean over heads and "
            "episodes, on the slot where the named object was shown; reading the written slots evenly gives "
            "1 / (N + 1) = 0.25, or 1 / N = 0.33 for dcem-read-first, which reads before writing the step.\n\n"
            if any(RETRIEVAL in cell.evaluation for cell in cells)
            else ""
        )
        + f"![success rate during training]({os.path.relpath(figure, doc.parent)})"
    )
    replace_section(doc, f"results{task.suffix}", block, "# Grounded fast word learning\n\n")
