"""PPO on observations with named parts (a view and token ids), and its auxiliary reconstruction loss.

A Dict observation is flattened by FlattenObservation; PPO's network cuts it
back into parts, embeds token parts, and with ``reconstruction_weight > 0``
decodes the observation from the backbone's output as an auxiliary loss that
shows up in the metrics and trains the encoders.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from gymnax.environments import environment, spaces

from mnemax.agents.networks import ActorCritic, ConvTorso, split_parts
from mnemax.agents.ppo import PPOConfig, env_observation_parts, feature_mask, make_network, make_trainer, network_input
from mnemax.agents.running_stats import initial_moments, observe_batch
from mnemax.backbones import BackboneSpec
from mnemax.envs import FlattenObservation, ObservationPart, observation_parts
from tiny_envs import CountingEnv

VOCAB = 5
LIMIT = 6


class SaysWhatToDo(CountingEnv):
    """Token 1 of the words names the rewarded action (its parity); the view is a clock."""

    limit = LIMIT

    def step_env(self, key, state, action, params):
        reward = (action == self.get_obs(state)["language"][1] % 2).astype(jnp.float32)
        state = environment.EnvState(time=state.time + 1)
        return self.get_obs(state, params), state, reward, jnp.bool_(False), {}

    def get_obs(self, state, params=None, key=None):
        vision = jnp.stack([state.time / LIMIT, 1.0 - state.time / LIMIT, jnp.float32(0.5)]).astype(jnp.float32)
        return {"vision": vision, "language": jnp.stack([jnp.int32(2), state.time % VOCAB]).astype(jnp.int32)}

    def observation_space(self, params=None):
        return spaces.Dict(
            {
                "vision": spaces.Box(0.0, 1.0, (3,), jnp.float32),
                "language": spaces.Box(0, VOCAB - 1, (2,), jnp.int32),
            }
        )


ENV = FlattenObservation(SaysWhatToDo())
PARAMS = ENV.default_params
CONFIG = PPOConfig(
    total_steps=4 * 8 * 3,
    num_envs=4,
    num_steps=8,
    num_minibatches=2,
    update_epochs=1,
    encoder_sizes=(8,),
    head_sizes=(8,),
    token_features=4,
    backbone=BackboneSpec("gru", 8),
    reconstruction_weight=0.5,
)


def test_parts_of_a_dict_observation_follow_the_flat_order():
    parts = env_observation_parts(ENV, PARAMS)
    assert parts == (ObservationPart("vision", 3, shape=(3,)), ObservationPart("language", 2, VOCAB, (2,)))
    obs, _ = ENV.reset(jax.random.key(0), PARAMS)
    pieces = split_parts(parts, obs)
    np.testing.assert_array_equal(pieces["language"], [2.0, 0.0])
    assert observation_parts(spaces.Box(0.0, 1.0, (4, 2), jnp.float32)) == (ObservationPart("observation", 8, shape=(4, 2)),)
    nested = spaces.Dict({"inner": spaces.Dict({"x": spaces.Box(0.0, 1.0, (2,), jnp.float32)})})
    assert observation_parts(nested) == (ObservationPart("inner", 2),)  # a nested part has no one shape


def test_negative_token_ids_are_refused_with_the_part_named():
    space = spaces.Dict({"words": spaces.Box(-1, 3, (2,), jnp.int32)})
    with pytest.raises(ValueError, match="'words'"):
        observation_parts(space)


def test_normalisation_leaves_token_ids_alone():
    config = dataclasses.replace(CONFIG, normalize_observations=True)
    parts = env_observation_parts(ENV, PARAMS)
    obs = jnp.asarray([[0.2, 0.9, 0.5, 2.0, 4.0], [0.6, 0.1, 0.5, 2.0, 1.0]])
    stats = observe_batch(initial_moments((5,)), obs)
    read = network_input(config, feature_mask(parts), stats, obs)
    np.testing.assert_array_equal(read[:, 3:], obs[:, 3:])
    assert not np.allclose(read[:, :2], obs[:, :2])


def test_reconstruction_loss_is_in_the_metrics_and_trains_both_encoders():
    trainer = make_trainer(CONFIG, ENV, PARAMS)
    state, metrics = jax.jit(trainer.update)(trainer.init(jax.random.key(0)))
    assert np.isfinite(metrics["reconstruction_loss"]) and metrics["reconstruction_loss"] > 0

    network = make_network(CONFIG, 2, True, env_observation_parts(ENV, PARAMS))
    obs = jnp.tile(jnp.asarray([0.2, 0.8, 0.5, 2.0, 3.0]), (2, 4, 1))
    resets = jnp.zeros((2, 4), bool)

    def reconstruction(params):
        _, sown = network.apply(params, network.initialize_carry(4), obs, resets, mutable=["aux_losses"])
        return sum(sown["aux_losses"]["reconstruction"])

    grads = jax.grad(reconstruction)(state.params)["params"]
    for encoder in ("encoder_vision", "encoder_language"):
        assert any(np.abs(leaf).sum() > 0 for leaf in jax.tree.leaves(grads[encoder])), encoder
    assert np.abs(grads["encoder_language"]["embed"]["embedding"]).sum() > 0


def test_without_the_weight_there_is_no_decoder_and_no_metric():
    config = dataclasses.replace(CONFIG, reconstruction_weight=0.0)
    trainer = make_trainer(config, ENV, PARAMS)
    state, metrics = jax.jit(trainer.update)(trainer.init(jax.random.key(0)))
    assert "reconstruction_loss" not in metrics
    assert "decoder" not in state.params["params"]


class ReadsParts(nn.Module):
    """A backbone stand-in that declares the parts it reads and returns their concatenation."""

    features: int = 8

    def input_parts(self):
        return ("language", "vision")

    def initialize_carry(self, batch_size):
        return jnp.zeros((batch_size, 1))

    def __call__(self, carry, inputs, resets):
        assert isinstance(inputs, dict) and tuple(sorted(inputs)) == ("language", "vision")
        return carry, jnp.concatenate([inputs["vision"], inputs["language"]], axis=-1)


def test_a_backbone_that_declares_parts_gets_them_as_a_dict():
    network = ActorCritic(2, encoder_sizes=(6,), head_sizes=(4,), backbone=ReadsParts(), observation_parts=env_observation_parts(ENV, PARAMS))
    obs = jnp.zeros((3, 2, 5))
    params = network.init(jax.random.key(0), network.initialize_carry(2), obs, jnp.zeros((3, 2), bool))
    _, (logits, value) = network.apply(params, network.initialize_carry(2), obs, jnp.zeros((3, 2), bool))
    assert logits.shape == (3, 2, 2) and value.shape == (3, 2)


DCEM = BackboneSpec("dcem", 8, (("capacity", 8), ("key_size", 4), ("top_k", 2)))


def test_a_parts_backbone_on_an_env_without_those_parts_is_refused_in_one_sentence():
    config = dataclasses.replace(CONFIG, backbone=DCEM)
    with pytest.raises(ValueError, match=r"reads the observation parts 'vision', 'language'.*one unnamed array"):
        make_network(config, 2, True, ())


def test_dcem_trains_on_fast_binding_with_the_reconstruction_loss():
    from mnemax.agents.ppo import make_ppo_env

    env, params = make_ppo_env("grounded/FastBinding-N3")
    config = dataclasses.replace(CONFIG, backbone=DCEM)
    trainer = make_trainer(config, env, params)
    state, metrics = jax.jit(trainer.update)(trainer.init(jax.random.key(0)))
    assert all(np.isfinite(v) for k, v in metrics.items() if k not in ("episode_return", "episode_length"))
    assert metrics["reconstruction_loss"] > 0
    assert {"encoder_vision", "encoder_language", "decoder"} <= set(state.params["params"])


def test_dcem_sequence_mode_reproduces_what_acting_saw_on_fast_binding():
    """Re-running a FastBinding rollout in sequence mode from its start carry gives the acting log-probs and values."""
    from mnemax.agents.ppo import make_ppo_env, make_rollout, policy_distribution

    env, params = make_ppo_env("grounded/FastBinding-N3")
    config = dataclasses.replace(CONFIG, backbone=DCEM, num_steps=40, total_steps=4 * 40)
    trainer, rollout = make_trainer(config, env, params), make_rollout(config, env, params)
    network = make_network(config, 4, True, env_observation_parts(env, params))

    def check(key):
        state = trainer.init(key)
        start = state.carry
        state, traj, _ = rollout(state, jax.random.key(1))
        _, (logits, values) = network.apply(state.params, start, traj.inputs, traj.starts)
        return traj, policy_distribution(True, logits).log_prob(traj.actions), values

    traj, log_probs, values = jax.jit(check)(jax.random.key(0))
    assert bool(traj.starts[1:].any())  # episodes ended and restarted inside the rollout
    np.testing.assert_allclose(log_probs, traj.log_probs, atol=1e-5)
    np.testing.assert_allclose(values, traj.values, atol=1e-5)


# --------------------------------------------------------------------------- convolutions for image parts

TORSO = ConvTorso((4,), "relu")
TORSO_PARAMS = TORSO.init(jax.random.key(0), jnp.zeros((1, 7, 7, 3)))
torso = jax.jit(lambda image: TORSO.apply(TORSO_PARAMS, image).reshape(*image.shape[:-1], 4))


@given(st.integers(2, 4), st.integers(2, 4), st.integers(-1, 1), st.integers(-1, 1))
@settings(max_examples=25, deadline=None)
def test_a_conv_torso_sees_a_cell_the_same_wherever_it_is_and_only_nearby(row, col, d_row, d_col):
    """One 3 x 3 layer: a lone object lights only its 3 x 3 neighbourhood, and moving it moves the response."""
    image = np.zeros((7, 7, 3), np.float32)
    image[row, col] = (1.0, 0.0, 1.0)
    response = np.asarray(torso(jnp.asarray(image)))
    background = np.asarray(torso(jnp.zeros((7, 7, 3))))[0, 0]
    changed = np.abs(response - background).sum(-1) > 1e-6
    assert not changed[np.abs(np.arange(7) - row) > 1].any()
    assert not changed[:, np.abs(np.arange(7) - col) > 1].any()
    moved = np.roll(image, (d_row, d_col), axis=(0, 1))  # its whole neighbourhood stays inside the image
    np.testing.assert_allclose(np.asarray(torso(jnp.asarray(moved))), np.roll(response, (d_row, d_col), axis=(0, 1)), atol=1e-6)


class Picture(CountingEnv):
    """A plain ``(4, 4, 2)`` image observation (no Dict): the clock as a picture."""

    limit = LIMIT

    def step_env(self, key, state, action, params):
        state = environment.EnvState(time=state.time + 1)
        return self.get_obs(state, params), state, action.astype(jnp.float32), jnp.bool_(False), {}

    def get_obs(self, state, params=None, key=None):
        return jnp.full((4, 4, 2), state.time / LIMIT, jnp.float32)

    def observation_space(self, params=None):
        return spaces.Box(0.0, 1.0, (4, 4, 2), jnp.float32)


@pytest.mark.parametrize("env", [FlattenObservation(SaysWhatToDo()), FlattenObservation(Picture())], ids=["words", "picture"])
def test_conv_channels_put_image_parts_through_convolutions_and_train(env):
    config = dataclasses.replace(CONFIG, conv_channels=(3, 5), reconstruction_weight=0.0)
    parts = env_observation_parts(env, env.default_params)
    network = make_network(config, 2, True, parts)
    obs, _ = env.reset(jax.random.key(0), env.default_params)
    variables = network.init(jax.random.key(1), network.initialize_carry(1), obs[None, None], jnp.zeros((1, 1), bool))
    images = [part.name for part in parts if len(part.shape) == 3]
    convolved = {name for name, tree in variables["params"].items() if "conv" in tree}
    assert convolved == {f"encoder_{name}" for name in images}
    if images:
        kernels = [leaf.shape for leaf in jax.tree.leaves(variables["params"][f"encoder_{images[0]}"]["conv"])]
        assert (3, 3, 2, 3) in kernels and (3, 3, 3, 5) in kernels
    trainer = make_trainer(config, env, env.default_params)
    _, metrics = jax.jit(trainer.update)(trainer.init(jax.random.key(0)))
    assert np.isfinite(metrics["policy_loss"]) and np.isfinite(metrics["value_loss"])


def test_bad_conv_channels_are_one_sentence():
    with pytest.raises(ValueError, match=r"PPOConfig.conv_channels lists layer widths, which must be positive"):
        dataclasses.replace(CONFIG, conv_channels=(8, 0))


def test_evaluation_records_what_dcem_looked_at_aligned_with_the_step_it_acted_on():
    """At the first instruction of a shown episode the memory holds N + 1 writes: the weights cover exactly those slots."""
    from mnemax.agents.evaluation import find_sown, make_evaluate
    from mnemax.agents.ppo import make_ppo_env

    env, params = make_ppo_env("grounded/FastBinding-N3", discovery="shown", view="egocentric")
    config = dataclasses.replace(CONFIG, backbone=BackboneSpec("dcem", 8, (("capacity", 8), ("key_size", 4), ("top_k", 8))))
    trainer = make_trainer(config, env, params)
    evaluate = make_evaluate(config, env, params, 8, 24, info_keys=("time", "target"), sown=("slot_weights",))
    played = jax.tree.map(np.asarray, jax.jit(evaluate)(trainer.init(jax.random.key(0)), jax.random.key(1)))
    weights = played.info["slot_weights"]  # [T, B, H, M]
    assert weights.shape == (24, 8, 2, 8)
    first = np.argwhere(played.info["time"][:-1] == 3)  # (t, b): step t's outcome is the first instruction
    assert len(first) >= 8
    for t, b in first:
        looked = weights[t + 1, b]
        assert (looked[:, :4] > 0).all() and (looked[:, 4:] == 0).all()  # 3 shown objects and the instruction itself
    with pytest.raises(ValueError, match=r"sowed 0 values named 'nothing' \(it sows: .*slot_weights"):
        find_sown({"step": {"reads": (np.zeros(1),), "slot_weights": (np.zeros(1),)}}, "nothing")
