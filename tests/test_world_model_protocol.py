"""The WorldModel seam: a world model defined here, registered by name, trains inside Dreamer without touching agents/.

The model is the simplest one the protocol admits: deterministic, no latent,
an MLP from ``[x_t, a_t]`` to ``(x_{t+1}, r_{t+1}, c_{t+1})``; its state is the
last observation and its policy features are that observation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemax.agents.dreamer import DreamerConfig, make_dreamer_env, make_trainer
from mnemax.backbones import BackboneSpec
from mnemax.experiment.config import ConfigError, run_config_from_dict, run_config_to_dict
from mnemax.worldmodels import Imagination, Prediction, SequenceBatch, WorldModel, make_world_model, register_world_model
from mnemax.worldmodels.sequence_model import WorldModelConfig


@dataclasses.dataclass(frozen=True)
class NextObservationConfig:
    hidden: int = 16


class NextObservationNet(nn.Module):
    """``[x_t, a_t] -> (x_{t+1} [.., D], r_{t+1} [..], continue logit [..])``."""

    obs_size: int
    hidden: int

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array):
        x = nn.relu(nn.Dense(self.hidden)(jnp.concatenate([obs, action], axis=-1)))
        out = nn.Dense(self.obs_size + 2)(x)
        return out[..., : self.obs_size], out[..., self.obs_size], out[..., self.obs_size + 1]


class LastObservation(NamedTuple):
    obs: jax.Array  # [B, D]


@dataclasses.dataclass(frozen=True)
class NextObservationModel:
    obs_shape: tuple[int, ...]
    action_size: int
    net: NextObservationNet
    targets: tuple[str, ...] = ("observation", "reward", "continue")

    def init(self, key):
        return self.net.init(key, jnp.zeros((1,) + self.obs_shape), jnp.zeros((1, self.action_size)))

    def initial_state(self, batch_size):
        return LastObservation(jnp.zeros((batch_size,) + self.obs_shape, jnp.float32))

    def features(self, state):
        return state.obs

    def observe_step(self, params, state, obs, prev_action, first, key):
        return LastObservation(obs.astype(jnp.float32))

    def observe(self, params, state, batch, key):
        return LastObservation(batch.obs[-1].astype(jnp.float32))

    def observe_each(self, params, state, batch, key):
        return LastObservation(batch.obs.astype(jnp.float32))

    def _step(self, params, state, action):
        obs, reward, logit = self.net.apply(params, state.obs, action)
        return LastObservation(obs), Prediction(obs, reward, jax.nn.sigmoid(logit))

    def imagine(self, params, starts, policy, horizon, key):
        def step(state, key_t):
            features = self.features(state)
            action = policy(features, key_t)
            state, predicted = self._step(params, state, action)
            return state, (features, action, predicted)

        keys = jax.random.split(key, horizon + 1)
        last, (features, actions, predicted) = jax.lax.scan(step, starts, keys[:-1])
        last_action = policy(self.features(last), keys[-1])
        features = jnp.concatenate([features, self.features(last)[None]])
        actions = jnp.concatenate([actions, last_action[None]])
        return Imagination(features, actions, predicted.reward, predicted.continues)

    def imagine_open_loop(self, params, state, actions, key):
        return jax.lax.scan(lambda s, a: self._step(params, s, a), state, actions)[1]

    def loss(self, params, batch, key):
        obs, reward, logit = self.net.apply(params, batch.obs[:-1], batch.prev_actions[1:])
        valid = 1.0 - batch.resets[1:].astype(jnp.float32)  # no prediction across an episode boundary
        terms = {
            "obs_loss": jnp.sum(jnp.square(obs - batch.obs[1:]), -1),
            "reward_loss": jnp.square(reward - batch.rewards[1:]),
            "continue_loss": optax.sigmoid_binary_cross_entropy(logit, batch.continues[1:]),
        }
        metrics = {k: jnp.sum(v * valid) / jnp.maximum(jnp.sum(valid), 1.0) for k, v in terms.items()}
        total = sum(metrics.values())
        return total, {"wm_loss": total, **metrics}


@register_world_model("next_observation", NextObservationConfig)
def build_next_observation_model(config, obs_shape, action_size):
    if len(obs_shape) != 1:
        raise ValueError(f"The next-observation model reads vectors, got shape {obs_shape}.")
    return NextObservationModel(obs_shape, action_size, NextObservationNet(obs_shape[0], config.hidden))


DREAMER = dict(
    total_steps=64,
    num_envs=2,
    steps_per_update=8,
    train_ratio=4,
    batch_size=2,
    sequence_length=8,
    replay_capacity=200,
    train_start=8,
    actor_critic_hidden=8,
    actor_critic_layers=1,
    critic_bins=15,
    horizon=3,
)


def test_the_model_built_by_name_follows_the_protocol():
    model = make_world_model(NextObservationConfig(), (4,), 2)
    assert isinstance(model, WorldModel)
    rssm = make_world_model(WorldModelConfig(backbone=BackboneSpec("gru", 8), latent_groups=2, latent_classes=2, hidden=8, layers=1), (4,), 2)
    assert isinstance(rssm, WorldModel) and rssm.targets == ("observation", "reward", "continue")
    with pytest.raises(TypeError, match="not a registered world-model config"):
        make_world_model(DREAMER, (4,), 2)


def test_dreamer_trains_a_registered_world_model_it_was_never_told_about():
    env, params = make_dreamer_env("CartPole-v1")
    config = DreamerConfig(**DREAMER, world_model=NextObservationConfig(hidden=8))
    trainer = make_trainer(config, env, params)
    state = jax.jit(trainer.init)(jax.random.key(0))
    before = state.params.model
    update = jax.jit(trainer.update)
    for _ in range(2):  # the second update is the first that trains (train_start = 8 steps per env)
        state, metrics = update(state)
    assert float(metrics["wm_loss"]) > 0.0 and np.isfinite(float(metrics["actor_loss"]))
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), before, state.params.model)
    assert all(m > 0.0 for m in jax.tree.leaves(moved))
    assert state.acting.model_state.obs.shape == (2, 4)  # the model's own state, carried between env steps


def test_the_config_pass_picks_a_world_model_by_name_and_checks_its_fields(tmp_path):
    values = {
        "total_steps": 64,
        "agent": {"name": "dreamer", **{k: v for k, v in DREAMER.items() if k != "total_steps"}},
        "backbone": {"name": "none"},
        "world_model": {"name": "next_observation", "hidden": 8},
        "env": {"name": "CartPole-v1"},
    }
    config = run_config_from_dict(values)
    assert config.agent.world_model == NextObservationConfig(hidden=8)
    assert run_config_from_dict(run_config_to_dict(config)) == config
    with pytest.raises(ConfigError, match=r"Unknown key 'world_model.hiden'; did you mean 'hidden'\?"):
        run_config_from_dict({**values, "world_model": {"name": "next_observation", "hiden": 8}})
    with pytest.raises(ConfigError, match=r"Unknown world model 'next_observaton'; did you mean 'next_observation'\?"):
        run_config_from_dict({**values, "world_model": {"name": "next_observaton"}})
    with pytest.raises(ConfigError, match="world_model.backbone' is set at the top level"):
        run_config_from_dict({**values, "world_model": {"name": "rssm", "backbone": "gru"}})


T, B, OBS, ACTIONS = 6, 2, 3, 2
RSSM = make_world_model(
    WorldModelConfig(backbone=BackboneSpec("gru", 8), latent_groups=2, latent_classes=3, hidden=8, layers=1, num_bins=15),
    (OBS,),
    ACTIONS,
)
RSSM_PARAMS = RSSM.init(jax.random.key(0))


@jax.jit
def _observed(params, batch, key):
    start = RSSM.initial_state(B)
    final = RSSM.observe(params, start, batch, key)
    each = RSSM.observe_each(params, start, batch, key)

    def step(state, inputs):
        obs, action, first, key_t = inputs
        state = RSSM.observe_step(params, state, obs, action, first, key_t)
        return state, state

    _, stepped = jax.lax.scan(step, start, (batch.obs, batch.prev_actions, batch.resets, jax.random.split(key, T)))
    return final, each, stepped


@settings(max_examples=5, deadline=None)
@given(st.lists(st.booleans(), min_size=T * B, max_size=T * B), st.integers(0, 2**16))
def test_the_three_ways_to_observe_agree_for_every_reset_pattern(flags, seed):
    """Sequence mode (a probe's context), the state after every step (imagination starts) and acting step by step."""
    keys = jax.random.split(jax.random.key(seed), 3)
    resets = jnp.asarray(flags).reshape(T, B).at[0].set(True)
    batch = SequenceBatch(
        obs=jax.random.normal(keys[0], (T, B, OBS)),
        prev_actions=jax.nn.one_hot(jax.random.randint(keys[1], (T, B), 0, ACTIONS), ACTIONS) * ~resets[..., None],
        rewards=jnp.zeros((T, B)),
        continues=jnp.ones((T, B)),
        resets=resets,
    )
    final, each, stepped = _observed(RSSM_PARAMS, batch, keys[2])
    last = jax.tree.map(lambda x: x[-1], each)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(last)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # acting draws z_t with its own key per step, so compare what does not depend on the draw: the first step's h
    np.testing.assert_allclose(stepped.latent.h[0], each.latent.h[0], rtol=1e-5, atol=1e-5)
    assert RSSM.features(last).shape == (B, 8 + 2 * 3)
