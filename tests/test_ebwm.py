"""The energy-based world model: thinking lowers energy, attention leaks nothing, second-order gradients are right,
imagination is reproducible, thinking helps on a linear system, Dreamer trains on it, bad settings are one sentence."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemax.experiment.composition import load_run_config
from mnemax.experiment.config import ConfigError
from mnemax.worldmodels import SequenceBatch, WorldModel, make_world_model
from mnemax.worldmodels.ebwm import EBWMConfig, target_vector, think
from mnemax.worldmodels.energy_transformer import attention_layout
from mnemax.worldmodels.protocol import flatten_time
from mnemax.worldmodels.training import fit_world_model

TINY = EBWMConfig(hidden=16, layers=2, heads=2, context=4, thinking_steps=2)
OBS, ACTIONS, T, B = 3, 1, 6, 2


def tiny_model(**changes):
    return make_world_model(EBWMConfig(**{**TINY.__dict__, **changes}), (OBS,), ACTIONS)


def random_batch(key, resets=((0, 0), (0, 1), (3, 1))) -> SequenceBatch:
    obs_key, action_key, reward_key = jax.random.split(key, 3)
    first = jnp.zeros((T, B), bool)
    for t, b in resets:
        first = first.at[t, b].set(True)
    return SequenceBatch(
        obs=jax.random.normal(obs_key, (T, B, OBS)),
        prev_actions=jax.random.normal(action_key, (T, B, ACTIONS)),
        rewards=jax.random.normal(reward_key, (T, B)),
        continues=jnp.ones((T, B)),
        resets=first,
    )


MODEL = tiny_model()
PARAMS = MODEL.init(jax.random.key(0))


@jax.jit
def energies(params, observed, candidates, actions, segments):
    """Energies ``[B, C]`` of candidate i following observed token i, under the EBT layout."""
    length = observed.shape[1]
    mask, distance = attention_layout(segments, jnp.arange(length), segments, MODEL.config.context)
    return MODEL.apply(params, observed, candidates, actions, mask, distance)


def random_tokens(seed):
    keys = jax.random.split(jax.random.key(seed), 3)
    observed = jax.random.normal(keys[0], (1, T, OBS + ACTIONS))
    candidates = jax.random.normal(keys[1], (1, T, MODEL.target_size))
    actions = jax.random.normal(keys[2], (1, T, ACTIONS))
    return observed, candidates, actions


def test_the_model_follows_the_protocol_and_refuses_images_in_one_sentence():
    assert isinstance(MODEL, WorldModel) and MODEL.targets == ("observation", "reward", "continue")
    with pytest.raises(ValueError, match="predicts vector observations, got shape \\(8, 8, 3\\)") as info:
        make_world_model(TINY, (8, 8, 3), 2)
    assert "\n" not in str(info.value)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_a_thinking_step_lowers_the_energy_of_a_fixed_candidate(seed):
    observed, candidates, actions = random_tokens(seed)
    segments = jnp.zeros((1, T), jnp.int32)
    energy = lambda y: energies(PARAMS, observed, y, actions, segments)[1]
    refined, before = think(energy, candidates, jnp.float32(0.01), MODEL.config.grad_clamp)
    after = energy(refined)
    assert np.all(np.asarray(after) < np.asarray(before)), (before, after)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), i=st.integers(0, T - 1), j=st.integers(0, T - 1), reset=st.integers(1, T - 1))
def test_attention_leaks_nothing_across_candidates_the_future_or_a_reset(seed, i, j, reset):
    observed, candidates, actions = random_tokens(seed)
    segments = jnp.zeros((1, T), jnp.int32)
    out, base = energies(PARAMS, observed, candidates, actions, segments)
    if j != i:  # another candidate
        _, changed = energies(PARAMS, observed, candidates.at[0, j].add(1.0), actions, segments)
        np.testing.assert_allclose(changed[0, i], base[0, i], atol=1e-6)
        assert not np.allclose(changed[0, j], base[0, j], atol=1e-6)
    if i < T - 1:  # any observed token after i
        later = observed.at[0, i + 1 :].add(1.0)
        _, changed = energies(PARAMS, later, candidates, actions, segments)
        np.testing.assert_allclose(changed[0, i], base[0, i], atol=1e-6)
    split = jnp.arange(T)[None] >= reset  # a reset at `reset`: tokens before it belong to another episode
    segments = split.astype(jnp.int32)
    out, base = energies(PARAMS, observed, candidates, actions, segments)
    earlier = observed.at[0, :reset].add(1.0)
    changed_out, changed = energies(PARAMS, earlier, candidates, actions, segments)
    np.testing.assert_allclose(changed[0, reset:], base[0, reset:], atol=1e-6)
    np.testing.assert_allclose(changed_out[0, reset:], out[0, reset:], atol=1e-6)
    assert not np.allclose(changed[0, :reset], base[0, :reset], atol=1e-6)


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**16), reset_step=st.integers(1, T - 1))
def test_the_state_window_sees_what_the_sequence_pass_sees(seed, reset_step):
    batch = random_batch(jax.random.key(seed), resets=((0, 0), (0, 1), (reset_step, 1)))
    each = jax.jit(MODEL.observe_each)(PARAMS, MODEL.initial_state(B), batch, jax.random.key(0))
    state = MODEL.initial_state(B)
    step = jax.jit(MODEL.observe_step)
    for t in range(T):
        state = step(PARAMS, state, batch.obs[t], batch.prev_actions[t], batch.resets[t], jax.random.key(0))
        np.testing.assert_allclose(state.embedding, each.embedding[t], atol=1e-5)
        np.testing.assert_array_equal(state.valid, each.valid[t])


def test_second_order_gradients_are_finite_and_match_finite_differences():
    # One thinking step: its start does not depend on the parameters, so detaching it changes nothing and the
    # surrogate gradient of the detached recipe is the loss's true gradient.
    model, batch, key = tiny_model(thinking_steps=1), random_batch(jax.random.key(1)), jax.random.key(2)
    loss = jax.jit(lambda p: model.loss(p, batch, key)[0])
    grads = jax.jit(jax.grad(loss))(PARAMS)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    # The loss reads candidates only, so the energy head's weights reach it only through grad_y E: second order.
    energy_grad = grads["net"]["params"]["energy"]["kernel"]
    assert float(jnp.max(jnp.abs(energy_grad))) > 0.0
    leaves, tree = jax.tree.flatten(PARAMS)
    keys = jax.random.split(jax.random.key(3), len(leaves))
    direction = jax.tree.unflatten(tree, [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
    direction = jax.tree.map(lambda v: v / optax.tree.norm(direction), direction)  # unit length
    only_energy = jax.tree.map(jnp.zeros_like, direction)
    only_energy["net"]["params"]["energy"]["kernel"] = direction["net"]["params"]["energy"]["kernel"]
    for d in (direction, only_energy):
        eps = 1e-2 if d is direction else 1e-1
        shifted = lambda s: loss(jax.tree.map(lambda p, v: p + s * v, PARAMS, d))
        numeric = (shifted(eps) - shifted(-eps)) / (2 * eps)
        analytic = sum(jnp.sum(g * v) for g, v in zip(jax.tree.leaves(grads), jax.tree.leaves(d)))
        np.testing.assert_allclose(analytic, numeric, rtol=3e-2, atol=1e-4)


def imagination_policy(features, key):
    return jnp.tanh(features[:, :ACTIONS] + jax.random.normal(key, (features.shape[0], ACTIONS)))


def test_imagination_is_deterministic_under_a_key_and_vmaps_over_seeds():
    batch = random_batch(jax.random.key(4))
    starts = flatten_time(MODEL.observe_each(PARAMS, MODEL.initial_state(B), batch, jax.random.key(0)))
    imagine = jax.jit(lambda key: MODEL.imagine(PARAMS, starts, imagination_policy, 3, key))
    first, again, other = imagine(jax.random.key(5)), imagine(jax.random.key(5)), imagine(jax.random.key(6))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(first.rewards, other.rewards)
    assert first.features.shape == (4, T * B, TINY.hidden) and first.rewards.shape == (3, T * B)
    assert np.all((first.continues >= 0) & (first.continues <= 1))
    keys = jax.random.split(jax.random.key(7), 3)
    batched = jax.vmap(imagine)(keys)
    for s in range(3):
        for a, b in zip(jax.tree.map(lambda x: x[s], batched), imagine(keys[s])):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_thinking_steps_at_inference_are_one_compilation_and_change_the_prediction():
    state = MODEL.observe(PARAMS, MODEL.initial_state(B), random_batch(jax.random.key(8)), jax.random.key(0))
    action = jnp.ones((B, ACTIONS))
    predict = jax.jit(lambda steps: MODEL.think_next(PARAMS, state, action, jax.random.key(9), steps).target)
    results = [predict(jnp.int32(n)) for n in (0, 1, 4)]
    assert predict._cache_size() == 1
    assert not np.allclose(results[0], results[1]) and not np.allclose(results[1], results[2])


def test_the_direct_baseline_is_the_same_transformer_within_ten_percent_of_the_parameters():
    sizes = {}
    for head in ("energy", "direct"):
        model = make_world_model(EBWMConfig(head=head), (3,), 1)  # Pendulum-v1's shapes at the default size
        sizes[head] = sum(x.size for x in jax.tree.leaves(model.init(jax.random.key(0))))
    assert abs(sizes["direct"] - sizes["energy"]) <= 0.1 * sizes["energy"], sizes
    direct = tiny_model(head="direct")
    params = direct.init(jax.random.key(0))
    state = direct.observe(params, direct.initial_state(B), random_batch(jax.random.key(12)), jax.random.key(0))
    one, many = (direct.think_next(params, state, jnp.ones((B, ACTIONS)), jax.random.key(0), n).target for n in (1, 8))
    np.testing.assert_array_equal(one, many)  # a direct prediction does not think
    loss, metrics = direct.loss(params, random_batch(jax.random.key(13)), jax.random.key(0))
    assert float(loss) > 0 and float(metrics["first_step_error"]) == pytest.approx(float(loss))


def test_best_of_k_keeps_the_lowest_energy_candidate():
    model = tiny_model(candidates=5, candidate_noise=0.5)
    state = model.observe(PARAMS, model.initial_state(B), random_batch(jax.random.key(10)), jax.random.key(0))
    thought = model.think_next(PARAMS, state, jnp.ones((B, ACTIONS)), jax.random.key(11))
    assert thought.energies.shape == (5, B)
    np.testing.assert_allclose(thought.energy, jnp.min(thought.energies, axis=0))


# ------------------------------------------------------------------ learning on a tiny linear system


def linear_system_batch(key, batch_size=32, length=8):
    """``x_{t+1} = A x_t + b a_t`` with a rotation-and-shrink ``A``; rewards 0, never terminal."""
    a = jnp.array([[0.8, -0.3], [0.3, 0.8]])
    b = jnp.array([[0.5], [-0.2]])
    start_key, action_key = jax.random.split(key)
    actions = jax.random.uniform(action_key, (length, batch_size, 1), minval=-1, maxval=1)
    def step(x, action):
        return a @ x + b @ action, x
    _, xs = jax.lax.scan(lambda x, u: jax.vmap(step)(x, u), jax.random.uniform(start_key, (batch_size, 2), minval=-1, maxval=1), actions)
    prev = jnp.concatenate([jnp.zeros_like(actions[:1]), actions[:-1]])
    return SequenceBatch(xs, prev, jnp.zeros((length, batch_size)), jnp.ones((length, batch_size)),
                         jnp.zeros((length, batch_size), bool).at[0].set(True))


def test_on_a_linear_system_the_trained_model_errs_less_with_thinking_steps():
    """Trained with 2 thinking steps, the error after 1 and 2 steps is well below that of the initial candidate
    (the latest observation, 0 steps). Steps beyond those trained do not help at this size (docs/EBWM.md)."""
    model = make_world_model(EBWMConfig(hidden=16, layers=1, heads=2, context=2, thinking_steps=2, candidate_noise=0.0), (2,), 1)
    params = fit_world_model(model, None, lambda _, key: linear_system_batch(key), 200, 3e-3, jax.random.key(1)).params
    batch = linear_system_batch(jax.random.key(2), batch_size=64)
    context = jax.tree.map(lambda x: x[:-1], batch)
    state = model.observe(params, model.initial_state(64), context, jax.random.key(0))
    truth = target_vector(batch.obs[-1], batch.rewards[-1], batch.continues[-1])  # [64, Y]

    @jax.jit
    def error(steps):
        target = model.think_next(params, state, batch.prev_actions[-1], jax.random.key(3), steps).target
        return jnp.mean(jnp.square(target - truth))

    errors = [float(error(jnp.int32(n))) for n in (0, 1, 2)]
    assert errors[1] < 0.5 * errors[0] and errors[2] < 0.5 * errors[0], errors


# ------------------------------------------------------------------ Dreamer and the config pass

DREAMER_TINY = [
    "agent=dreamer", "world_model=ebwm", "env=Pendulum-v1", "total_steps=32", "agent.num_envs=2", "agent.steps_per_update=8",
    "agent.train_ratio=4", "agent.batch_size=2", "agent.sequence_length=8", "agent.replay_capacity=200", "agent.train_start=8",
    "agent.actor_critic_hidden=8", "agent.actor_critic_layers=1", "agent.critic_bins=15", "agent.horizon=3",
    "world_model.hidden=8", "world_model.heads=2", "world_model.layers=1", "world_model.context=4", "progress=false",
]


@pytest.mark.parametrize("recipe", ["system1", "system2"])
def test_differentiating_only_the_last_thinking_step_keeps_the_loss_and_drops_the_earlier_steps_gradients(recipe):
    batch, key = random_batch(jax.random.key(3)), jax.random.key(4)
    extra = dict(recipe=recipe, min_thinking_steps=2, thinking_steps=2)  # System 2 with a fixed count: comparable
    full, last = tiny_model(**extra), tiny_model(**extra, differentiate="last")
    (loss_full, _), grad_full = jax.value_and_grad(full.loss, has_aux=True)(PARAMS, batch, key)
    (loss_last, _), grad_last = jax.value_and_grad(last.loss, has_aux=True)(PARAMS, batch, key)
    np.testing.assert_allclose(loss_last, loss_full, rtol=1e-6)  # same forward pass
    differences = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), grad_full, grad_last))
    assert max(differences) > 1e-4  # the first step's second-order term is gone
    # With one thinking step, that step is the last: nothing changes.
    one_full, one_last = tiny_model(thinking_steps=1), tiny_model(thinking_steps=1, differentiate="last")
    grads = [jax.grad(lambda p, m=m: m.loss(p, batch, key)[0])(PARAMS) for m in (one_full, one_last)]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), *grads)


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("world_model.differentiate=first", r"EBWMConfig\.differentiate must be one of all, last, got 'first'"),
        ("world_model.thinking_steps=-1", r"EBWMConfig\.thinking_steps must be a positive integer, got -1"),
        ("world_model.candidates=0", r"EBWMConfig\.candidates is K of best-of-K and must be at least 1, got 0"),
        ("world_model.recipe=system3", r"EBWMConfig\.recipe must be one of system1, system2, got 'system3'"),
        ("world_model=ebmw", r"Unknown world model 'ebmw'; did you mean 'ebwm'\?"),
    ],
)
def test_bad_values_are_one_sentence(override, pattern):
    overrides = [o for o in DREAMER_TINY if not (override.startswith("world_model=") and o.startswith("world_model="))]
    with pytest.raises(ConfigError, match=pattern) as info:
        load_run_config([*overrides, override])
    assert "\n" not in str(info.value)


def test_dreamer_trains_in_the_energy_models_imagination_and_writes_the_run_folder(tmp_path):
    from mnemax.experiment.runner import run

    result = run(load_run_config([*DREAMER_TINY, f"run_dir={tmp_path / 'run'}"]))
    folder = result.run_dir
    assert {p.name for p in folder.iterdir()} >= {"config.yaml", "metrics.csv", "summary.json", "checkpoint"}
    assert "name: ebwm" in (folder / "config.yaml").read_text()
    rows = (folder / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(",")))
    assert float(last["wm_loss"]) > 0.0 and np.isfinite(float(last["actor_loss"])) and float(last["alpha"]) > 0.0
