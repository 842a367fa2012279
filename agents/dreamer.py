"""A Dreamer-style agent (DreamerV3's recipe) whose world model's backbone is a plug-in, in one jitted update.

``make_trainer(config, env, env_params) -> Trainer(init, update, num_updates)``,
the interface the experiment runner drives (``scripts/train.py agent=dreamer
backbone=<name> env=<id>``); ``make_train`` scans it for a whole run.

One update:

1. **Act** ``steps_per_update`` steps in ``num_envs`` envs: the world model
   observes each step in step mode (T = 1, carry threaded, reset at episode
   starts), the actor samples from ``[h_t, z_t]``. The env runs under
   :class:`~mnemax.agents.dreamer_env.DelayedReset` so every stored step is one
   observation with its reward and flags.
2. **Store** the steps in a flashbax trajectory buffer (one row per env).
3. **Train**, once enough is stored, ``train_steps`` times (from ``train_ratio``):
   sample ``batch_size`` sequences of ``sequence_length``; world-model step
   (:func:`mnemax.worldmodels.losses.world_model_loss`, backbone in sequence
   mode); re-observe in step mode to get the carry at every posterior state;
   imagine ``horizon`` steps from all ``T * B`` of them; actor (REINFORCE with
   normalised advantages and an entropy bonus) and critic (two-hot on
   lambda-returns bootstrapped from the slow critic) steps; slow critic EMA.

Sequences are replayed from the initial carry (their first step is treated as
a reset), as DreamerV3 does. Everything, replay included, lives in the runner
state, so ``jax.vmap`` over seeds and orbax checkpoints work unchanged.
"""

from __future__ import annotations

import dataclasses
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
from mnemax.agents.ppo import Trainer
from mnemax.backbones import BackboneSpec
from mnemax.worldmodels.distributions import twohot_log_prob, twohot_mean
from mnemax.worldmodels.losses import SequenceBatch, world_model_loss
from mnemax.worldmodels.sequence_model import (
    LatentState,
    ModelCarry,
    WorldModelConfig,
    build_model,
    carry_features,
    heads,
    imagine,
    init_params,
    initial_carry,
    observe,
    observe_stepwise,
    output_features,
)

Metrics = dict[str, jax.Array]

DEFAULT_BACKBONE = BackboneSpec("gru", 256)
POLICY_INPUTS = ("output", "state", "full")


@dataclasses.dataclass(frozen=True)
class DreamerConfig:
    """Everything that fixes the Dreamer program; hashable, so it is static under ``jit``.

    Defaults follow DreamerV3 (2023) where they do not depend on model size:
    32 x 32 latents with 1% unimix, KL scales dyn 0.5 / rep 0.1 with 1 free
    nat, horizon 15, lambda 0.95, discount ``1 - 1/333``, entropy 3e-4,
    return EMA 0.01, slow critic EMA 0.02, batch 16 x 64, train ratio 32.

    Attributes (the less obvious ones):
      steps_per_update: env steps per env between two training phases.
      train_ratio: replayed steps (``batch_size * sequence_length``) trained on per env step;
        it sets :attr:`train_steps`, the gradient steps per update.
      replay_capacity: steps the replay holds over all envs (oldest overwritten).
      train_start: env steps per env collected before training starts (at least ``sequence_length``).
      backbone: the world model's sequence core; ``None`` means GRU(256).
      twohot_limit: half-width in symlog space of the two-hot bins of the reward head and the critic
        (DreamerV3: 20). With rewards far below one bin's width (0.16 by default), e.g. the +-1/48 of
        popgym's card games, right and wrong guesses differ by little in the reward loss; a limit of 1
        (rewards and values up to +-1.7) separates them.
      policy_inputs: what the actor and critic read. ``"output"`` (DreamerV3): ``[h_t, z_t]``;
        ``"state"``: ``[s_t, z_t]`` with ``s_t`` the backbone's recurrent state (symlog of its real and
        imaginary parts for the SSMs); ``"full"``: ``[h_t, s_t, z_t]``. An SSM's output ``h_t`` is trained
        to serve the heads, whose reward at ``t`` concerns the action at ``t - 1``, so what the next action
        needs may sit in ``s_t`` but not in ``h_t`` (R2I feeds its policy the SSM state). ``"state"`` and
        ``"full"`` need a recurrent backbone (not ``transformer``).
      model_lr_end: if set, the world model's learning rate falls linearly from ``model_lr`` to this over
        the run's gradient steps (:attr:`model_gradient_steps`); ``None`` keeps it constant (DreamerV3).
        Meant to move the features the actor reads less late in a run; on RepeatPreviousEasy it changed
        nothing measurable (docs/WORLDMODELS.md, "the advantage's horizon").
    """

    total_steps: int = 100_000
    num_envs: int = 4
    steps_per_update: int = 16
    train_ratio: float = 32.0
    batch_size: int = 16
    sequence_length: int = 64
    replay_capacity: int = 1_000_000
    train_start: int = 256
    backbone: BackboneSpec | None = None
    classic_posterior: bool = False
    latent_groups: int = 32
    latent_classes: int = 32
    hidden: int = 256
    layers: int = 2
    unimix: float = 0.01
    dyn_scale: float = 0.5
    rep_scale: float = 0.1
    free_nats: float = 1.0
    reward_scale: float = 1.0
    num_bins: int = 255
    twohot_limit: float = 20.0
    policy_inputs: str = "output"
    horizon: int = 15
    gamma: float = 1.0 - 1.0 / 333.0
    lam: float = 0.95
    entropy_coef: float = 3e-4
    return_ema_rate: float = 0.01
    slow_critic_rate: float = 0.02
    model_lr: float = 1e-4
    model_lr_end: float | None = None
    actor_lr: float = 3e-5
    critic_lr: float = 3e-5
    model_grad_clip: float = 1000.0
    actor_critic_grad_clip: float = 100.0
    adam_eps: float = 1e-8

    @property
    def world_model(self) -> WorldModelConfig:
        """The :class:`WorldModelConfig` these fields describe."""
        return WorldModelConfig(
            backbone=self.backbone if self.backbone is not None else DEFAULT_BACKBONE,
            latent_groups=self.latent_groups,
            latent_classes=self.latent_classes,
            hidden=self.hidden,
            layers=self.layers,
            unimix=self.unimix,
            classic_posterior=self.classic_posterior,
            num_bins=self.num_bins,
            twohot_limit=self.twohot_limit,
            dyn_scale=self.dyn_scale,
            rep_scale=self.rep_scale,
            free_nats=self.free_nats,
            reward_scale=self.reward_scale,
        )

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

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent field and how to fix it."""
        for name in ("total_steps", "num_envs", "steps_per_update", "batch_size", "sequence_length", "horizon", "train_start"):
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
        if self.model_lr_end is not None and not 0.0 <= self.model_lr_end <= self.model_lr:
            raise ValueError(
                f"model_lr_end={self.model_lr_end} must lie in [0, model_lr={self.model_lr}] (a decay), or be None "
                "for a constant learning rate."
            )
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"gamma and lam must lie in [0, 1], got {self.gamma} and {self.lam}.")
        if self.backbone is not None and not isinstance(self.backbone, BackboneSpec):
            raise TypeError(f"DreamerConfig.backbone must be a mnemax.backbones.BackboneSpec or None, got {type(self.backbone).__name__}.")
        if self.policy_inputs not in POLICY_INPUTS:
            raise ValueError(
                f"policy_inputs={self.policy_inputs!r} is not one of {', '.join(map(repr, POLICY_INPUTS))}."
            )
        if self.policy_inputs != "output" and self.world_model.backbone.name == "transformer":
            raise ValueError(
                f"policy_inputs={self.policy_inputs!r} feeds the policy the backbone's recurrent state, and the "
                "transformer's carry is a KV cache; use policy_inputs='output' or a recurrent backbone."
            )
        self.world_model.validate()


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
    carry: ModelCarry  # world-model carry after the previous step
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


def _action_space(env: Any, env_params: Any) -> tuple[bool, int, Any, Any]:
    """``(discrete, action_size, low, high)`` of a gymnax action space."""
    space = env.action_space(env_params)
    if hasattr(space, "n"):
        return True, int(space.n), None, None
    shape = tuple(getattr(space, "shape", ()) or ())
    if len(shape) != 1:
        raise ValueError(
            f"Dreamer supports Discrete action spaces and Box spaces of shape (A,); this env's action space is "
            f"{type(space).__name__} with shape {shape}. Wrap the env to flatten its actions."
        )
    low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), shape)
    high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), shape)
    return False, shape[0], low, high


def _optimizer(learning_rate: float | optax.Schedule, clip: float, eps: float) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(learning_rate, eps=eps))


def model_learning_rate(config: DreamerConfig) -> float | optax.Schedule:
    """The world model's learning rate: ``model_lr``, or a linear decay to ``model_lr_end`` over the run's gradient steps."""
    if config.model_lr_end is None:
        return config.model_lr
    return optax.linear_schedule(config.model_lr, config.model_lr_end, config.model_gradient_steps)


def _flatten_time(tree: Any) -> Any:
    """``[T, B, ...] -> [T * B, ...]`` for every leaf."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)


def policy_features(policy_inputs: str) -> Callable[[LatentState, ModelCarry], jax.Array]:
    """``features(state, carry) -> [N, F]``, what the actor and critic read (see :attr:`DreamerConfig.policy_inputs`)."""
    if policy_inputs == "output":
        return output_features
    if policy_inputs == "state":
        return lambda state, carry: jnp.concatenate([carry_features(carry), state.z], axis=-1)
    return lambda state, carry: jnp.concatenate([state.h, carry_features(carry), state.z], axis=-1)


def make_trainer(config: DreamerConfig, env: Any, env_params: Any) -> Trainer:
    """Build Dreamer's ``init(key) -> DreamerState`` and ``update(state) -> (state, metrics)`` for ``env``."""
    config.validate()
    discrete, action_size, low, high = _action_space(env, env_params)
    env = DelayedReset(env)
    obs_shape = tuple(jax.eval_shape(env.reset, jax.random.key(0), env_params)[0].obs.shape)
    model = build_model(config.world_model, obs_shape, action_size)
    actor = Actor(action_size, discrete, config.hidden, config.layers)
    critic = Critic(config.num_bins, config.hidden, config.layers)
    num_envs, batch, length = config.num_envs, config.batch_size, config.sequence_length
    replay = flashbax.make_trajectory_buffer(
        add_batch_size=num_envs,
        sample_batch_size=batch,
        sample_sequence_length=length,
        period=1,
        min_length_time_axis=length,
        max_length_time_axis=config.replay_capacity // num_envs,
    )
    model_opt = _optimizer(model_learning_rate(config), config.model_grad_clip, config.adam_eps)
    actor_opt = _optimizer(config.actor_lr, config.actor_critic_grad_clip, config.adam_eps)
    critic_opt = _optimizer(config.critic_lr, config.actor_critic_grad_clip, config.adam_eps)
    reset_envs = jax.vmap(env.reset, in_axes=(0, None))
    step_envs = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    features_of = policy_features(config.policy_inputs)

    def env_action(action: jax.Array) -> jax.Array:
        if discrete:
            return action
        return low + (jnp.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (high - low)

    def policy(actor_params: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
        """``policy(features [N, F], key) -> world-model action input [N, A]``, sampled from the actor."""

        def act(features: jax.Array, key: jax.Array) -> jax.Array:
            outputs = actor.apply(actor_params, jax.lax.stop_gradient(features))
            action = action_distribution(discrete, outputs, config.unimix).sample(seed=key)
            return action_input(discrete, action, action_size)

        return act

    def record(step: DreamerStep, prev_action: jax.Array) -> dict[str, jax.Array]:
        """A replay item for one step, ``[B, ...]``."""
        return {
            "obs": step.obs,
            "prev_action": prev_action,
            "reward": step.reward,
            "continue": 1.0 - step.terminal.astype(jnp.float32),
            "first": step.first,
        }

    def init(key: jax.Array) -> DreamerState:
        model_key, actor_key, critic_key, reset_key, key = jax.random.split(key, 5)
        model_params = init_params(model, model_key)
        carry = initial_carry(model, 1)
        dummy = features_of(LatentState(jnp.zeros((1, model.config.backbone.features)), carry.latent), carry)
        actor_params = actor.init(actor_key, dummy)
        critic_params = critic.init(critic_key, dummy)
        params = Params(model_params, actor_params, critic_params, critic_params)
        opt_states = OptStates(model_opt.init(model_params), actor_opt.init(actor_params), critic_opt.init(critic_params))
        step, env_state = reset_envs(jax.random.split(reset_key, num_envs), env_params)
        prev_action = jnp.zeros((num_envs, action_size), jnp.float32)
        acting = ActingState(
            env_state=env_state,
            step=step,
            carry=initial_carry(model, num_envs),
            prev_action=prev_action,
            episode_return=jnp.zeros((num_envs,), jnp.float32),
            episode_length=jnp.zeros((num_envs,), jnp.int32),
        )
        example = jax.tree.map(lambda x: x[0], record(step, prev_action))
        return DreamerState(
            params=params,
            opt_states=opt_states,
            return_scale=ReturnScale.zeros(),
            replay=replay.init(example),
            acting=acting,
            rng=key,
            update_count=jnp.zeros((), jnp.int32),
        )

    def act_step(params: Params, acting: ActingState, key: jax.Array):
        """Observe the current step (T = 1), sample an action, step every env."""
        observe_key, action_key, env_key = jax.random.split(key, 3)
        step = acting.step
        prev_action = jnp.where(step.first[:, None], 0.0, acting.prev_action)
        carry, observation = observe(
            model, params.model, acting.carry, step.obs[None], prev_action[None], step.first[None], observe_key
        )
        state = jax.tree.map(lambda x: x[0], observation.state)
        outputs = actor.apply(params.actor, features_of(state, carry))
        action = action_distribution(discrete, outputs, config.unimix).sample(seed=action_key)
        next_step, env_state = step_envs(jax.random.split(env_key, num_envs), acting.env_state, env_action(action), env_params)
        returns = acting.episode_return + next_step.reward
        lengths = acting.episode_length + (~next_step.first).astype(jnp.int32)
        ended = next_step.last
        acting = ActingState(
            env_state=env_state,
            step=next_step,
            carry=carry,
            prev_action=action_input(discrete, action, action_size),
            episode_return=jnp.where(next_step.first, 0.0, returns),
            episode_length=jnp.where(next_step.first, 0, lengths),
        )
        return acting, (record(step, prev_action), ended, returns, lengths)

    def model_step(params: Params, opt_state: Any, batch: SequenceBatch, key: jax.Array):
        carry = initial_carry(model, batch.resets.shape[1])
        grads, (metrics, _, _) = jax.grad(lambda p: world_model_loss(model, p, carry, batch, key), has_aux=True)(params)
        updates, opt_state = model_opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {**metrics, "model_grad_norm": optax.tree.norm(grads)}

    def critic_value(critic_params: Any, features: jax.Array) -> jax.Array:
        return twohot_mean(critic.apply(critic_params, features), config.twohot_limit)

    def actor_critic_step(state: DreamerState, params: Params, batch: SequenceBatch, key: jax.Array):
        """Imagine from every posterior state of ``batch`` and update actor, critic and slow critic."""
        start_key, imagine_key = jax.random.split(key)
        carry = initial_carry(model, batch.resets.shape[1])
        _, observation, carries = observe_stepwise(
            model, params.model, carry, batch.obs, batch.prev_actions, batch.resets, start_key
        )
        starts = jax.lax.stop_gradient(_flatten_time(observation.state))
        carries = jax.lax.stop_gradient(_flatten_time(carries))
        states, features, actions = imagine(
            model, params.model, carries, starts, policy(params.actor), config.horizon, imagine_key, features_of
        )
        states = jax.lax.stop_gradient(states)
        features = jax.lax.stop_gradient(features)  # [H + 1, N, F]
        predicted = heads(model, params.model, jax.tree.map(lambda x: x[1:], states))
        rewards = twohot_mean(predicted.reward_logits, config.twohot_limit)  # [H, N]
        discounts = config.gamma * jax.nn.sigmoid(predicted.continue_logits)
        target_values = critic_value(params.slow_critic, features)  # [H + 1, N]
        returns = lambda_returns(rewards, discounts, target_values, config.lam)  # [H, N]
        weights = imagination_weights(batch.continues.reshape(-1), discounts)[:-1]  # [H, N]
        return_scale = update_return_scale(state.return_scale, returns, config.return_ema_rate)
        divisor = return_divisor(return_scale)

        def actor_loss(actor_params):
            outputs = actor.apply(actor_params, features[:-1])
            dist = action_distribution(discrete, outputs, config.unimix)
            taken = actions[:-1] if not discrete else jnp.argmax(actions[:-1], axis=-1)
            baseline = critic_value(params.critic, features[:-1])
            advantages = jax.lax.stop_gradient((returns - baseline) / divisor)
            entropy = dist.entropy()
            loss = -jnp.mean(weights * (taken_log_prob(discrete, dist, taken) * advantages + config.entropy_coef * entropy))
            return loss, {"actor_loss": loss, "entropy": jnp.mean(entropy), "advantage": jnp.mean(advantages)}

        def critic_loss(critic_params):
            logits = critic.apply(critic_params, features[:-1])
            loss = -jnp.mean(weights * twohot_log_prob(logits, jax.lax.stop_gradient(returns), config.twohot_limit))
            return loss, {"critic_loss": loss}

        actor_grads, actor_info = jax.grad(actor_loss, has_aux=True)(params.actor)
        critic_grads, critic_info = jax.grad(critic_loss, has_aux=True)(params.critic)
        actor_updates, actor_state = actor_opt.update(actor_grads, state.opt_states.actor, params.actor)
        critic_updates, critic_state = critic_opt.update(critic_grads, state.opt_states.critic, params.critic)
        new_critic = optax.apply_updates(params.critic, critic_updates)
        params = params._replace(
            actor=optax.apply_updates(params.actor, actor_updates),
            critic=new_critic,
            slow_critic=ema_update(params.slow_critic, new_critic, config.slow_critic_rate),
        )
        info = {
            **actor_info,
            **critic_info,
            "imagined_return": jnp.mean(returns[0]),
            "return_scale": divisor,
        }
        return params, (actor_state, critic_state), return_scale, info

    def train_step(state: DreamerState, key: jax.Array) -> tuple[DreamerState, Metrics]:
        sample_key, model_key, ac_key = jax.random.split(key, 3)
        items = replay.sample(state.replay, sample_key).experience  # [B, T, ...]
        items = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), items)  # [T, B, ...]
        batch = SequenceBatch(
            obs=items["obs"],
            prev_actions=items["prev_action"],
            rewards=items["reward"],
            continues=items["continue"],
            resets=items["first"].at[0].set(True),
        )
        model_params, model_state, model_info = model_step(state.params.model, state.opt_states.model, batch, model_key)
        params = state.params._replace(model=model_params)
        params, (actor_state, critic_state), return_scale, ac_info = actor_critic_step(state, params, batch, ac_key)
        state = state._replace(
            params=params,
            opt_states=OptStates(model_state, actor_state, critic_state),
            return_scale=return_scale,
        )
        return state, {**model_info, **ac_info}

    train_metric_shapes: dict[str, Any] = {}

    def train_phase(state: DreamerState, key: jax.Array) -> tuple[DreamerState, Metrics]:
        state, info = jax.lax.scan(train_step, state, jax.random.split(key, config.train_steps))
        return state, {k: jnp.mean(v) for k, v in info.items()}

    def skip_training(state: DreamerState, key: jax.Array) -> tuple[DreamerState, Metrics]:
        return state, {k: jnp.zeros(v.shape, v.dtype) for k, v in train_metric_shapes.items()}

    def update(state: DreamerState) -> tuple[DreamerState, Metrics]:
        """Act ``steps_per_update`` steps, store them, then train ``train_steps`` times once the replay is warm."""
        rng, act_key, train_key = jax.random.split(state.rng, 3)
        acting, (items, ended, returns, lengths) = jax.lax.scan(
            lambda a, k: act_step(state.params, a, k), state.acting, jax.random.split(act_key, config.steps_per_update)
        )
        items = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), items)  # [B, T, ...] for flashbax
        state = state._replace(acting=acting, replay=replay.add(state.replay, items), rng=rng)
        if not train_metric_shapes:
            train_metric_shapes.update(jax.eval_shape(train_phase, state, train_key)[1])
        state, train_info = jax.lax.cond(
            state.update_count >= config.first_training_update, train_phase, skip_training, state, train_key
        )
        ended = ended.astype(jnp.float32)
        count = jnp.sum(ended)

        def mean_or_nan(x):
            return jnp.where(count > 0, jnp.sum(x * ended) / jnp.maximum(count, 1.0), jnp.nan)

        metrics = {
            "env_steps": ((state.update_count + 1) * config.env_steps_per_update).astype(jnp.float32),
            "episode_return": mean_or_nan(returns),
            "episode_length": mean_or_nan(lengths.astype(jnp.float32)),
            "episodes": count,
            **{k: v.astype(jnp.float32) for k, v in train_info.items()},
        }
        return state._replace(update_count=state.update_count + 1), metrics

    return Trainer(init=init, update=update, num_updates=config.num_updates)


def make_train(config: DreamerConfig, env: Any, env_params: Any) -> Callable[[jax.Array], tuple[DreamerState, Metrics]]:
    """``train(key) -> (state, metrics)``: init then ``lax.scan`` of ``num_updates`` updates (``jax.vmap`` it over seeds)."""
    trainer = make_trainer(config, env, env_params)

    def train(key: jax.Array) -> tuple[DreamerState, Metrics]:
        state = trainer.init(key)
        return jax.lax.scan(lambda s, _: trainer.update(s), state, None, length=trainer.num_updates)

    return train


__all__ = ["DreamerConfig", "DreamerState", "make_dreamer_env", "make_train", "make_trainer"]
