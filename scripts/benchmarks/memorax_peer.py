"""memorax's PPO built to match a mnemax :class:`~mnemax.agents.PPOConfig`, for same-run throughput ratios.

memorax (PyPI ``memorax``, the ``bench`` extra) is the closest peer library:
JAX/Flax PPO with GRU and S5 cores. This module builds its ``PPO`` at the
same env, batch, epochs, minibatches, learning rate, encoder, core and head
sizes as a mnemax config, so that the ppo benchmark can time both in one
process, call after call.

Differences that remain, and that the benchmark states next to its ratios:

- memorax builds **separate actor and critic networks**, each with its own
  encoder and core, so a recurrent memorax update runs the core twice where
  mnemax's shared torso runs it once. (mnemax has no option to split them.)
- Feed-forward networks are separate in both libraries (purejaxrl's layout).
- memorax's S5 layer is a ``Memoroid(S5Cell)`` (associative scan) inside a
  pre-norm residual block followed by a gated feed-forward block; mnemax's is
  its own S5 layer (sequential scan on a CPU) with a GELU-GLU output. The
  parameter counts of both are reported.
- memorax expects gymnax's older 5-value ``step``; :class:`FiveValueStep`
  folds ``terminated | truncated`` into ``done`` and drops ``info`` (which
  memorax would otherwise stack for every step), so memorax treats every
  episode end as terminal.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mnemax.agents import PPOConfig

ACTIVATIONS: dict[str, Callable] = {"tanh": nn.tanh, "relu": nn.relu, "leaky_relu": nn.leaky_relu}


class FiveValueStep:
    """A gymnax 1.x env seen through the 5-value ``step`` memorax expects: ``done = terminated | truncated``."""

    def __init__(self, env: Any):
        self._env = env

    def reset(self, key, params):
        return self._env.reset(key, params)

    def step(self, key, state, action, params):
        obs, state, reward, terminated, truncated, _ = self._env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), {}

    def action_space(self, params):
        return self._env.action_space(params)

    def observation_space(self, params):
        return self._env.observation_space(params)


class HeadStack(nn.Module):
    """An MLP of ``sizes`` then memorax's output ``head`` (policy or value), passing its keyword inputs on."""

    sizes: Sequence[int]
    activation: Callable
    head: nn.Module

    @nn.compact
    def __call__(self, x, **kwargs):
        from memorax.networks import MLP

        if self.sizes:
            x = MLP(features=tuple(self.sizes), activation=self.activation)(x)
        return self.head(x, **kwargs)

    def loss(self, output, aux, targets):
        return self.head.loss(output, aux, targets)


def _torso(config: PPOConfig) -> nn.Module:
    """memorax's sequence model for ``config.backbone`` (``gru`` or ``s5``), or the identity for feed-forward PPO."""
    from memorax.networks import (GatedFFN, Identity, Memoroid, PreNorm, RNN, Residual, S5Cell,
                                  SequenceModelWrapper, Stack)

    spec = config.backbone
    if spec is None:
        return SequenceModelWrapper(Identity())
    if spec.name == "gru":
        return RNN(cell=nn.GRUCell(features=spec.features))
    if spec.name == "s5":
        options = dict(spec.options)
        blocks = []
        for _ in range(options.get("num_layers", 1)):
            ssm = S5Cell(features=spec.features, state_size=options.get("state_size", spec.features))
            blocks += [
                Residual(module=PreNorm(module=Memoroid(cell=ssm))),
                Residual(module=PreNorm(module=GatedFFN(features=spec.features, expansion_factor=1))),
            ]
        return Stack(blocks=tuple(blocks))
    raise ValueError(f"the memorax peer benchmark knows the cores gru and s5, not {spec.name!r}")


def _network(config: PPOConfig, head: nn.Module) -> nn.Module:
    from memorax.networks import MLP, FeatureExtractor, Identity, Network

    activation = ACTIVATIONS[config.activation]
    # The encoder ends at the core's width, so the S5 stack's residual blocks fit (mnemax projects inside its core).
    encoder: Sequence[int] = tuple(config.encoder_sizes)
    if config.backbone is not None and config.backbone.name == "s5":
        encoder = (*encoder, config.backbone.features)
    extractor = FeatureExtractor(observation_extractor=MLP(features=encoder, activation=activation) if encoder else Identity())
    return Network(feature_extractor=extractor, torso=_torso(config),
                   head=HeadStack(sizes=tuple(config.head_sizes), activation=activation, head=head))


def make_memorax_ppo(config: PPOConfig, env: Any, env_params: Any):
    """memorax's ``PPO`` agent at ``config``'s sizes and settings, on ``env`` (a mnemax gymnax 1.x env)."""
    from memorax.algorithms.ppo import PPO
    from memorax.algorithms.ppo import PPOConfig as MemoraxPPOConfig
    from memorax.networks.heads import Categorical, VNetwork

    action_dim = int(env.action_space(env_params).n)
    peer_config = MemoraxPPOConfig(
        name="ppo",
        num_envs=config.num_envs,
        num_eval_envs=config.num_envs,
        num_steps=config.num_steps,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        num_minibatches=config.num_minibatches,
        update_epochs=config.update_epochs,
        normalize_advantage=config.normalize_advantages,
        clip_coef=config.clip_eps,
        clip_vloss=True,  # mnemax's value loss is clipped, as purejaxrl's
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
    )
    steps_per_anneal = config.num_minibatches * config.update_epochs
    learning_rate = (
        optax.linear_schedule(config.learning_rate, 0.0, steps_per_anneal * config.num_updates)
        if config.anneal_lr else config.learning_rate
    )
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                            optax.adam(learning_rate, eps=config.adam_eps))
    return PPO(
        cfg=peer_config,
        env=FiveValueStep(env),
        env_params=env_params,
        actor_network=_network(config, Categorical(action_dim=action_dim)),
        critic_network=_network(config, VNetwork()),
        actor_optimizer=optimizer,
        critic_optimizer=optimizer,
    )


@dataclasses.dataclass
class PeerCase:
    """A function of ``args`` that runs whole PPO updates, and what one call does."""

    run: Callable
    args: tuple
    env_steps: int
    parameters: int


def memorax_case(config: PPOConfig, env: Any, env_params: Any, updates: int) -> PeerCase:
    """memorax PPO running ``updates`` updates per call (its own ``train``), from an initialised state."""
    agent = make_memorax_ppo(config, env, env_params)
    key, state = agent.init(jax.random.key(0))
    env_steps = config.steps_per_update * updates

    def run(key, state):
        key, state, _ = agent.train(key, state, env_steps)
        return key, state

    count = sum(x.size for x in jax.tree.leaves((state.actor_params, state.critic_params)))
    return PeerCase(run, (key, state), env_steps, count)
