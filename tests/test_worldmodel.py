"""The latent sequence world model: transforms, latents, KL balancing, sequence vs step mode, imagination, learning."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import flax.linen as nn
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings

from mnemax.backbones import BackboneSpec, plain_input_names
from mnemax.envs import make as make_env
from mnemax.worldmodels.distributions import (
    categorical_kl,
    free_bits,
    sample_one_hot,
    symexp,
    symlog,
    twohot,
    twohot_decode,
    twohot_log_prob,
    twohot_mean,
    unimix_logits,
)
from mnemax.worldmodels.losses import SequenceBatch, kl_balance, world_model_loss
from mnemax.worldmodels.networks import PatchConv, SubPixelUpsample
from mnemax.worldmodels.sequence_model import (
    HeadOutputs,
    WorldModelConfig,
    build_model,
    heads,
    imagine,
    imagine_open_loop,
    init_params,
    initial_carry,
    observe,
    observe_stepwise,
)
from mnemax.worldmodels.latent_world_model import LatentWorldModel
from mnemax.worldmodels.protocol import Prediction
from mnemax.worldmodels.training import fit_world_model

T, B, OBS, ACTIONS, GROUPS, CLASSES, FEATURES = 8, 2, 3, 2, 4, 4, 16
TINY_OPTIONS = {
    "s5": (("num_layers", 1), ("state_size", 8)),
    "s4d": (("num_layers", 1), ("state_size", 8)),
    "lru": (("num_layers", 1), ("state_size", 8)),
    "transformer": (("num_layers", 1), ("num_heads", 2), ("window", 8)),
    "mamba": (("num_layers", 1), ("state_size", 4)),
    "mingru": (("num_layers", 1),),
    "mlstm": (("num_layers", 1), ("num_heads", 2), ("chunk_size", 4)),
    "ffm": (("trace_size", 4), ("context_size", 2)),
}


def tiny_config(backbone: str, **overrides) -> WorldModelConfig:
    spec = BackboneSpec(backbone, FEATURES, TINY_OPTIONS.get(backbone, ()))
    values = dict(backbone=spec, latent_groups=GROUPS, latent_classes=CLASSES, hidden=16, layers=1, num_bins=31)
    return WorldModelConfig(**{**values, **overrides})


@functools.lru_cache(maxsize=None)
def tiny_model(backbone: str, classic: bool = False):
    model = build_model(tiny_config(backbone, classic_posterior=classic), (OBS,), ACTIONS)
    return model, jax.jit(lambda key: init_params(model, key))(jax.random.key(0))


def sequence(seed: int = 1):
    keys = jax.random.split(jax.random.key(seed), 2)
    obs = jax.random.normal(keys[0], (T, B, OBS)) * 3.0
    actions = jax.nn.one_hot(jax.random.randint(keys[1], (T, B), 0, ACTIONS), ACTIONS)
    resets = jnp.zeros((T, B), bool).at[0].set(True).at[3, 0].set(True).at[5, 1].set(True)
    return obs, actions, resets


# --------------------------------------------------------------------------- transforms and distributions


@given(hnp.arrays(np.float32, (5,), elements=st.floats(-1e6, 1e6, width=32)))
def test_symexp_inverts_symlog(x):
    np.testing.assert_allclose(symexp(symlog(jnp.asarray(x))), x, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(symlog(symexp(symlog(jnp.asarray(x)))), symlog(jnp.asarray(x)), rtol=1e-5, atol=1e-5)


@given(
    hnp.arrays(np.float32, (6,), elements=st.floats(-1e5, 1e5, width=32)),
    st.sampled_from([15, 41, 255]),
    st.sampled_from([0.5, 1.0, 20.0]),
)
def test_twohot_decode_inverts_encode(x, num_bins, limit):
    """Inside the bins' span ``[-symexp(limit), symexp(limit)]`` decoding is exact; beyond it values clip to the ends."""
    weights = twohot(jnp.asarray(x), num_bins, limit)
    assert weights.shape == (6, num_bins)
    np.testing.assert_allclose(jnp.sum(weights, -1), 1.0, atol=1e-5)
    assert bool(jnp.all(weights >= 0)) and bool(jnp.all(jnp.sum(weights > 0, -1) <= 2))
    reach = float(np.expm1(limit))
    np.testing.assert_allclose(twohot_decode(weights, limit), np.clip(x, -reach, reach), rtol=1e-3, atol=1e-3)


def test_a_narrow_twohot_limit_separates_small_rewards():
    """With DreamerV3's span, +-1/48 share their main bin; with a limit of 1 their two-hot codes are disjoint."""
    small = jnp.array([1.0 / 48.0, -1.0 / 48.0])
    wide, narrow = twohot(small, 255, 20.0), twohot(small, 255, 1.0)
    assert float(jnp.sum(jnp.minimum(wide[0], wide[1]))) > 0.8
    assert float(jnp.sum(jnp.minimum(narrow[0], narrow[1]))) == 0.0
    with pytest.raises(ValueError, match="limit must be positive"):
        twohot(small, 255, 0.0)


def test_twohot_clips_beyond_the_bins_and_log_prob_peaks_at_the_target():
    np.testing.assert_allclose(twohot_decode(twohot(jnp.array([1e12, -1e12]), 255)), symexp(jnp.array([20.0, -20.0])), rtol=1e-5)
    target = jnp.array(3.7)
    logits = jnp.log(twohot(target, 31) + 1e-9)
    assert float(twohot_log_prob(logits, target)) > float(twohot_log_prob(logits, jnp.array(-3.7)))
    np.testing.assert_allclose(twohot_mean(logits), 3.7, rtol=1e-3)


def test_unimix_keeps_every_class_possible():
    logits = jnp.array([[100.0, -100.0, -100.0, -100.0]])
    probs = jax.nn.softmax(unimix_logits(logits, 0.01), -1)
    np.testing.assert_allclose(probs.min(), 0.01 / 4, rtol=1e-4)
    np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="unimix"):
        unimix_logits(logits, 1.5)


def test_straight_through_sample_is_one_hot_with_the_gradient_of_the_probabilities():
    logits = jnp.array([[0.3, -0.2, 1.0]])
    sample = sample_one_hot(jax.random.key(0), logits)
    np.testing.assert_allclose(jnp.sort(sample[0]), [0.0, 0.0, 1.0], atol=1e-6)
    weights = jnp.array([1.0, 2.0, 3.0])
    grad_sample = jax.grad(lambda l: jnp.sum(sample_one_hot(jax.random.key(0), l) * weights))(logits)
    grad_probs = jax.grad(lambda l: jnp.sum(jax.nn.softmax(l) * weights))(logits)
    np.testing.assert_allclose(grad_sample, grad_probs, rtol=1e-5)


@given(st.floats(0.0, 5.0), st.floats(0.0, 3.0))
def test_free_bits_clip_below_free_nats(kl, free):
    assert float(free_bits(jnp.float32(kl), free)) == pytest.approx(max(kl, free), rel=1e-6)
    assume(abs(kl - free) > 1e-6)  # at the kink the (sub)gradient is a convention
    grad = float(jax.grad(lambda k: free_bits(k, free))(jnp.float32(kl)))
    assert grad == (1.0 if kl > free else 0.0)


def test_kl_balance_sends_dynamics_to_the_prior_and_representation_to_the_posterior():
    keys = jax.random.split(jax.random.key(3), 2)
    post, prior = (jax.random.normal(k, (5, GROUPS, CLASSES)) * 2.0 for k in keys)
    dyn, rep = kl_balance(post, prior, free_nats=0.0)
    np.testing.assert_allclose(dyn, categorical_kl(post, prior), rtol=1e-5)
    np.testing.assert_allclose(rep, dyn, rtol=1e-5)
    d_post, d_prior = jax.grad(lambda q, p: jnp.sum(kl_balance(q, p, 0.0)[0]), argnums=(0, 1))(post, prior)
    assert float(jnp.abs(d_post).max()) == 0.0 and float(jnp.abs(d_prior).max()) > 0.0
    r_post, r_prior = jax.grad(lambda q, p: jnp.sum(kl_balance(q, p, 0.0)[1]), argnums=(0, 1))(post, prior)
    assert float(jnp.abs(r_prior).max()) == 0.0 and float(jnp.abs(r_post).max()) > 0.0
    dyn_free, _ = kl_balance(post, post, free_nats=1.0)
    np.testing.assert_allclose(dyn_free, 1.0)


# --------------------------------------------------------------------------- the model, per backbone


@pytest.mark.parametrize("backbone", plain_input_names())  # the model feeds one array [z, a]
def test_observe_equals_stepwise_rollout_and_shapes(backbone):
    model, params = tiny_model(backbone)
    obs, actions, resets = sequence()
    carry0 = initial_carry(model, B)

    @jax.jit
    def both(params, carry0, obs, actions, resets, key):
        parallel = observe(model, params, carry0, obs, actions, resets, key)
        stepwise = observe_stepwise(model, params, carry0, obs, actions, resets, key)
        return parallel, stepwise, heads(model, params, parallel[1].state)

    (carry, observation), (step_carry, step_observation, carries), out = both(
        params, carry0, obs, actions, resets, jax.random.key(5)
    )
    assert observation.state.h.shape == (T, B, FEATURES)
    assert observation.state.z.shape == (T, B, GROUPS * CLASSES)
    assert observation.posterior_logits.shape == observation.prior_logits.shape == (T, B, GROUPS, CLASSES)
    for a, b in zip(jax.tree.leaves((carry, observation)), jax.tree.leaves((step_carry, step_observation))):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    assert jax.tree.leaves(carries)[0].shape[:2] == (T, B)
    assert out.observation.shape == (T, B, OBS)
    assert out.reward_logits.shape == (T, B, 31) and out.continue_logits.shape == (T, B)
    np.testing.assert_allclose(out.reward_logits, 0.0)  # zero-initialised reward head


@pytest.mark.parametrize("backbone", plain_input_names())  # the model feeds one array [z, a]
def test_imagine_is_deterministic_under_a_key_and_has_shapes(backbone):
    model, params = tiny_model(backbone)
    obs, actions, resets = sequence()
    carry, observation = jax.jit(functools.partial(observe, model))(
        params, initial_carry(model, B), obs, actions, resets, jax.random.key(5)
    )
    start = jax.tree.map(lambda x: x[-1], observation.state)

    def policy(features, key):
        return jax.nn.one_hot(jax.random.randint(key, features.shape[:1], 0, ACTIONS), ACTIONS)

    run = jax.jit(lambda params, carry, start, key: imagine(model, params, carry, start, policy, 5, key))
    states, features, taken = run(params, carry, start, jax.random.key(7))
    again, _, _ = run(params, carry, start, jax.random.key(7))
    other, _, _ = run(params, carry, start, jax.random.key(8))
    assert states.h.shape == (6, B, FEATURES) and states.z.shape == (6, B, GROUPS * CLASSES)
    np.testing.assert_array_equal(features, states.features())  # the default policy input is [h_t, z_t]
    assert taken.shape == (6, B, ACTIONS)
    np.testing.assert_array_equal(states.z, again.z)
    np.testing.assert_array_equal(states.h, again.h)
    np.testing.assert_array_equal(states.z[0], start.z)
    assert not np.array_equal(np.asarray(states.z), np.asarray(other.z))
    open_loop = jax.eval_shape(lambda k: imagine_open_loop(model, params, carry, actions[:4], k), jax.random.key(1))
    assert open_loop.h.shape == (4, B, FEATURES)


def test_classic_posterior_reads_the_backbone_state():
    model, params = tiny_model("gru", classic=True)
    obs, actions, resets = sequence()
    no_resets = jnp.zeros_like(resets)
    carry = initial_carry(model, B)
    moved = carry._replace(backbone=jnp.ones_like(carry.backbone))
    run = jax.jit(lambda p, c: observe(model, p, c, obs, actions, no_resets, jax.random.key(0))[1])
    first, second = run(params, carry), run(params, moved)
    assert float(jnp.abs(first.posterior_logits[0] - second.posterior_logits[0]).max()) > 1e-4
    _, step_observation, _ = jax.jit(functools.partial(observe_stepwise, model))(
        params, carry, obs, actions, no_resets, jax.random.key(0)
    )
    np.testing.assert_allclose(first.posterior_logits, step_observation.posterior_logits, rtol=1e-5, atol=1e-6)


def test_bad_inputs_get_one_clear_sentence():
    model, params = tiny_model("gru")
    obs, actions, resets = sequence()
    with pytest.raises(ValueError, match="one-hot"):
        observe(model, params, initial_carry(model, B), obs, actions[..., :1], resets, jax.random.key(0))
    with pytest.raises(ValueError, match=r"obs must have shape"):
        observe(model, params, initial_carry(model, B), obs[..., :2], actions, resets, jax.random.key(0))
    with pytest.raises(ValueError, match="divisible"):
        build_model(tiny_config("gru"), (30, 30, 3), 2)
    with pytest.raises(ValueError, match="vector observations"):
        build_model(tiny_config("gru"), (3, 4), 2)
    with pytest.raises(ValueError, match="reward_scale"):
        build_model(tiny_config("gru", reward_scale=-1.0), (OBS,), ACTIONS)
    with pytest.raises(ValueError, match="twohot_limit"):
        build_model(tiny_config("gru", twohot_limit=0.0), (OBS,), ACTIONS)
    with pytest.raises(ValueError, match="latent_classes"):
        build_model(tiny_config("gru", latent_classes=1), (3,), 2)


@pytest.mark.parametrize("scale", [0.0, 2.5, 10.0])
def test_reward_scale_weights_only_the_reward_term(scale):
    """``reward_scale`` (DreamerV3's ``loss_scales.reward``) multiplies the reward head's loss and nothing else."""
    _, params = tiny_model("gru")
    obs, actions, resets = sequence()
    rewards = jax.random.normal(jax.random.key(3), (T, B)) * 0.1
    batch = SequenceBatch(obs, actions, rewards, jnp.ones((T, B)), resets)
    loss = _loss_with_reward_scale(1.0, params, batch)
    scaled = _loss_with_reward_scale(scale, params, batch)
    np.testing.assert_allclose(scaled[1], loss[1], rtol=1e-6)  # the reward loss itself is unchanged
    np.testing.assert_allclose(scaled[0] - loss[0], (scale - 1.0) * loss[1], rtol=1e-4, atol=1e-4)


@functools.partial(jax.jit, static_argnums=0)
def _loss_with_reward_scale(scale, params, batch):
    model = build_model(tiny_config("gru", reward_scale=scale), (OBS,), ACTIONS)
    loss, (metrics, _, _) = world_model_loss(model, params, initial_carry(model, B), batch, jax.random.key(2))
    return loss, metrics["reward_loss"]


def test_twohot_limit_sets_the_bins_of_the_reward_loss():
    """The reward term of the loss is the two-hot likelihood over the bins ``twohot_limit`` spans."""
    _, params = tiny_model("gru")
    noise = jax.random.split(jax.random.key(5), len(jax.tree.leaves(params)))
    leaves = [x + 0.3 * jax.random.normal(k, x.shape) for x, k in zip(jax.tree.leaves(params), noise)]
    params = jax.tree.unflatten(jax.tree.structure(params), leaves)  # the zero-initialised reward head now has a say
    obs, actions, resets = sequence()
    rewards = jnp.where(jax.random.bernoulli(jax.random.key(3), 0.5, (T, B)), 1.0, -1.0) / 48.0
    batch = SequenceBatch(obs, actions, rewards, jnp.ones((T, B)), resets)
    losses = {}
    for limit in (1.0, 20.0):
        model = build_model(tiny_config("gru", twohot_limit=limit), (OBS,), ACTIONS)

        @jax.jit
        def evaluate(params):
            _, (metrics, _, observation) = world_model_loss(model, params, initial_carry(model, B), batch, jax.random.key(2))
            logits = heads(model, params, observation.state).reward_logits
            return metrics["reward_loss"], -jnp.mean(twohot_log_prob(logits, rewards, limit))

        losses[limit], expected = evaluate(params)
        np.testing.assert_allclose(losses[limit], expected, rtol=1e-5)
    assert abs(float(losses[1.0]) - float(losses[20.0])) > 1e-3


def test_image_observations_use_the_cnn():
    model = build_model(tiny_config("gru", cnn_stages=1, cnn_depth=4), (4, 4, 3), ACTIONS)
    params = jax.jit(lambda k: init_params(model, k))(jax.random.key(0))
    obs = jax.random.uniform(jax.random.key(1), (4, B, 4, 4, 3))
    _, actions, resets = sequence()
    batch = SequenceBatch(obs, actions[:4], jnp.zeros((4, B)), jnp.ones((4, B)), resets[:4])
    @jax.jit
    def evaluate(params, batch):
        loss, (metrics, _, observation) = world_model_loss(model, params, initial_carry(model, B), batch, jax.random.key(2))
        return loss, metrics, heads(model, params, observation.state).observation

    loss, metrics, predicted = evaluate(params, batch)
    assert predicted.shape == (4, B, 4, 4, 3)
    assert np.isfinite(float(loss)) and float(metrics["obs_loss"]) > 0


def test_uint8_frames_are_read_and_predicted_in_unit_range():
    """Image envs hand out uint8 pixels; the model must see (and be scored against) them divided by 255."""
    model = build_model(tiny_config("gru", cnn_stages=1, cnn_depth=4), (4, 4, 3), ACTIONS)
    params = jax.jit(lambda k: init_params(model, k))(jax.random.key(0))
    pixels = jax.random.randint(jax.random.key(1), (4, B, 4, 4, 3), 0, 256).astype(jnp.uint8)
    _, actions, resets = sequence()

    @jax.jit
    def loss(obs):
        batch = SequenceBatch(obs, actions[:4], jnp.zeros((4, B)), jnp.ones((4, B)), resets[:4])
        return world_model_loss(model, params, initial_carry(model, B), batch, jax.random.key(2))[1][0]["obs_loss"]

    as_uint8, as_unit = loss(pixels), loss(pixels.astype(jnp.float32) / 255.0)
    np.testing.assert_allclose(as_uint8, as_unit, rtol=1e-5)
    assert float(as_uint8) < 4 * 4 * 3  # squared errors of values in [0, 1], not [0, 255]


@given(
    height=st.integers(3, 12), width=st.integers(3, 12), channels=st.integers(1, 4),
    size=st.integers(1, 4), stride=st.integers(1, 3), seed=st.integers(0, 2**16),
)
@settings(max_examples=10)  # each example compiles both layers eagerly (~1.5 s)
def test_patch_convolution_equals_a_same_padded_convolution(height, width, channels, size, stride, seed):
    images = jax.random.normal(jax.random.key(seed), (2, height, width, channels))
    layer = PatchConv(5, size=size, stride=stride)
    params = layer.init(jax.random.key(seed + 1), images)
    reference = nn.Conv(5, (size, size), strides=(stride, stride), padding="SAME").apply(params, images)
    np.testing.assert_allclose(layer.apply(params, images), reference, atol=1e-5)


def test_sub_pixel_upsample_places_each_phase_at_its_own_output_pixel():
    features = 2
    images = jax.random.normal(jax.random.key(0), (1, 3, 4, 4 * features))
    layer = SubPixelUpsample(features)
    params = layer.init(jax.random.key(1), images)
    # the centre tap copies channel (a, b, f) to output phase (a, b), feature f
    kernel = jnp.zeros((3, 3, 4 * features, 4 * features)).at[1, 1].set(jnp.eye(4 * features))
    params = jax.tree.map(jnp.zeros_like, params)
    params["params"]["PatchConv_0"]["kernel"] = kernel
    out = layer.apply(params, images)
    assert out.shape == (1, 6, 8, features)
    for a in range(2):
        for b in range(2):
            phase = images[0].reshape(3, 4, 2, 2, features)[:, :, a, b]
            np.testing.assert_array_equal(out[0, a::2, b::2], phase)


# --------------------------------------------------------------------------- learning


@functools.lru_cache(maxsize=None)
def deterministic_batch():
    """CartPole from a fixed start under a fixed action pattern: the same ``[T, B]`` sequences every time."""
    env, env_params = make_env("CartPole-v1")
    keys = jax.random.split(jax.random.key(0), B)
    obs, states = jax.vmap(env.reset, in_axes=(0, None))(keys, env_params)
    pattern = jnp.array([0, 1, 1, 0, 1, 0, 0, 1] * 4)[:T]
    steps = [obs]
    for t in range(T - 1):
        obs, states, _, _, _, _ = jax.vmap(env.step, in_axes=(0, 0, None, None))(keys, states, pattern[t], env_params)
        steps.append(obs)
    obs = jnp.stack(steps)
    prev = jnp.concatenate([jnp.zeros((1,), int), pattern[:-1]])
    actions = jax.nn.one_hot(jnp.broadcast_to(prev[:, None], (T, B)), ACTIONS).at[0].set(0.0)
    obs = obs[..., :OBS]
    # Rewards that depend on the previous action (+1 after action 1, -1 after action 0, none at the start)
    # and one terminal step, so that the reward and continue heads have something to learn.
    rewards = jnp.broadcast_to(jnp.where(prev == 1, 1.0, -1.0).at[0].set(0.0)[:, None], (T, B))
    continues = jnp.ones((T, B)).at[T - 1, 1].set(0.0)
    return SequenceBatch(obs, actions, rewards, continues, jnp.zeros((T, B), bool).at[0].set(True))


@pytest.mark.parametrize("backbone", plain_input_names())  # the model feeds one array [z, a]
def test_world_model_loss_falls_on_a_deterministic_env(backbone):
    """Every head learns one fixed batch: observation, reward and continue losses each at least halve."""
    model, _ = tiny_model(backbone)
    batch, key = deterministic_batch(), jax.random.key(1)
    fit = fit_world_model(LatentWorldModel(model), batch, lambda data, key: data, 200, 3e-3, key, grad_clip=100.0)
    losses = fit.losses
    assert losses.shape == (200,) and fit.frames_per_second > 0
    assert np.all(np.isfinite(losses))
    first, last = losses[:10].mean(), losses[-10:].mean()
    assert last < 0.5 * first, f"{backbone}: loss {first:.3f} -> {last:.3f}"
    terms = jax.jit(lambda p: world_model_loss(model, p, initial_carry(model, B), batch, jax.random.key(2))[1][0])
    before, after = terms(init_params(model, jax.random.split(key)[0])), terms(fit.params)
    for name in ("obs_loss", "reward_loss", "continue_loss"):
        assert after[name] < 0.5 * before[name], f"{backbone}: {name} {before[name]:.3f} -> {after[name]:.3f}"


def test_memory_probe_script_scores_every_imagination_step():
    """scripts/eval_worldmodel.py --quick: collect, fit, imagine after the context, score each step."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "eval_worldmodel.py"
    spec = importlib.util.spec_from_file_location("eval_worldmodel", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    results = script.main(["--quick", "--backbones", "gru"])
    gru = results["gru"]
    assert gru["error"].shape == gru["accuracy"].shape == (8,)  # --quick imagines 8 steps
    assert np.all(np.isfinite(gru["error"])) and np.all(gru["counted"] > 0) and np.isfinite(gru["final_loss"])


def test_memory_probe_scores_a_perfect_imagination_as_exact_and_a_flipped_reward_as_wrong(monkeypatch):
    """The probe's scoring alone: imagination replaced by the truth (or the truth with the reward sign flipped).

    Episodes of 8 steps, context 4, horizon 6: the last 2 imagined steps belong
    to the next episode and must not be counted.
    """
    path = Path(__file__).resolve().parents[1] / "scripts" / "eval_worldmodel.py"
    spec = importlib.util.spec_from_file_location("eval_worldmodel", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    steps, envs, context, horizon, bins = 40, 3, 4, 6, 63
    keys = jax.random.split(jax.random.key(0), 2)
    resets = jnp.zeros((steps, envs), bool).at[::8].set(True)
    rewards = jnp.where(resets, 0.0, jnp.sign(jax.random.normal(keys[0], (steps, envs))))
    data = SequenceBatch(jax.random.normal(keys[1], (steps, envs, OBS)), jnp.zeros((steps, envs, ACTIONS)),
                         rewards, jnp.ones((steps, envs)), resets)
    model = build_model(tiny_config("gru", num_bins=bins), (OBS,), ACTIONS)

    def truth(sign):
        def imagine(model, params, batch, context, key):
            return Prediction(symlog(batch.obs[context:]), sign * batch.rewards[context:], jnp.zeros(batch.rewards[context:].shape))
        return imagine

    monkeypatch.setattr(script, "imagine_after_context", truth(1.0))
    error, accuracy, counted = script.probe(model, None, data, context, horizon, 16, jax.random.key(3))
    np.testing.assert_array_equal(counted, [16, 16, 16, 16, 0, 0])
    np.testing.assert_allclose(error[:4], 0.0, atol=1e-6)
    np.testing.assert_array_equal(accuracy[:4], 1.0)
    monkeypatch.setattr(script, "imagine_after_context", truth(-1.0))
    _, accuracy, _ = script.probe(model, None, data, context, horizon, 16, jax.random.key(3))
    np.testing.assert_array_equal(accuracy[:4], 0.0)
