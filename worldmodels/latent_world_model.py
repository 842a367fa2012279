"""The latent sequence model (RSSM, TSSM, S4WM by backbone) behind the :class:`~mnemax.worldmodels.protocol.WorldModel` protocol.

Registered as ``rssm`` (``world_model=rssm``, ``configs/worldmodel/rssm.yaml``);
its config is :class:`~mnemax.worldmodels.sequence_model.WorldModelConfig`.
Every method is one of the pure functions of :mod:`mnemax.worldmodels.sequence_model`
and :mod:`mnemax.worldmodels.losses`, with the model's module bound.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from mnemax.worldmodels.batch import SequenceBatch
from mnemax.worldmodels.distributions import twohot_mean
from mnemax.worldmodels.losses import world_model_loss
from mnemax.worldmodels.protocol import Imagination, Policy, Prediction
from mnemax.worldmodels.registry import register_world_model
from mnemax.worldmodels.sequence_model import (
    LatentSequenceModel,
    LatentState,
    ModelCarry,
    WorldModelConfig,
    build_model,
    heads,
    imagine,
    imagine_open_loop,
    init_params,
    initial_carry,
    observe,
    observe_stepwise,
    policy_features,
)



class LatentWorldState(NamedTuple):
    """The latent sequence model's state per batch element: the carry and the last ``(h_t, z_t)``, ``[B, ...]``."""

    carry: ModelCarry
    latent: LatentState


@dataclasses.dataclass(frozen=True)
class LatentWorldModel:
    """:class:`LatentSequenceModel` behind the :class:`~mnemax.worldmodels.protocol.WorldModel` protocol.

    Acting observes in step mode through the sequence path (T = 1); Dreamer's
    imagination starts come from :func:`observe_stepwise` (the carry at every
    step); probes observe a context in sequence mode.
    """

    module: LatentSequenceModel

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self.module.obs_shape

    @property
    def action_size(self) -> int:
        return self.module.action_size

    @property
    def config(self) -> WorldModelConfig:
        return self.module.config

    @property
    def targets(self) -> tuple[str, ...]:
        return ("observation", "reward", "continue")

    def init(self, key: jax.Array) -> Any:
        return init_params(self.module, key)

    def initial_state(self, batch_size: int) -> LatentWorldState:
        config = self.module.config
        h = jnp.zeros((batch_size, config.backbone.features), jnp.float32)
        carry = initial_carry(self.module, batch_size)
        return LatentWorldState(carry, LatentState(h, carry.latent))

    def features(self, state: LatentWorldState) -> jax.Array:
        return policy_features(self.module.config.policy_inputs)(state.latent, state.carry)

    def observe_step(self, params, state, obs, prev_action, first, key) -> LatentWorldState:
        carry, observation = observe(self.module, params, state.carry, obs[None], prev_action[None], first[None], key)
        return LatentWorldState(carry, jax.tree.map(lambda x: x[0], observation.state))

    def observe(self, params: Any, state: LatentWorldState, batch: SequenceBatch, key: jax.Array) -> LatentWorldState:
        """The state after the whole of ``batch`` (backbone in sequence mode)."""
        carry, observation = observe(self.module, params, state.carry, batch.obs, batch.prev_actions, batch.resets, key)
        return LatentWorldState(carry, jax.tree.map(lambda x: x[-1], observation.state))

    def observe_each(self, params: Any, state: LatentWorldState, batch: SequenceBatch, key: jax.Array) -> LatentWorldState:
        """The state after every step of ``batch``, ``[T, B, ...]`` (step mode, so every carry is kept)."""
        _, observation, carries = observe_stepwise(
            self.module, params, state.carry, batch.obs, batch.prev_actions, batch.resets, key
        )
        return LatentWorldState(carries, observation.state)

    def predict(self, params: Any, latent: LatentState) -> Prediction:
        out = heads(self.module, params, latent)
        reward = twohot_mean(out.reward_logits, self.module.config.twohot_limit)
        return Prediction(out.observation, reward, jax.nn.sigmoid(out.continue_logits))

    def imagine(self, params: Any, starts: LatentWorldState, policy: Policy, horizon: int, key: jax.Array) -> Imagination:
        features = policy_features(self.module.config.policy_inputs)
        states, reads, actions = imagine(self.module, params, starts.carry, starts.latent, policy, horizon, key, features)
        predicted = self.predict(params, jax.tree.map(lambda x: jax.lax.stop_gradient(x[1:]), states))
        return Imagination(reads, actions, predicted.reward, predicted.continues)

    def imagine_open_loop(self, params: Any, state: LatentWorldState, actions: jax.Array, key: jax.Array) -> Prediction:
        return self.predict(params, imagine_open_loop(self.module, params, state.carry, actions, key))

    def loss(self, params: Any, batch: SequenceBatch, key: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
        carry = initial_carry(self.module, batch.resets.shape[1])
        loss, (metrics, _, _) = world_model_loss(self.module, params, carry, batch, key)
        return loss, metrics


@register_world_model("rssm", WorldModelConfig)
def build_latent_world_model(config: WorldModelConfig, obs_shape: tuple[int, ...], action_size: int) -> LatentWorldModel:
    """The latent sequence model for observations of ``obs_shape`` and actions of width ``action_size``."""
    return LatentWorldModel(build_model(config, obs_shape, action_size))
