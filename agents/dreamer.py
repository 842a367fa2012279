"""A Dreamer-style agent (DreamerV3's recipe) whose world model's backbone is a plug-in, in one jitted update.

``make_trainer(config, env, env_params) -> Trainer(init, update, num_updates)``,
the interface the experiment runner drives (``scripts/train.py agent=dreamer
world_model=rssm backbone=<name> env=<id>``); :func:`mnemax.agents.trainer.make_train`
scans it for a whole run. The world model is any registered
:class:`~mnemax.worldmodels.protocol.WorldModel` (``config.world_model`` picks
it); Dreamer calls nothing else of it.

One update:

1. **Act** ``steps_per_update`` steps in ``num_envs`` envs: the world model
   observes each step (``observe_step``, its state threaded, reset at episode
   starts), the actor samples from the model's ``features`` (``[h_t, z_t]`` for RSSM). The env runs under
   :class:`~mnemax.agents.dreamer_env.DelayedReset` so every stored step is one
   observation with its reward and flags.
2. **Store** the steps in a flashbax trajectory buffer (one row per env).
3. **Train**, once enough is stored, ``train_steps`` times (from ``train_ratio``):
   sample ``batch_size`` sequences of ``sequence_length``; **model step** on the
   world model's ``loss``; **imagine** ``horizon`` steps from the model's state
   after every replayed step (``observe_each``, all ``T * B`` of them);
   **actor-critic step**: actor (REINFORCE with normalised advantages and an
   entropy bonus) and critic (two-hot on lambda-returns bootstrapped from the
   slow critic); slow critic EMA.

Sequences are replayed from the model's initial state (their first step is
treated as a reset), as DreamerV3 does. Everything, replay included, lives in the runner
state, so ``jax.vmap`` over seeds and orbax checkpoints work unchanged.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Callable, NamedTuple

import flashbax
import jax
import jax.numpy as jnp
import optax

from mnemax.agents.actor_critic import (
    Actor,
    Critic,
    ReturnScale,
    action_distribution,
    action_input,
    ema_update,
    imagination_weights,
    lambda_returns,
    return_divisor,
    taken_log_prob,
    update_return_scale,
)
from mnemax.agents.dreamer_env import DelayedReset, DreamerStep, make_dreamer_env
from mnemax.agents.registry import register_agent
from mnemax.agents.trainer import ActionSpace, Metrics, Trainer, action_space, episode_metrics, make_train
from mnemax.worldmodels.batch import SequenceBatch
from mnemax.worldmodels.distributions import twohot_log_prob, twohot_mean
from mnemax.worldmodels.protocol import WorldModel, flatten_time
from mnemax.worldmodels.registry import make_world_model, world_model_name
from mnemax.worldmodels.sequence_model import WorldModelConfig


@dataclasses.dataclass(frozen=True)
class DreamerConfig:
    """Everything that fixes the Dreamer program; hashable, so it is static under ``jit``.

    Defaults follow DreamerV3 (2023) where they do not depend on model size:
    horizon 15, lambda 0.95, discount ``1 - 1/333``, entropy 3e-4, return EMA
    0.01, slow critic EMA 0.02, batch 16 x 64, train ratio 32; the world
    model's own defaults (32 x 32 latents, KL balancing) are in its config.

    Attributes (the less obvious ones):
      steps_per_update: env steps per env between two training phases.
      train_ratio: replayed steps (``batch_size * sequence_length``) trained on per env step;
        it sets :attr:`train_steps`, the gradient steps per update.
      replay_capacity: steps the replay holds over all envs (oldest overwritten).
      train_start: env steps per env collected before training starts (at least ``sequence_length``).
      world_model: the config of any registered world model (``world_model=rssm``:
        :class:`~mnemax.worldmodels.sequence_model.WorldModelConfig`, which also holds the backbone
        and what the policy reads, ``policy_inputs``).
      actor_critic_hidden, actor_critic_layers: the actor's and critic's MLP width and depth.
      actor_unimix: uniform mixture weight of the discrete actor's categorical (DreamerV3: 1%).
      critic_bins, critic_twohot_limit: two-hot bins of the critic over ``[-limit, limit]`` in symlog
        space (DreamerV3: 255 over 20). With returns far below one bin's width (0.16 by default), e.g.
        the +-1/48 rewards of popgym's card games, a limit of 1 resolves them; set the world model's
        reward head (``world_model.twohot_limit``) alike.
      model_lr_end: if set, the world model's learning rate falls linearly from ``model_lr`` to this over
        the run's gradient steps (:attr:`model_gradient_steps`); ``None`` keeps it constant (DreamerV3).
        Meant to move the features the actor reads less late in a run; on RepeatPreviousEasy it changed
        nothing measurable (docs/WORLDMODELS.md, "the advantage's horizon").
      slow_target: the lambda-returns bootstrap from the slow (EMA) critic when true, from the critic
        being trained when false (DreamerV3's ``imag_loss.slowtar: False``, the default). With the slow
        critic's targets and no regulariser the shipped CartPole agent reached about 400 and fell to
        about 120 on each of 3 seeds, its imagined return still rising (docs/WORLDMODELS.md, "Critic targets").
      slow_regularizer: weight of DreamerV3's pull of the critic towards the slow critic's value
        (``imag_loss.slowreg: 1.0``, the default): the critic's loss adds this times the two-hot log-loss
        of the slow critic's value. 0 turns it off.
    """

    total_steps: int = 100_000
    num_envs: int = 4
    steps_per_update: int = 16
    train_ratio: float = 32.0
    batch_size: int = 16
    sequence_length: int = 64
    replay_capacity: int = 1_000_000
    train_start: int = 256
    world_model: Any = WorldModelConfig()
    actor_critic_hidden: int = 256
    actor_critic_layers: int = 2
    actor_unimix: float = 0.01
    critic_bins: int = 255
    critic_twohot_limit: float = 20.0
    horizon: int = 15
    gamma: float = 1.0 - 1.0 / 333.0
    lam: float = 0.95
    entropy_coef: float = 3e-4
    return_ema_rate: float = 0.01
    slow_critic_rate: float = 0.02
    slow_target: bool = False
    slow_regularizer: float = 1.0
    model_lr: float = 1e-4
    model_lr_end: float | None = None
    actor_lr: float = 3e-5
    critic_lr: float = 3e-5
    model_grad_clip: float = 1000.0
    actor_critic_grad_clip: float = 100.0
    adam_eps: float = 1e-8

    @property
    def env_steps_per_update(self) -> int:
        return self.num_envs * self.steps_per_update

    @property
    def num_updates(self) -> int:
        """How many updates ``total_steps`` buys (rounded down)."""
        return self.total_steps // self.env_steps_per_update

    @property
    def train_steps(self) -> int:
        """Gradient steps per update: ``train_ratio * env steps per update / replayed steps per gradient step``, at least 1."""
        return max(1, round(self.train_ratio * self.env_steps_per_update / (self.batch_size * self.sequence_length)))

    @property
    def first_training_update(self) -> int:
        """Index of the first update that trains: the one after which ``train_start`` steps per env are stored."""
        return -(-self.train_start // self.steps_per_update) - 1

    @property
    def model_gradient_steps(self) -> int:
        """World-model gradient steps in a whole run: ``train_steps`` per update from :attr:`first_training_update`."""
        return max(1, (self.num_updates - self.first_training_update) * self.train_steps)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field and how to fix it (run when the config is built)."""
        for name in (
            "total_steps", "num_envs", "steps_per_update", "batch_size", "sequence_length", "horizon", "train_start",
            "actor_critic_hidden", "actor_critic_layers",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"DreamerConfig.{name} must be a positive integer, got {getattr(self, name)}.")
        if self.num_updates < 1:
            raise ValueError(
                f"total_steps={self.total_steps} is less than one update of num_envs * steps_per_update = "
                f"{self.env_steps_per_update} steps; raise total_steps or lower num_envs/steps_per_update."
            )
        if self.train_ratio <= 0:
            raise ValueError(f"train_ratio must be positive, got {self.train_ratio}.")
        if self.train_start < self.sequence_length:
            raise ValueError(
                f"train_start={self.train_start} must be at least sequence_length={self.sequence_length}, "
                "so the replay holds a whole sequence when training starts."
            )
        if self.replay_capacity // self.num_envs < max(self.train_start, self.sequence_length) + self.steps_per_update:
            raise ValueError(
                f"replay_capacity={self.replay_capacity} holds {self.replay_capacity // self.num_envs} steps per env, "
                f"fewer than train_start + steps_per_update = {self.train_start + self.steps_per_update}; raise it."
            )
        if not self.slow_regularizer >= 0:  # also refuses NaN
            raise ValueError(f"DreamerConfig.slow_regularizer must be 0 or more, got {self.slow_regularizer}.")
        for name in ("model_lr", "actor_lr", "critic_lr", "model_grad_clip", "actor_critic_grad_clip", "adam_eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DreamerConfig.{name} must be a positive number, got {getattr(self, name)}.")
        if self.model_lr_end is not None and not 0.0 <= self.model_lr_end <= self.model_lr:
            raise ValueError(
                f"model_lr_end={self.model_lr_end} must lie in [0, model_lr={self.model_lr}] (a decay), or be None "
                "for a constant learning rate."
            )
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"gamma and lam must lie in [0, 1], got {self.gamma} and {self.lam}.")
        if not 0.0 <= self.actor_unimix < 1.0:
            raise ValueError(f"actor_unimix is a mixing weight in [0, 1), got {self.actor_unimix}.")
        if self.critic_bins < 2 or not self.critic_twohot_limit > 0:
            raise ValueError(
                f"The critic needs at least 2 two-hot bins over a positive limit, got critic_bins={self.critic_bins} "
                f"and critic_twohot_limit={self.critic_twohot_limit}."
            )
        world_model_name(self.world_model)  # a registered world-model config (which checked itself when built)


class Params(NamedTuple):
    model: Any
    actor: Any
    critic: Any
    slow_critic: Any


class OptStates(NamedTuple):
    model: Any
    actor: Any
    critic: Any


class ActingState(NamedTuple):
    """What acting carries between env steps, ``[B, ...]``."""

    env_state: Any
    step: DreamerStep  # the observation to act on next, with its reward and flags
    model_state: Any  # the world model's state after the previous step, [B, ...]
    prev_action: jax.Array  # [B, A] world-model input of the previous action (zero at episode starts)
    episode_return: jax.Array  # [B]
    episode_length: jax.Array  # [B]


class DreamerState(NamedTuple):
    """Everything Dreamer carries from one update to the next: a pytree of arrays, checkpointable as is."""

    params: Params
    opt_states: OptStates
    return_scale: ReturnScale
    replay: Any  # flashbax TrajectoryBufferState
    acting: ActingState
    rng: jax.Array
    update_count: jax.Array  # int32 scalar


class DreamerParts(NamedTuple):
    """What :func:`make_trainer` builds once and every step of an update reads."""

    config: DreamerConfig
    env: DelayedReset
    env_params: Any
    actions: ActionSpace
    world_model: WorldModel
    actor: Actor
    critic: Critic
    replay: Any  # flashbax trajectory buffer
    model_opt: optax.GradientTransformation
    actor_opt: optax.GradientTransformation
    critic_opt: optax.GradientTransformation


def _optimizer(learning_rate: float | optax.Schedule, clip: float, eps: float) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(learning_rate, eps=eps))


def model_learning_rate(config: DreamerConfig) -> float | optax.Schedule:
    """The world model's learning rate: ``model_lr``, or a linear decay to ``model_lr_end`` over the run's gradient steps."""
    if config.model_lr_end is None:
        return config.model_lr
    return optax.linear_schedule(config.model_lr, config.model_lr_end, config.model_gradient_steps)


@register_agent("dreamer", DreamerConfig, make_env=make_dreamer_env)
def make_trainer(config: DreamerConfig, env: Any, env_params: Any) -> Trainer:
    """Build Dreamer's ``init(key) -> DreamerState`` and ``update(state) -> (state, metrics)`` for ``env``."""
    actions = action_space(env, env_params, "Dreamer")
    env = DelayedReset(env)
    obs_shape = tuple(jax.eval_shape(env.reset, jax.random.key(0), env_params)[0].obs.shape)
    length = config.sequence_length
    parts = DreamerParts(
        config=config,
        env=env,
        env_params=env_params,
        actions=actions,
        world_model=make_world_model(config.world_model, obs_shape, actions.size),
        actor=Actor(actions.size, actions.discrete, config.actor_critic_hidden, config.actor_critic_layers),
        critic=Critic(config.critic_bins, config.actor_critic_hidden, config.actor_critic_layers),
        replay=flashbax.make_trajectory_buffer(
            add_batch_size=config.num_envs,
            sample_batch_size=config.batch_size,
            sample_sequence_length=length,
            period=1,
            min_length_time_axis=length,
            max_length_time_axis=config.replay_capacity // config.num_envs,
        ),
        model_opt=_optimizer(model_learning_rate(config), config.model_grad_clip, config.adam_eps),
        actor_opt=_optimizer(config.actor_lr, config.actor_critic_grad_clip, config.adam_eps),
        critic_opt=_optimizer(config.critic_lr, config.actor_critic_grad_clip, config.adam_eps),
    )
    return Trainer(init=partial(init, parts), update=partial(update, parts), num_updates=config.num_updates)


# --------------------------------------------------------------------------- init


def replay_item(step: DreamerStep, prev_action: jax.Array) -> dict[str, jax.Array]:
    """What the replay stores of one step, ``[B, ...]``."""
    return {
        "obs": step.obs,
        "prev_action": prev_action,
        "reward": step.reward,
        "continue": 1.0 - step.terminal.astype(jnp.float32),
        "first": step.first,
    }


def init(parts: DreamerParts, key: jax.Array) -> DreamerState:
    """Fresh parameters and optimiser states, ``num_envs`` reset envs, an empty replay."""
    config, world_model, num_envs = parts.config, parts.world_model, parts.config.num_envs
    model_key, actor_key, critic_key, reset_key, key = jax.random.split(key, 5)
    model_params = world_model.init(model_key)
    dummy = world_model.features(world_model.initial_state(1))
    actor_params = parts.actor.init(actor_key, dummy)
    critic_params = parts.critic.init(critic_key, dummy)
    params = Params(model_params, actor_params, critic_params, critic_params)
    opt_states = OptStates(
        parts.model_opt.init(model_params), parts.actor_opt.init(actor_params), parts.critic_opt.init(critic_params)
    )
    reset_envs = jax.vmap(parts.env.reset, in_axes=(0, None))
    step, env_state = reset_envs(jax.random.split(reset_key, num_envs), parts.env_params)
    prev_action = jnp.zeros((num_envs, parts.actions.size), jnp.float32)
    acting = ActingState(
        env_state=env_state,
        step=step,
        model_state=world_model.initial_state(num_envs),
        prev_action=prev_action,
        episode_return=jnp.zeros((num_envs,), jnp.float32),
        episode_length=jnp.zeros((num_envs,), jnp.int32),
    )
    example = jax.tree.map(lambda x: x[0], replay_item(step, prev_action))
    return DreamerState(
        params=params,
        opt_states=opt_states,
        return_scale=ReturnScale.zeros(),
        replay=parts.replay.init(example),
        acting=acting,
        rng=key,
        update_count=jnp.zeros((), jnp.int32),
    )


# --------------------------------------------------------------------------- act and store


def env_action(actions: ActionSpace, action: jax.Array) -> jax.Array:
    """The env's action for the actor's: an index, or ``[-1, 1]`` mapped onto the Box bounds."""
    if actions.discrete:
        return action
    return actions.low + (jnp.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (actions.high - actions.low)


class ActedStep(NamedTuple):
    """What one acting step hands back, ``[B, ...]``: the replay item and the episode bookkeeping."""

    item: dict[str, jax.Array]
    ended: jax.Array  # the step ended an episode
    returns: jax.Array  # that episode's return so far
    lengths: jax.Array  # and its length


def act_step(parts: DreamerParts, params: Params, acting: ActingState, key: jax.Array) -> tuple[ActingState, ActedStep]:
    """The world model observes the current step, the actor samples an action, every env steps."""
    config, discrete, size = parts.config, parts.actions.discrete, parts.actions.size
    observe_key, action_key, env_key = jax.random.split(key, 3)
    step = acting.step
    prev_action = jnp.where(step.first[:, None], 0.0, acting.prev_action)
    model_state = parts.world_model.observe_step(params.model, acting.model_state, step.obs, prev_action, step.first, observe_key)
    outputs = parts.actor.apply(params.actor, parts.world_model.features(model_state))
    action = action_distribution(discrete, outputs, config.actor_unimix).sample(seed=action_key)
    step_envs = jax.vmap(parts.env.step, in_axes=(0, 0, 0, None))
    env_keys = jax.random.split(env_key, config.num_envs)
    next_step, env_state = step_envs(env_keys, acting.env_state, env_action(parts.actions, action), parts.env_params)
    returns = acting.episode_return + next_step.reward
    lengths = acting.episode_length + (~next_step.first).astype(jnp.int32)
    acting = ActingState(
        env_state=env_state,
        step=next_step,
        model_state=model_state,
        prev_action=action_input(discrete, action, size),
        episode_return=jnp.where(next_step.first, 0.0, returns),
        episode_length=jnp.where(next_step.first, 0, lengths),
    )
    return acting, ActedStep(replay_item(step, prev_action), next_step.last, returns, lengths)


def act_and_store(parts: DreamerParts, state: DreamerState, key: jax.Array) -> tuple[DreamerState, ActedStep]:
    """``steps_per_update`` acting steps; the steps go into the replay. Returns the steps ``[T, B]``."""
    keys = jax.random.split(key, parts.config.steps_per_update)
    acting, acted = jax.lax.scan(lambda a, k: act_step(parts, state.params, a, k), state.acting, keys)
    items = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), acted.item)  # [B, T, ...] for flashbax
    return state._replace(acting=acting, replay=parts.replay.add(state.replay, items)), acted


# --------------------------------------------------------------------------- train


def sample_batch(parts: DreamerParts, replay: Any, key: jax.Array) -> SequenceBatch:
    """``batch_size`` replayed sequences ``[T, B, ...]``; each one's first step counts as a reset."""
    items = parts.replay.sample(replay, key).experience  # [B, T, ...]
    items = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), items)  # [T, B, ...]
    return SequenceBatch(
        obs=items["obs"],
        prev_actions=items["prev_action"],
        rewards=items["reward"],
        continues=items["continue"],
        resets=items["first"].at[0].set(True),
    )


def model_step(parts: DreamerParts, params: Any, opt_state: Any, batch: SequenceBatch, key: jax.Array):
    """One gradient step on the world model's loss: ``(params, opt_state, metrics)``."""
    grads, metrics = jax.grad(lambda p: parts.world_model.loss(p, batch, key), has_aux=True)(params)
    updates, opt_state = parts.model_opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, {**metrics, "model_grad_norm": optax.tree.norm(grads)}


def policy(parts: DreamerParts, actor_params: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``policy(features [N, F], key) -> world-model action input [N, A]``, sampled from the actor."""
    discrete, size = parts.actions.discrete, parts.actions.size

    def act(features: jax.Array, key: jax.Array) -> jax.Array:
        outputs = parts.actor.apply(actor_params, jax.lax.stop_gradient(features))
        action = action_distribution(discrete, outputs, parts.config.actor_unimix).sample(seed=key)
        return action_input(discrete, action, size)

    return act


class ImaginedReturns(NamedTuple):
    """An imagined rollout with its lambda-returns, what the actor and critic learn from."""

    features: jax.Array  # [H + 1, N, F]
    actions: jax.Array  # [H + 1, N, A]
    returns: jax.Array  # [H, N]
    weights: jax.Array  # [H, N] probability and discount of still being in the episode


def imagine_returns(parts: DreamerParts, params: Params, batch: SequenceBatch, key: jax.Array) -> ImaginedReturns:
    """Imagine ``horizon`` steps from the model's state after every step of ``batch``, with their lambda-returns.

    The returns bootstrap from :func:`bootstrap_critic`'s parameters (the slow
    critic or the trained one, by ``config.slow_target``).
    """
    config, world_model = parts.config, parts.world_model
    start_key, imagine_key = jax.random.split(key)
    states = world_model.observe_each(params.model, world_model.initial_state(batch.resets.shape[1]), batch, start_key)
    starts = jax.lax.stop_gradient(flatten_time(states))  # [T * B, ...]
    imagined = world_model.imagine(params.model, starts, policy(parts, params.actor), config.horizon, imagine_key)
    features = jax.lax.stop_gradient(imagined.features)  # [H + 1, N, F]
    discounts = config.gamma * imagined.continues  # [H, N]
    target_values = critic_value(parts, bootstrap_critic(config, params), features)  # [H + 1, N]
    returns = lambda_returns(imagined.rewards, discounts, target_values, config.lam)  # [H, N]
    weights = imagination_weights(batch.continues.reshape(-1), discounts)[:-1]  # [H, N]
    return ImaginedReturns(features, imagined.actions, returns, weights)


def bootstrap_critic(config: DreamerConfig, params: Params) -> Any:
    """The critic parameters lambda-returns bootstrap from: the slow critic's if ``config.slow_target``, else the critic's."""
    return params.slow_critic if config.slow_target else params.critic


def critic_objective(logits: jax.Array, returns: jax.Array, weights: jax.Array, limit: float,
                     slow_values: jax.Array | None = None, slow_regularizer: float = 0.0) -> jax.Array:
    """DreamerV3's critic loss: two-hot log-loss of the returns plus ``slow_regularizer`` times that of the
    slow critic's values, weighted by the chance of still being in the episode. ``logits [H, N, bins]``,
    the rest ``[H, N]``; both targets are constants (no gradient flows into them). Without ``slow_values``
    (a zero regulariser) the slow critic is not evaluated at all."""
    loss = -twohot_log_prob(logits, jax.lax.stop_gradient(returns), limit)
    if slow_values is not None:
        loss = loss - slow_regularizer * twohot_log_prob(logits, jax.lax.stop_gradient(slow_values), limit)
    return jnp.mean(weights * loss)


def critic_value(parts: DreamerParts, critic_params: Any, features: jax.Array) -> jax.Array:
    return twohot_mean(parts.critic.apply(critic_params, features), parts.config.critic_twohot_limit)


def actor_critic_step(parts: DreamerParts, state: DreamerState, params: Params, batch: SequenceBatch, key: jax.Array):
    """Imagine from every posterior state of ``batch`` and update actor, critic and slow critic."""
    config, actor, critic, discrete = parts.config, parts.actor, parts.critic, parts.actions.discrete
    imagined = imagine_returns(parts, params, batch, key)
    features, actions, returns, weights = imagined.features, imagined.actions, imagined.returns, imagined.weights
    return_scale = update_return_scale(state.return_scale, returns, config.return_ema_rate)
    divisor = return_divisor(return_scale)

    def actor_loss(actor_params):
        outputs = actor.apply(actor_params, features[:-1])
        dist = action_distribution(discrete, outputs, config.actor_unimix)
        taken = actions[:-1] if not discrete else jnp.argmax(actions[:-1], axis=-1)
        baseline = critic_value(parts, params.critic, features[:-1])
        advantages = jax.lax.stop_gradient((returns - baseline) / divisor)
        entropy = dist.entropy()
        loss = -jnp.mean(weights * (taken_log_prob(discrete, dist, taken) * advantages + config.entropy_coef * entropy))
        return loss, {"actor_loss": loss, "entropy": jnp.mean(entropy), "advantage": jnp.mean(advantages)}

    slow_values = critic_value(parts, params.slow_critic, features[:-1]) if config.slow_regularizer else None  # [H, N]

    def critic_loss(critic_params):
        logits = critic.apply(critic_params, features[:-1])
        loss = critic_objective(logits, returns, weights, config.critic_twohot_limit, slow_values, config.slow_regularizer)
        return loss, {"critic_loss": loss}

    actor_grads, actor_info = jax.grad(actor_loss, has_aux=True)(params.actor)
    critic_grads, critic_info = jax.grad(critic_loss, has_aux=True)(params.critic)
    actor_updates, actor_state = parts.actor_opt.update(actor_grads, state.opt_states.actor, params.actor)
    critic_updates, critic_state = parts.critic_opt.update(critic_grads, state.opt_states.critic, params.critic)
    new_critic = optax.apply_updates(params.critic, critic_updates)
    params = params._replace(
        actor=optax.apply_updates(params.actor, actor_updates),
        critic=new_critic,
        slow_critic=ema_update(params.slow_critic, new_critic, config.slow_critic_rate),
    )
    info = {**actor_info, **critic_info, "imagined_return": jnp.mean(returns[0]), "return_scale": divisor}
    return params, (actor_state, critic_state), return_scale, info


def train_step(parts: DreamerParts, state: DreamerState, key: jax.Array) -> tuple[DreamerState, Metrics]:
    """Sample a batch, then a model step and an actor-critic step on it."""
    sample_key, model_key, ac_key = jax.random.split(key, 3)
    batch = sample_batch(parts, state.replay, sample_key)
    model_params, model_state, model_info = model_step(parts, state.params.model, state.opt_states.model, batch, model_key)
    params = state.params._replace(model=model_params)
    params, (actor_state, critic_state), return_scale, ac_info = actor_critic_step(parts, state, params, batch, ac_key)
    state = state._replace(
        params=params,
        opt_states=OptStates(model_state, actor_state, critic_state),
        return_scale=return_scale,
    )
    return state, {**model_info, **ac_info}


def train_phase(parts: DreamerParts, state: DreamerState, key: jax.Array) -> tuple[DreamerState, Metrics]:
    """``train_steps`` train steps; metrics are their means."""
    keys = jax.random.split(key, parts.config.train_steps)
    state, info = jax.lax.scan(partial(train_step, parts), state, keys)
    return state, {k: jnp.mean(v) for k, v in info.items()}


def update(parts: DreamerParts, state: DreamerState) -> tuple[DreamerState, Metrics]:
    """Act ``steps_per_update`` steps, store them, then train ``train_steps`` times once the replay is warm."""
    config = parts.config
    rng, act_key, train_key = jax.random.split(state.rng, 3)
    state, acted = act_and_store(parts, state, act_key)
    state = state._replace(rng=rng)
    train = partial(train_phase, parts)
    shapes = jax.eval_shape(train, state, train_key)[1]

    def skip_training(state: DreamerState, key: jax.Array) -> tuple[DreamerState, Metrics]:
        return state, {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}

    state, train_info = jax.lax.cond(state.update_count >= config.first_training_update, train, skip_training, state, train_key)
    metrics = {
        "env_steps": ((state.update_count + 1) * config.env_steps_per_update).astype(jnp.float32),
        **episode_metrics(acted.ended, acted.returns, acted.lengths),
        **{k: v.astype(jnp.float32) for k, v in train_info.items()},
    }
    return state._replace(update_count=state.update_count + 1), metrics


__all__ = ["DreamerConfig", "DreamerState", "make_dreamer_env", "make_train", "make_trainer"]
