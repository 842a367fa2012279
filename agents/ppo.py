"""Proximal Policy Optimisation (Schulman et al. 2017) for feed-forward and memory policies, end to end in JAX.

``make_train(config, env, env_params)`` (:func:`mnemax.agents.trainer.make_train`) returns ``train(key) -> (state, metrics)``:
``init`` then ``lax.scan`` of one PPO update, with no Python loop and no host
sync, so a whole run compiles once and ``jax.vmap`` runs it over seeds and over
the traced hyper-parameters of :class:`HParams`. ``make_trainer`` exposes
``init`` and ``update`` separately for runners that checkpoint between chunks.

One update:

1. **Rollout** (``num_steps`` x ``num_envs``): the policy acts step by step;
   a recurrent backbone runs in step mode (T = 1) with ``resets`` = episode
   starts. At the same call the critic values the previous step's
   ``final_observation`` from the carry *before* any reset, the observation a
   truncated episode would have continued from.
2. **Advantages**: GAE (:mod:`mnemax.agents.returns`) bootstrapping through
   truncation, zeroing only at termination.
3. **Epochs**: ``update_epochs`` passes over ``num_minibatches`` minibatches.
   A recurrent network re-runs whole rollouts in sequence mode (for SSMs one
   scan over time, associative on accelerators and sequential on CPU, see
   backbones/scan.py; full backpropagation through time) from the carry saved at the
   rollout's start, so minibatches split the environments; a feed-forward one
   shuffles single transitions.

Traced hyper-parameters: ``train(key, hparams)`` and ``trainer.init(key, hparams)``
take an optional :class:`HParams` (learning rate, gamma, GAE lambda, clip range,
entropy and value coefficients) that is stored in the runner state; without it
the config's values are used. Everything else in :class:`PPOConfig` fixes shapes
or program structure and is static.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from mnemax.agents.networks import ACTIVATIONS, ActorCritic
from mnemax.agents.ppo_losses import clipped_surrogate_loss, clipped_value_loss, normalize_advantages
from mnemax.agents.registry import register_agent
from mnemax.agents.returns import generalized_advantage_estimate
from mnemax.agents.running_stats import initial_moments, normalize, observe_batch, scale
from mnemax.agents.trainer import Metrics, Trainer, action_space, episode_metrics, make_train
from mnemax.backbones import BackboneSpec, input_parts
from mnemax.envs import ClipAction, FlattenObservation, ObservationPart, PrevActionReward, RunningMoments
from mnemax.envs import make as make_env

METRIC_NAMES = (
    "env_steps",
    "episode_return",
    "episode_length",
    "episodes",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "grad_norm",
    "learning_rate",
)


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Everything that fixes PPO's program; hashable, so it is static under ``jit``.

    Defaults are purejaxrl's CartPole-v1 settings (64-64 tanh actor and critic,
    4 envs x 128 steps, 4 epochs x 4 minibatches, 5e5 steps). popjaxrl's POPGym
    settings are ``num_envs=64, num_steps=1024, update_epochs=30,
    num_minibatches=8, learning_rate=5e-5, anneal_lr=False, gae_lambda=1.0,
    ent_coef=0.0, vf_coef=1.0, encoder_sizes=(128, 256), head_sizes=(128, 128),
    activation="leaky_relu"``.

    ``learning_rate``, ``gamma``, ``gae_lambda``, ``clip_eps``, ``ent_coef`` and
    ``vf_coef`` are the defaults of :class:`HParams`, which may be traced.
    """

    total_steps: int = 500_000
    num_envs: int = 4
    num_steps: int = 128
    update_epochs: int = 4
    num_minibatches: int = 4
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    adam_eps: float = 1e-5
    normalize_observations: bool = False
    normalize_rewards: bool = False
    normalize_advantages: bool = True
    backbone: BackboneSpec | None = None
    encoder_sizes: tuple[int, ...] = ()
    head_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    token_features: int = 16
    conv_channels: tuple[int, ...] = ()
    reconstruction_weight: float = 0.0
    separate_critic: bool = False

    @property
    def steps_per_update(self) -> int:
        """Environment steps collected by one update: ``num_envs * num_steps``."""
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        """How many updates ``total_steps`` buys (rounded down)."""
        return self.total_steps // self.steps_per_update

    @property
    def recurrent(self) -> bool:
        return self.backbone is not None

    def hparams(self) -> "HParams":
        """The config's traced hyper-parameters as float32 scalars."""
        return HParams(*(jnp.asarray(getattr(self, f), jnp.float32) for f in HParams._fields))

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field and how to fix it (run when the config is built)."""
        for name in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches"):
            if getattr(self, name) < 1:
                raise ValueError(f"PPOConfig.{name} must be a positive integer, got {getattr(self, name)}.")
        for name in ("learning_rate", "clip_eps", "max_grad_norm", "adam_eps"):
            if not getattr(self, name) > 0:  # also refuses NaN
                raise ValueError(f"PPOConfig.{name} must be a positive number, got {getattr(self, name)}.")
        if self.token_features < 1:
            raise ValueError(f"PPOConfig.token_features must be a positive integer, got {self.token_features}.")
        for name in ("ent_coef", "vf_coef", "reconstruction_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"PPOConfig.{name} must be 0 or more, got {getattr(self, name)}.")
        for name in ("encoder_sizes", "head_sizes", "conv_channels"):
            if any(size < 1 for size in getattr(self, name)):
                raise ValueError(f"PPOConfig.{name} lists layer widths, which must be positive, got {getattr(self, name)}.")
        if self.num_updates < 1:
            raise ValueError(
                f"total_steps={self.total_steps} is less than one update of num_envs * num_steps = "
                f"{self.steps_per_update} steps; raise total_steps or lower num_envs/num_steps."
            )
        if self.recurrent and self.num_envs % self.num_minibatches:
            raise ValueError(
                f"A recurrent PPO splits minibatches across environments, so num_envs={self.num_envs} must be "
                f"divisible by num_minibatches={self.num_minibatches}."
            )
        if not self.recurrent and self.steps_per_update % self.num_minibatches:
            raise ValueError(
                f"num_envs * num_steps = {self.steps_per_update} must be divisible by "
                f"num_minibatches={self.num_minibatches}."
            )
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gamma and gae_lambda must lie in [0, 1], got {self.gamma} and {self.gae_lambda}.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}.")
        if self.backbone is not None and not isinstance(self.backbone, BackboneSpec):
            raise TypeError(
                f"PPOConfig.backbone must be a mnemax.backbones.BackboneSpec or None, got {type(self.backbone).__name__}."
            )


class HParams(NamedTuple):
    """Hyper-parameters that may be traced, so ``jax.vmap`` can sweep them in one compiled program."""

    learning_rate: jax.Array
    gamma: jax.Array
    gae_lambda: jax.Array
    clip_eps: jax.Array
    ent_coef: jax.Array
    vf_coef: jax.Array


class EpisodeTracker(NamedTuple):
    """Undiscounted return and length of the episode running in each environment, ``[B]``."""

    returns: jax.Array
    lengths: jax.Array


class RunnerState(NamedTuple):
    """Everything PPO carries from one update to the next: a pytree of arrays, checkpointable as is.

    Fields marked ``[B, ...]`` have the environment batch as leading axis
    (:data:`ENV_BATCH_FIELDS`); they are the ones sharded across devices.
    """

    params: Any  # network parameters
    opt_state: Any  # optax state
    hparams: HParams  # traced hyper-parameters, float32 scalars
    env_state: Any  # [B, ...]
    obs: jax.Array  # [B, D] raw flattened observation to act on next
    episode_start: jax.Array  # [B] bool: obs is the first of an episode (the backbone reset)
    final_obs: jax.Array  # [B, D] previous step's pre-reset observation (valued at the next call)
    carry: Any  # [B, ...] backbone carry after the last step (None when feed-forward)
    obs_stats: RunningMoments  # batch-wide observation statistics
    reward_stats: RunningMoments  # statistics of discounted returns, for reward scaling
    discounted_return: jax.Array  # [B] running discounted return, for reward scaling
    episodes: EpisodeTracker  # [B] running undiscounted return and length
    rng: jax.Array
    update_count: jax.Array  # int32 scalar


ENV_BATCH_FIELDS = ("env_state", "obs", "episode_start", "final_obs", "carry", "discounted_return", "episodes")
"""The :class:`RunnerState` fields whose leaves have the environment batch as leading axis."""


class Transition(NamedTuple):
    """One rollout step of every environment, stacked to ``[T, B, ...]`` by the rollout scan."""

    inputs: jax.Array  # [T, B, D] normalised observation fed to the network
    starts: jax.Array  # [T, B] episode-start flags (backbone resets)
    actions: jax.Array  # [T, B] or [T, B, A]
    log_probs: jax.Array  # [T, B]
    values: jax.Array  # [T, B] (filled in after the rollout when feed-forward)
    previous_next_values: jax.Array | None  # [T, B] recurrent: value of final_obs of step t-1 (junk at t=0)
    final_inputs: jax.Array | None  # [T, B, D] feed-forward: normalised pre-reset observation after step t
    rewards: jax.Array  # [T, B] (scaled when normalize_rewards)
    terminated: jax.Array  # [T, B]
    dones: jax.Array  # [T, B] terminated or truncated
    episode_returns: jax.Array  # [T, B] return of the episode that ended at t (valid where dones)
    episode_lengths: jax.Array  # [T, B]


def make_optimizer(config: PPOConfig, learning_rate: jax.Array) -> optax.GradientTransformation:
    """Global-norm clipping then Adam; the step size decays linearly per update when ``anneal_lr``.

    ``learning_rate`` may be traced; the optimiser is rebuilt inside the traced
    update with the runner state's value, so its state structure never changes.
    """
    steps_per_update = config.update_epochs * config.num_minibatches

    def schedule(count: jax.Array) -> jax.Array:
        if not config.anneal_lr:
            return learning_rate * jnp.ones_like(count, jnp.float32)
        return learning_rate * (1.0 - (count // steps_per_update) / config.num_updates)

    return optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(learning_rate=schedule, eps=config.adam_eps),
    )


def make_network(
    config: PPOConfig, action_dim: int, discrete: bool, parts: tuple[ObservationPart, ...] = ()
) -> ActorCritic:
    """The :class:`ActorCritic` that ``config`` describes, for observations made of ``parts``.

    ``parts`` are the named slices of the flat observation (:func:`env_observation_parts`);
    a backbone that reads named parts (DCEM) must find them there.
    """
    backbone = None if config.backbone is None else config.backbone.build()
    wanted = () if backbone is None else input_parts(backbone)
    missing = [name for name in wanted if name not in {part.name for part in parts}]
    if missing:
        found = ", ".join(part.name for part in parts) or "one unnamed array"
        raise ValueError(
            f"Backbone {config.backbone.name!r} reads the observation parts {', '.join(map(repr, wanted))}, "
            f"but this env's observation has {found}; use an env whose Dict observation has those keys "
            "(e.g. grounded/FastBinding-N3) or another backbone."
        )
    return ActorCritic(
        action_dim=action_dim,
        discrete=discrete,
        encoder_sizes=tuple(config.encoder_sizes),
        head_sizes=tuple(config.head_sizes),
        activation=config.activation,
        backbone=backbone,
        observation_parts=tuple(parts),
        token_features=config.token_features,
        conv_channels=tuple(config.conv_channels),
        reconstruction=config.reconstruction_weight > 0,
        separate_critic=config.separate_critic,
    )


def env_observation_parts(env: Any, env_params: Any) -> tuple[ObservationPart, ...]:
    """The named parts of ``env``'s flat observation, from a :class:`~mnemax.envs.FlattenObservation` in its wrappers.

    Envs without one (POPGym's :class:`~mnemax.envs.PrevActionReward`, user envs with
    flat observations) have no named parts: ``()``.
    """
    describe = getattr(env, "observation_parts", None)
    return tuple(describe(env_params)) if callable(describe) else ()


def feature_mask(parts: tuple[ObservationPart, ...]) -> np.ndarray | None:
    """``[D]`` true where the flat observation holds features (normalised), false at token ids; None: all features."""
    if not any(part.tokens for part in parts):
        return None
    return np.concatenate([np.full(part.size, not part.tokens) for part in parts])


def policy_distribution(discrete: bool, policy_params: Any) -> distrax.Distribution:
    """Categorical over ``logits``, or a diagonal Normal over ``(mean, log_std)`` (no squashing)."""
    if discrete:
        return distrax.Categorical(logits=policy_params)
    mean, log_std = policy_params
    return distrax.MultivariateNormalDiag(mean, jnp.exp(log_std))


def action_noise(key: jax.Array, discrete: bool, shape: tuple[int, ...]) -> jax.Array:
    """Noise for :func:`sample_with_noise`, drawn for a whole rollout at once: Gumbel if discrete, else N(0, 1).

    One batched draw instead of one per step: on a CPU each draw inside the
    rollout's scan is a small loop of its own (the threefry hash), which costs
    feed-forward PPO several percent of its time.
    """
    return jax.random.gumbel(key, shape) if discrete else jax.random.normal(key, shape)


def sample_with_noise(discrete: bool, policy_params: Any, noise: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(action, log_prob)`` from pre-drawn ``noise`` of the policy's shape ``[..., A]``.

    Categorical: the Gumbel-max draw ``argmax(logits + g)`` (as ``jax.random.categorical``);
    Gaussian: ``mean + std * eps``. Same distribution as sampling the policy directly.
    """
    if discrete:
        action = jnp.argmax(policy_params + noise, axis=-1)
    else:
        mean, log_std = policy_params
        action = mean + jnp.exp(log_std) * noise
    return action, policy_distribution(discrete, policy_params).log_prob(action)


def _batch_axis_check(network: ActorCritic) -> None:
    """Make sure every carry leaf has the batch as leading axis (minibatches and shards index it)."""
    one = jax.eval_shape(lambda: network.initialize_carry(1))
    two = jax.eval_shape(lambda: network.initialize_carry(2))
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
        if not a.shape or a.shape[0] != 1 or b.shape[0] != 2:
            raise ValueError(
                "PPO needs every leaf of the backbone's carry to have the batch as its leading axis; "
                f"initialize_carry(1) gave a leaf of shape {a.shape} and initialize_carry(2) one of shape {b.shape}."
            )


def _concat(tree_a: Any, tree_b: Any) -> Any:
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b], axis=0), tree_a, tree_b)


def _take(tree: Any, index: jax.Array, axis: int) -> Any:
    return jax.tree.map(lambda x: jnp.take(x, index, axis=axis), tree)


class PPOParts(NamedTuple):
    """What :func:`make_trainer` builds once and every step of an update reads."""

    config: PPOConfig
    env: Any
    env_params: Any
    network: ActorCritic
    discrete: bool
    action_dim: int
    obs_dim: int
    features: np.ndarray | None  # [D] bool, which observation values are normalised (None: all)
    constrain: Callable[[RunnerState], RunnerState]  # sharding constraint (identity without a mesh)


class Rollout(NamedTuple):
    """What :func:`rollout` hands the learning half of an update."""

    state: RunnerState  # after the rollout
    transitions: Transition  # [T, B]
    next_values: jax.Array  # [T, B] value of the observation after step t, before any auto-reset


def make_ppo_parts(config: PPOConfig, env: Any, env_params: Any, mesh: Mesh | None = None) -> PPOParts:
    """The network, action space and observation size PPO needs for ``env`` (config checked when it was built)."""
    actions = action_space(env, env_params, "PPO")
    observation_parts = env_observation_parts(env, env_params)
    network = make_network(config, actions.size, actions.discrete, observation_parts)
    if config.recurrent:
        _batch_axis_check(network)
    obs_shape = jax.eval_shape(env.reset, jax.random.key(0), env_params)[0].shape
    return PPOParts(
        config=config,
        env=env,
        env_params=env_params,
        network=network,
        discrete=actions.discrete,
        action_dim=actions.size,
        obs_dim=int(np.prod(obs_shape)),
        features=feature_mask(observation_parts),
        constrain=_sharding_constraint(config, mesh),
    )


@register_agent("ppo", PPOConfig, make_env=lambda name, **kwargs: make_ppo_env(name, **kwargs))
def make_trainer(config: PPOConfig, env: Any, env_params: Any, *, mesh: Mesh | None = None) -> Trainer:
    """Build PPO's ``init`` and ``update`` for ``env`` (gymnax 1.x API, auto-reset, ``final_observation``).

    With ``mesh`` (a :class:`jax.sharding.Mesh` with one axis), every environment-batch
    leaf of the runner state is constrained to be split over that axis and the
    rest is replicated; ``jit`` then runs the rollout on each device's share of
    environments and averages gradients across devices through the batch-mean
    loss. ``num_envs`` must be divisible by the number of devices.
    """
    parts = make_ppo_parts(config, env, env_params, mesh)
    return Trainer(init=functools.partial(init, parts), update=functools.partial(update, parts), num_updates=config.num_updates)


def make_rollout(config: PPOConfig, env: Any, env_params: Any) -> Callable[[RunnerState, jax.Array], Rollout]:
    """``rollout(state, key) -> Rollout(state, transitions [T, B], next_values [T, B])``: the acting half of an update.

    For inspecting what PPO learns from (tests, analysis); ``update`` calls the same function.
    """
    return functools.partial(rollout, make_ppo_parts(config, env, env_params))


# --------------------------------------------------------------------------- init


def _flat(parts: PPOParts, obs: jax.Array) -> jax.Array:
    return obs.reshape(obs.shape[0], parts.obs_dim).astype(jnp.float32)


def network_input(config: PPOConfig, features: np.ndarray | None, obs_stats: RunningMoments, obs: jax.Array) -> jax.Array:
    """The observation as the network reads it: normalised when configured, except token ids (``features`` false)."""
    if not config.normalize_observations:
        return obs
    normalized = normalize(obs_stats, obs)
    return normalized if features is None else jnp.where(features, normalized, obs)


def _network_input(parts: PPOParts, obs_stats: RunningMoments, obs: jax.Array) -> jax.Array:
    return network_input(parts.config, parts.features, obs_stats, obs)


def init(parts: PPOParts, key: jax.Array, hparams: HParams | None = None) -> RunnerState:
    """Fresh parameters and optimiser state, ``num_envs`` reset envs; ``hparams`` default to the config's."""
    config, network, num_envs, obs_dim = parts.config, parts.network, parts.config.num_envs, parts.obs_dim
    hparams = config.hparams() if hparams is None else HParams(*(jnp.asarray(h, jnp.float32) for h in hparams))
    key, init_key, reset_key = jax.random.split(key, 3)
    reset_envs = jax.vmap(parts.env.reset, in_axes=(0, None))
    obs, env_state = reset_envs(jax.random.split(reset_key, num_envs), parts.env_params)
    obs = _flat(parts, obs)
    carry = network.initialize_carry(num_envs)
    starts = jnp.ones((num_envs,), bool)
    params = network.init(init_key, network.initialize_carry(1), jnp.zeros((1, 1, obs_dim)), jnp.ones((1, 1), bool))
    opt_state = make_optimizer(config, hparams.learning_rate).init(params)
    obs_stats = initial_moments((obs_dim,))
    if config.normalize_observations:
        obs_stats = observe_batch(obs_stats, obs)
    state = RunnerState(
        params=params,
        opt_state=opt_state,
        hparams=hparams,
        env_state=env_state,
        obs=obs,
        episode_start=starts,
        final_obs=obs,
        carry=carry,
        obs_stats=obs_stats,
        reward_stats=initial_moments(),
        discounted_return=jnp.zeros((num_envs,), jnp.float32),
        episodes=EpisodeTracker(jnp.zeros((num_envs,), jnp.float32), jnp.zeros((num_envs,), jnp.int32)),
        rng=key,
        update_count=jnp.zeros((), jnp.int32),
    )
    return parts.constrain(state)


# --------------------------------------------------------------------------- rollout


class PolicyStep(NamedTuple):
    """The network's reading of one step, ``[B, ...]``."""

    carry: Any  # backbone carry after the step (None when feed-forward)
    policy_params: Any  # logits, or (mean, log_std)
    values: jax.Array | None  # V(s_t) (recurrent only)
    previous_next_values: jax.Array | None  # V(final s_t of step t-1), same carry, no reset (recurrent only)


def policy_step(parts: PPOParts, state: RunnerState, inputs: jax.Array) -> PolicyStep:
    """Run the network on the observation to act on.

    Recurrent: the same backbone call also values the previous step's
    pre-reset observation. Feed-forward: only the actor runs here (the
    unused critic is dead code that XLA drops); all values are computed in
    one batched call after the rollout.
    """
    network, num_envs = parts.network, parts.config.num_envs
    if not parts.config.recurrent:
        _, (policy_params, _) = network.apply(state.params, None, inputs[None], state.episode_start[None])
        return PolicyStep(None, jax.tree.map(lambda p: p[0], policy_params), None, None)
    # Rows [0, B): the observation to act on, reset where an episode starts.
    # Rows [B, 2B): the previous step's pre-reset observation from the same
    # carry without reset, which is V(s_t) for the bootstrap of step t-1.
    both = jnp.concatenate([inputs, _network_input(parts, state.obs_stats, state.final_obs)])[None]
    resets = jnp.concatenate([state.episode_start, jnp.zeros_like(state.episode_start)])[None]
    carry, (policy_params, both_values) = network.apply(state.params, _concat(state.carry, state.carry), both, resets)
    carry = jax.tree.map(lambda c: c[:num_envs], carry)
    policy_params = jax.tree.map(lambda p: p[0, :num_envs], policy_params)
    return PolicyStep(carry, policy_params, both_values[0, :num_envs], both_values[0, num_envs:])


def rollout_step(parts: PPOParts, state: RunnerState, randomness: tuple[jax.Array, jax.Array]) -> tuple[RunnerState, Transition]:
    """Act once in every env with this step's ``(action noise [B, A], env keys [B])``."""
    config = parts.config
    noise, env_keys = randomness
    inputs = _network_input(parts, state.obs_stats, state.obs)
    read = policy_step(parts, state, inputs)
    carry = read.carry if config.recurrent else state.carry
    action, log_prob = sample_with_noise(parts.discrete, read.policy_params, noise)

    step_envs = jax.vmap(parts.env.step, in_axes=(0, 0, 0, None))
    obs, env_state, reward, terminated, truncated, info = step_envs(env_keys, state.env_state, action, parts.env_params)
    obs, final_obs = _flat(parts, obs), _flat(parts, info["final_observation"])
    reward = reward.astype(jnp.float32)
    done = jnp.logical_or(terminated, truncated)
    episodes = EpisodeTracker(state.episodes.returns + reward, state.episodes.lengths + 1)
    obs_stats = observe_batch(state.obs_stats, obs) if config.normalize_observations else state.obs_stats
    discounted_return, reward_stats, train_reward = state.discounted_return, state.reward_stats, reward
    if config.normalize_rewards:
        discounted_return = state.discounted_return * state.hparams.gamma + reward
        reward_stats = observe_batch(reward_stats, discounted_return)
        train_reward = scale(reward_stats, reward)
        discounted_return = jnp.where(done, 0.0, discounted_return)
    transition = Transition(
        inputs=inputs,
        starts=state.episode_start,
        actions=action,
        log_probs=log_prob,
        values=read.values,
        previous_next_values=read.previous_next_values,
        final_inputs=None if config.recurrent else _network_input(parts, obs_stats, final_obs),
        rewards=train_reward,
        terminated=terminated,
        dones=done,
        episode_returns=episodes.returns,
        episode_lengths=episodes.lengths.astype(jnp.float32),
    )
    state = state._replace(
        env_state=env_state,
        obs=obs,
        episode_start=done,
        final_obs=final_obs,
        carry=carry,
        obs_stats=obs_stats,
        reward_stats=reward_stats,
        discounted_return=discounted_return,
        episodes=EpisodeTracker(jnp.where(done, 0.0, episodes.returns), jnp.where(done, 0, episodes.lengths)),
    )
    return state, transition


def rollout(parts: PPOParts, state: RunnerState, key: jax.Array) -> Rollout:
    """``num_steps`` steps of every env, and the value of the observation that followed each.

    ``next_values[t]`` is the critic's value of the observation that followed
    step t before any auto-reset, from the carry after step t.
    """
    config, network, num_envs = parts.config, parts.network, parts.config.num_envs
    act_key, env_key = jax.random.split(key)
    randomness = (
        action_noise(act_key, parts.discrete, (config.num_steps, num_envs, parts.action_dim)),
        jax.random.split(env_key, (config.num_steps, num_envs)),
    )
    state, traj = jax.lax.scan(functools.partial(rollout_step, parts), state, randomness)
    if not config.recurrent:
        # V(s_t) and V(final s_{t+1}) for every step in one batched call: [T, 2B].
        both = jnp.concatenate([traj.inputs, traj.final_inputs], axis=1)
        _, (_, values) = network.apply(state.params, None, both, jnp.zeros(both.shape[:2], bool))
        return Rollout(state, traj._replace(values=values[:, :num_envs]), values[:, num_envs:])
    # V(final_obs) of the last step, from the carry after it (no reset).
    _, (_, last_values) = network.apply(
        state.params,
        state.carry,
        _network_input(parts, state.obs_stats, state.final_obs)[None],
        jnp.zeros((1, num_envs), bool),
    )
    return Rollout(state, traj, jnp.concatenate([traj.previous_next_values[1:], last_values]))


# --------------------------------------------------------------------------- learn


def ppo_loss(parts: PPOParts, params: Any, batch: dict[str, Any], hparams: HParams) -> tuple[jax.Array, Metrics]:
    """Clipped surrogate + value loss - entropy bonus + weighted auxiliary losses on one minibatch.

    Recurrent networks re-run in sequence mode. Auxiliary losses are what the
    network sows into ``"aux_losses"`` (its reconstruction of the observation),
    each weighted by the config and reported as ``<name>_loss``.
    """
    (_, (policy_params, values)), sown = parts.network.apply(
        params, batch["carry"], batch["inputs"], batch["starts"], mutable=["aux_losses"]
    )
    dist = policy_distribution(parts.discrete, policy_params)
    log_prob = dist.log_prob(batch["actions"])
    advantages = batch["advantages"]
    if parts.config.normalize_advantages:
        advantages = normalize_advantages(advantages)
    policy_loss, diagnostics = clipped_surrogate_loss(log_prob, batch["log_probs"], advantages, hparams.clip_eps)
    value_loss = clipped_value_loss(values, batch["values"], batch["targets"], hparams.clip_eps)
    entropy = jnp.mean(dist.entropy())
    total = policy_loss + hparams.vf_coef * value_loss - hparams.ent_coef * entropy
    auxiliary = {f"{name}_loss": sum(values) for name, values in sown.get("aux_losses", {}).items()}
    weights = {"reconstruction_loss": parts.config.reconstruction_weight}
    total = total + sum(weights[name] * loss for name, loss in auxiliary.items())
    return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy, **diagnostics, **auxiliary}


def minibatches(parts: PPOParts, batch: dict[str, Any], key: jax.Array) -> dict[str, Any]:
    """Shuffle and split into ``[M, ...]``: whole env sequences if recurrent, single transitions if not."""
    m, num_envs, num_steps = parts.config.num_minibatches, parts.config.num_envs, parts.config.num_steps
    if parts.config.recurrent:
        order = jax.random.permutation(key, num_envs).reshape(m, num_envs // m)
        sequences = {k: v for k, v in batch.items() if k != "carry"}
        return jax.vmap(lambda idx: {**_take(sequences, idx, 1), "carry": _take(batch["carry"], idx, 0)})(order)
    size = num_envs * num_steps
    order = jax.random.permutation(key, size).reshape(m, 1, size // m)
    flat_batch = jax.tree.map(lambda x: x.reshape((size,) + x.shape[2:]), {k: v for k, v in batch.items() if k != "carry"})
    split = jax.tree.map(lambda x: x[order], flat_batch)
    split["carry"] = None
    return split


def learn(parts: PPOParts, state: RunnerState, batch: dict[str, Any], key: jax.Array) -> tuple[Any, Any, Metrics]:
    """``update_epochs`` x ``num_minibatches`` gradient steps on ``batch``: ``(params, opt_state, mean metrics)``."""
    hp = state.hparams
    optimizer = make_optimizer(parts.config, hp.learning_rate)

    def gradient_step(carry, minibatch):
        params, opt_state = carry
        grads, info = jax.grad(functools.partial(ppo_loss, parts), has_aux=True)(params, minibatch, hp)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), {**info, "grad_norm": optax.tree.norm(grads)}

    def epoch(carry, key):
        return jax.lax.scan(gradient_step, carry, minibatches(parts, batch, key))

    (params, opt_state), info = jax.lax.scan(
        epoch, (state.params, state.opt_state), jax.random.split(key, parts.config.update_epochs)
    )
    return params, opt_state, {k: jnp.mean(v).astype(jnp.float32) for k, v in info.items()}


def update(parts: PPOParts, state: RunnerState) -> tuple[RunnerState, Metrics]:
    """One PPO update: rollout, GAE, ``update_epochs`` x ``num_minibatches`` gradient steps."""
    config = parts.config
    state = parts.constrain(state)
    rng, rollout_key, epoch_key = jax.random.split(state.rng, 3)
    start_carry = state.carry
    state, traj, next_values = rollout(parts, state, rollout_key)
    hp = state.hparams
    advantages, targets = generalized_advantage_estimate(
        traj.rewards, traj.values, next_values, traj.terminated, traj.dones, hp.gamma, hp.gae_lambda
    )
    batch = {
        "inputs": traj.inputs,
        "starts": traj.starts,
        "actions": traj.actions,
        "log_probs": traj.log_probs,
        "values": traj.values,
        "advantages": advantages,
        "targets": targets,
        "carry": start_carry,
    }
    params, opt_state, metrics = learn(parts, state, batch, epoch_key)
    if config.anneal_lr:
        lr = hp.learning_rate * (1.0 - state.update_count / config.num_updates)
    else:
        lr = hp.learning_rate
    metrics.update(
        env_steps=((state.update_count + 1) * config.steps_per_update).astype(jnp.float32),
        **episode_metrics(traj.dones, traj.episode_returns, traj.episode_lengths),
        learning_rate=jnp.asarray(lr, jnp.float32),
    )
    state = state._replace(params=params, opt_state=opt_state, rng=rng, update_count=state.update_count + 1)
    return parts.constrain(state), metrics


def _sharding_constraint(config: PPOConfig, mesh: Mesh | None) -> Callable[[RunnerState], RunnerState]:
    """Identity without a mesh; else split env-batch leaves over the mesh's axis and replicate the rest."""
    if mesh is None:
        return lambda state: state
    if len(mesh.axis_names) != 1:
        raise ValueError(f"PPO shards over one mesh axis (the env batch); this mesh has axes {mesh.axis_names}.")
    if config.num_envs % mesh.size:
        raise ValueError(
            f"num_envs={config.num_envs} must be divisible by the {mesh.size} devices of the mesh to shard envs evenly."
        )

    def constrain(state: RunnerState) -> RunnerState:
        return jax.lax.with_sharding_constraint(state, runner_state_shardings(state, mesh))

    return constrain


def runner_state_shardings(state: RunnerState, mesh: Mesh) -> RunnerState:
    """A :class:`RunnerState` of :class:`NamedSharding`: env-batch leaves split on axis 0, everything else replicated.

    Use it with ``jax.device_put(state, runner_state_shardings(state, mesh))`` to
    place a state, or as ``out_shardings`` of a jitted ``init``.
    """
    (axis,) = mesh.axis_names
    batch = NamedSharding(mesh, PartitionSpec(axis))
    replicated = NamedSharding(mesh, PartitionSpec())
    fields = {}
    for name, value in state._asdict().items():
        sharding = batch if name in ENV_BATCH_FIELDS else replicated
        fields[name] = jax.tree.map(lambda _: sharding, value)
    return RunnerState(**fields)


def make_ppo_env(name: str, **kwargs: Any) -> tuple[Any, Any]:
    """The environment ``name`` as PPO trains on it: ``mnemax.envs.make(name, **kwargs)``, wrapped.

    POPGym tasks (``popgym/...``) get :class:`~mnemax.envs.PrevActionReward`
    (previous action one-hot, previous reward and an episode-start flag appended
    to a flat observation), the input popjaxrl's memory agents read; other envs
    get :class:`~mnemax.envs.FlattenObservation`. Continuous actions get
    :class:`~mnemax.envs.ClipAction`, since PPO's Normal policy is not squashed.
    PPO tracks episode returns itself, so no statistics wrapper is needed.
    """
    env, params = make_env(name, **kwargs)
    env = PrevActionReward(env) if name.startswith("popgym/") else FlattenObservation(env)
    if not hasattr(env.action_space(params), "n"):
        env = ClipAction(env)
    return env, params


__all__ = ["HParams", "PPOConfig", "RunnerState", "env_observation_parts", "make_network", "make_ppo_env", "make_rollout", "make_train", "make_trainer", "runner_state_shardings"]
