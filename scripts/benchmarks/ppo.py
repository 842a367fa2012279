"""PPO throughput: environment steps per second after compilation, and compile seconds.

Each case builds a trainer, initialises a runner state, and times one jitted
call that runs ``updates`` PPO updates (``lax.scan`` of ``trainer.update``);
steps/s = ``num_envs * num_steps * updates * seeds / seconds``.

Ratios are taken only against a peer run in the same process at the same
settings: memorax's PPO (:mod:`benchmarks.memorax_peer`, installed by the
``bench`` extra), timed call after call with mnemax's so that each round's
ratio shares the machine's state of the moment. Figures measured elsewhere
(purejaxrl, popjaxrl) are history in docs/BENCHMARKS.md, never a denominator.
"""

from __future__ import annotations

import dataclasses

import gymnax
import jax
import jax.numpy as jnp

from benchmarks.timing import Table, gigaflops, measure, measure_interleaved, megabytes
from mnemax.agents import PPOConfig, make_ppo_env, make_trainer
from mnemax.agents.ppo import make_network, make_rollout
from mnemax.agents.trainer import action_space
from mnemax.backbones import BackboneSpec
from mnemax.backbones.scan import resettable_scan

# purejaxrl's CartPole PPO (the PPOConfig defaults).
PUREJAXRL_FF = PPOConfig()
# purejaxrl's recurrent PPO: GRU 128 after a 128-wide embedding, 4 envs x 128 steps, 4 x 4.
PUREJAXRL_RNN = PPOConfig(encoder_sizes=(128,), head_sizes=(128,), activation="relu")
# popjaxrl's POPGym PPO: 64 envs x 1024 steps, 30 epochs x 8 minibatches, encoder 128 -> 256, heads 128-128.
POPJAXRL = PPOConfig(
    num_envs=64,
    num_steps=1024,
    update_epochs=30,
    num_minibatches=8,
    learning_rate=5e-5,
    anneal_lr=False,
    gae_lambda=1.0,
    ent_coef=0.0,
    vf_coef=1.0,
    encoder_sizes=(128, 256),
    head_sizes=(128, 128),
    activation="leaky_relu",
)
GRU_256 = BackboneSpec("gru", 256)
GRU_128 = BackboneSpec("gru", 128)
GRU_64 = BackboneSpec("gru", 64)
S5_POPJAXRL = BackboneSpec.from_dict("s5", 256, {"num_layers": 4, "state_size": 256})
# The S5 of configs/backbone/s5.yaml (the default `python scripts/train.py`): 2 layers x 64, state 64.
S5_DEFAULT = BackboneSpec.from_dict("s5", 64, {"num_layers": 2, "state_size": 64})



def _env(env_name: str):
    """CartPole-v1 as gymnax makes it (purejaxrl's setting); POPGym tasks as mnemax's PPO sees them."""
    return gymnax.make(env_name) if env_name == "CartPole-v1" else make_ppo_env(env_name)


def _case(config: PPOConfig, env_name: str, updates: int, seeds: int = 1):
    """A function of a runner state running ``updates`` updates, its initial state, and steps per call."""
    env, params = _env(env_name)
    config = dataclasses.replace(config, total_steps=config.steps_per_update * updates)
    trainer = make_trainer(config, env, params)

    def run(state):
        return jax.lax.scan(lambda s, _: trainer.update(s), state, None, length=updates)

    init = trainer.init
    if seeds > 1:
        run, init = jax.vmap(run), jax.vmap(init)
        state = jax.jit(init)(jax.random.split(jax.random.key(0), seeds))
    else:
        state = jax.jit(init)(jax.random.key(0))
    return run, state, config.steps_per_update * updates * seeds


def _parameters(state, seeds: int = 1) -> int:
    """One seed's network parameters in a runner state (of ``seeds`` vmapped seeds)."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(state.params)) // seeds


def _minibatch_gradient(config: PPOConfig, env, env_params, rows: int, steps: int):
    """``(grad_fn, params, resets)``: the network's forward + backward pass over one minibatch of ``rows``
    whole sequences of ``steps`` steps (as in a recurrent update), with a loss that reads every output."""
    actions = action_space(env, env_params, "PPO")
    discrete, action_dim = actions.discrete, actions.size
    network = make_network(config, action_dim, discrete)
    obs_dim = jax.eval_shape(env.reset, jax.random.key(0), env_params)[0].size
    inputs, resets = jnp.ones((steps, rows, obs_dim)), jnp.zeros((steps, rows), bool).at[0].set(True)
    carry = network.initialize_carry(rows)
    params = network.init(jax.random.key(0), network.initialize_carry(1), inputs[:1, :1], resets[:1, :1])

    def loss(p):
        _, (policy, values) = network.apply(p, carry, inputs, resets)
        return jnp.sum(values) + sum(jnp.sum(x) for x in jax.tree.leaves(policy))

    return jax.grad(loss), params, resets


def _breakdown(name: str, config: PPOConfig, env_name: str) -> list:
    """Where one update's time goes: ``[name, update ms, rollout ms, gradient-step share ms, scan share ms]``.

    Gradient steps are estimated as ``update_epochs * num_minibatches`` network
    forward + backward passes on one minibatch (whole sequences of
    ``num_envs / num_minibatches`` envs); the scan share is the resettable
    linear recurrence alone at that shape, over every SSM layer (0 for cells).
    """
    env, params = make_ppo_env(env_name)
    config = dataclasses.replace(config, total_steps=config.steps_per_update)
    trainer = make_trainer(config, env, params)
    state = jax.jit(trainer.init)(jax.random.key(0))
    update = measure(lambda s: trainer.update(s)[1], state, repeats=5, min_seconds=1.0)
    rollout_fn = make_rollout(config, env, params)
    rollout = measure(lambda s: rollout_fn(s, jax.random.key(1))[1], state, repeats=5, min_seconds=1.0)
    rows, steps = config.num_envs // config.num_minibatches, config.num_steps
    gradient_fn, network_params, resets = _minibatch_gradient(config, env, params, rows, steps)
    gradient = measure(gradient_fn, network_params, repeats=5, min_seconds=1.0)
    steps_per_update = config.update_epochs * config.num_minibatches
    scan_ms = 0.0
    spec = config.backbone
    if spec is not None and spec.name == "s5":
        layer_states = spec.build().initialize_carry(rows)  # one complex [rows, P'] state per layer
        size = layer_states[0].shape[-1]
        drive = jnp.ones((steps, rows, size), jnp.complex64)
        transition = jnp.full((size,), 0.9 + 0.1j, jnp.complex64)

        def scan_loss(d):
            return jnp.sum(jnp.abs(resettable_scan(transition, d, resets, jnp.zeros((rows, size), jnp.complex64))[1]))

        scan = measure(jax.grad(scan_loss), drive, repeats=5, min_seconds=1.0)
        scan_ms = scan.median_seconds * 1e3 * steps_per_update * len(layer_states)
    return [
        name,
        update.median_seconds * 1e3,
        rollout.median_seconds * 1e3,
        gradient.median_seconds * 1e3 * steps_per_update,
        scan_ms,
        f"{scan_ms / (update.median_seconds * 1e3):.0%}",
    ]


def _arithmetic(name: str, fn, *args) -> list:
    """``[name, best ms, GFLOP, GFLOP/s]`` of ``jax.jit(fn)(*args)``: its fastest repeat and XLA's operation count."""
    timing = measure(fn, *args, repeats=5, min_seconds=5.0)
    flops = gigaflops(fn, *args)
    return [name, timing.best_seconds * 1e3, flops, flops / timing.best_seconds]


def _ratio(ours: list[float], theirs: list[float]) -> tuple[str, str]:
    """Per-round ``their seconds / our seconds`` (our speed-up): the median and the min-max, as text."""
    ratios = sorted(t / o for o, t in zip(ours, theirs))
    return f"{ratios[len(ratios) // 2]:.2f}x", f"{ratios[0]:.2f}x-{ratios[-1]:.2f}x"


def _peer_table(cases: list, quick: bool) -> Table:
    """mnemax's PPO and memorax's at identical settings, timed call after call in this process.

    ``cases`` are ``(name, config, env, updates)`` rows of the throughput table,
    whose compile column holds mnemax's compile seconds for the same programs
    (here they would be read from the compilation cache). A recurrent case
    also times mnemax with a separate critic torso, memorax's layout.
    """
    table = Table(
        "mnemax vs memorax PPO, same settings, interleaved in one process",
        ["case", "params: mnemax / separate critic / memorax", "memorax compile s",
         "steps/s: mnemax / separate critic / memorax", "ratio, defaults: median (min-max)",
         "ratio, like for like: median (min-max)"],
    )
    try:
        from benchmarks.memorax_peer import memorax_case
    except ImportError as error:
        table.note = f"Not measured: memorax is not installed ({error}); `pip install -e \".[bench]\"` installs it."
        print(table.note, flush=True)
        return table
    for name, config, env_name, case_updates in cases:
        ours, state, steps = _case(config, env_name, case_updates)
        env, env_params = _env(env_name)
        peer = memorax_case(dataclasses.replace(config, total_steps=steps), env, env_params, case_updates)
        assert peer.env_steps == steps, (peer.env_steps, steps)
        programs = [(peer.run, peer.args), (ours, (state,))]
        if config.recurrent:  # memorax's layout: a second encoder and core for the critic
            separate, separate_state, _ = _case(dataclasses.replace(config, separate_critic=True), env_name, case_updates)
            programs.append((separate, (separate_state,)))
        timings = measure_interleaved(programs, rounds=3 if quick else 7, min_seconds=0.0 if quick else 5.0)
        theirs, default = timings[0], timings[1]
        like = timings[2] if config.recurrent else default  # feed-forward networks are separate in both already
        params = [_parameters(state), _parameters(separate_state) if config.recurrent else "same", peer.parameters]
        rates = [steps / default.median_seconds,
                 steps / like.median_seconds if config.recurrent else "same", steps / theirs.median_seconds]
        table.rows.append([
            name, " / ".join(f"{p:,}" if isinstance(p, int) else p for p in params), theirs.compile_seconds,
            " / ".join(f"{r:,.0f}" if isinstance(r, float) else r for r in rates),
            "{} ({})".format(*_ratio(default.seconds, theirs.seconds)),
            "{} ({})".format(*_ratio(like.seconds, theirs.seconds)),
        ])
        print(table.rows[-1], flush=True)
    table.note = (
        "Ratio = mnemax steps/s over memorax steps/s, from each round's one call of every program (the same env "
        "steps per call), so above 1 means mnemax is faster. Same env (mnemax's, through a 5-value step adapter), "
        "batch, epochs, minibatches, learning-rate schedule, encoder, core width and head sizes. **memorax builds "
        "separate actor and critic networks**, each with its own encoder and core, so it runs a recurrent core "
        "twice where mnemax's default shared torso runs it once. *Defaults* compares the two libraries as they "
        "come; *like for like* compares memorax with mnemax configured the same way (`agent.separate_critic=true`, "
        "the middle figures). Feed-forward networks are separate in both (purejaxrl's layout), so there both "
        "ratios are the same comparison. memorax's S5 layer is its Memoroid (associative scan) in a pre-norm "
        "residual block followed by a gated feed-forward block; mnemax's is its own S5 layer with a GELU-GLU "
        "output, hence the different parameter counts. mnemax's compile seconds are in the throughput table."
    )
    return table


def run(quick: bool = False) -> list[Table]:
    small_rnn = dict(num_envs=8, num_steps=64, update_epochs=2, num_minibatches=2)
    if quick:  # small shapes that check the script runs; names say what was measured
        s5, gru_big, popjaxrl, ff64 = BackboneSpec("s5", 32), BackboneSpec("gru", 32), dataclasses.replace(POPJAXRL, **small_rnn), 16
        s5_name, gru_name, shape, seeds = "s5 1x32", "gru32", "8x64 (popjaxrl hparams, shrunk)", 2
    else:
        s5, gru_big, popjaxrl, ff64 = S5_POPJAXRL, GRU_256, POPJAXRL, 64
        s5_name, gru_name, shape, seeds = "s5 4x256", "gru256", "64x1024 (popjaxrl)", 8
    cases = [
        # name, config, env, updates, seeds, also run by memorax (gru and s5 at purejaxrl's settings, one seed)
        ("ff CartPole 4x128 (purejaxrl)", PUREJAXRL_FF, "CartPole-v1", 2 if quick else 20, 1, True),
        (f"ff CartPole {ff64}x128, {seeds} seeds", dataclasses.replace(PUREJAXRL_FF, num_envs=ff64),
         "CartPole-v1", 1 if quick else 5, seeds, False),
        ("gru128 RepeatPreviousEasy 4x128 (purejaxrl rnn)", dataclasses.replace(PUREJAXRL_RNN, backbone=GRU_128),
         "popgym/RepeatPreviousEasy", 2 if quick else 10, 1, True),
        (f"{s5_name} RepeatPreviousEasy 4x128 (purejaxrl rnn)", dataclasses.replace(PUREJAXRL_RNN, backbone=s5),
         "popgym/RepeatPreviousEasy", 2 if quick else 10, 1, False),
        ("s5 2x64 (configs default) RepeatPreviousEasy 4x128 (purejaxrl rnn)",
         dataclasses.replace(PUREJAXRL_RNN, backbone=S5_DEFAULT), "popgym/RepeatPreviousEasy", 2 if quick else 10, 1, True),
        ("gru64 RepeatPreviousEasy 4x128 (purejaxrl rnn; s5 2x64's width)",
         dataclasses.replace(PUREJAXRL_RNN, backbone=GRU_64), "popgym/RepeatPreviousEasy", 2 if quick else 10, 1, False),
        ("gru128 RepeatPreviousEasy 4x128 (purejaxrl rnn, separate critic)",
         dataclasses.replace(PUREJAXRL_RNN, backbone=GRU_128, separate_critic=True), "popgym/RepeatPreviousEasy",
         2 if quick else 10, 1, False),
        ("s5 2x64 RepeatPreviousEasy 4x128 (purejaxrl rnn, separate critic)",
         dataclasses.replace(PUREJAXRL_RNN, backbone=S5_DEFAULT, separate_critic=True), "popgym/RepeatPreviousEasy",
         2 if quick else 10, 1, False),
        ("gru128 RepeatPreviousEasy 64x128 (purejaxrl rnn, 64 envs)",
         dataclasses.replace(PUREJAXRL_RNN, backbone=GRU_128, num_envs=64), "popgym/RepeatPreviousEasy",
         1 if quick else 2, 1, True),
        (f"{gru_name} RepeatPreviousEasy {shape}", dataclasses.replace(popjaxrl, backbone=gru_big),
         "popgym/RepeatPreviousEasy", 1, 1, False),
        (f"{s5_name} RepeatPreviousEasy {shape}", dataclasses.replace(popjaxrl, backbone=s5),
         "popgym/RepeatPreviousEasy", 1, 1, False),
    ]
    table = Table(
        "PPO throughput (steps/s after compilation)",
        ["case", "parameters", "env steps per call", "compile s", "seconds per call", "steps/s", "peak MB"],
        note=(
            "One call runs the listed number of whole PPO updates (rollout, GAE, all epochs) under one jit. "
            "Parameters are one seed's network. Compare cores like for like: same shape and width (s5 2x64 with "
            "gru64, s5 4x256 with gru256), with the parameter counts beside them; gru128 against s5 2x64 differs "
            "in both. Peer ratios are in the next table."
        ),
    )
    for name, config, env_name, updates, seeds, _ in cases:
        fn, state, steps = _case(config, env_name, updates, seeds)
        # Short calls repeat for 5 s so that the median rides out a noisy machine; popjaxrl's shape runs once.
        long = steps >= 65536
        m = measure(fn, state, repeats=1 if quick or long else 3, min_seconds=0.0 if quick or long else 5.0, warmup=not long)
        table.rows.append([name, _parameters(state, seeds), steps, m.compile_seconds, m.median_seconds,
                           steps / m.median_seconds, megabytes(m.peak_bytes)])
        print(table.rows[-1], flush=True)
    peers = _peer_table([case[:4] for case in cases if case[5]], quick)
    breakdown = Table(
        "Where one recurrent update's time goes (purejaxrl rnn shape, 4 envs x 128 steps, 4 epochs x 4 minibatches)",
        ["case", "update ms", "rollout ms", "16 x network fwd+bwd ms", "16 x scan fwd+bwd ms", "scan share"],
        note=(
            "The network passes are one minibatch each (1 env x 128 steps), as in the update's 16 gradient steps; "
            "the scan columns time only the S5 layers' resettable linear recurrence at that shape. A small share "
            "means a parallel scan cannot speed the update up much on this machine: the rest is per-operation "
            "cost of many small matrix products, normalisations and the optimiser."
        ),
    )
    for name, backbone in [("gru128", GRU_128), ("s5 2x64 (configs default)", S5_DEFAULT)] + (
        [] if quick else [("s5 4x256", S5_POPJAXRL)]
    ):
        breakdown.rows.append(_breakdown(name, dataclasses.replace(PUREJAXRL_RNN, backbone=backbone), "popgym/RepeatPreviousEasy"))
        print(breakdown.rows[-1], flush=True)
    rows, steps = (2, 64) if quick else (POPJAXRL.num_envs // POPJAXRL.num_minibatches, POPJAXRL.num_steps)
    shape = f"{rows} envs x {steps} steps" + (", shrunk" if quick else ", the minibatch of popjaxrl's shape")
    arithmetic = Table(
        f"Arithmetic of one recurrent PPO gradient step ({shape})",
        ["case", "best ms", "GFLOP", "GFLOP/s"],
    )
    env, env_params = make_ppo_env("popgym/RepeatPreviousEasy")
    for name, backbone in [(f"{s5_name} forward + backward", s5), (f"{gru_name} forward + backward", gru_big)]:
        config = dataclasses.replace(POPJAXRL, backbone=backbone)
        gradient_fn, network_params, _ = _minibatch_gradient(config, env, env_params, rows, steps)
        arithmetic.rows.append(_arithmetic(name, gradient_fn, network_params))
        print(arithmetic.rows[-1], flush=True)
    width = s5.features  # the lone product is the step's most common operation: a [tokens, width] Dense layer
    product = (jnp.ones((rows * steps, width)), jnp.ones((width, width)))
    arithmetic.rows.append(_arithmetic(f"lone product [{rows * steps}, {width}] @ [{width}, {width}]", jnp.matmul, *product))
    s5_row, product = arithmetic.rows[0], arithmetic.rows[-1]
    updates = POPJAXRL.update_epochs * POPJAXRL.num_minibatches
    arithmetic.note = (
        "GFLOP is XLA's operation count for the compiled call; the network has popjaxrl's encoder and heads. "
        "Times are the fastest of at least 5 s of repeats, so both rates are the machine's best. "
        f"The S5 step runs at {s5_row[3] / product[3]:.0%} of the lone product's rate"
        + ("." if quick else f"; an update at popjaxrl's shape is {updates} such steps plus its rollout.")
    )
    return [table, peers, breakdown, arithmetic]
