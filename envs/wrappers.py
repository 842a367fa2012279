"""Wrappers: gymnax-1.x environments that wrap another one and stay vmappable.

Every wrapper keeps its extra bookkeeping inside the env state (a
``flax.struct`` dataclass around the inner state), so ``jax.vmap`` over
``reset``/``step`` gives each copy its own bookkeeping and ``jit`` compiles a
wrapper exactly as it compiles the bare env. Params pass through unchanged.
``observation_space``/``action_space`` describe what the wrapper emits and
accepts.

* :class:`EpisodeStatistics` -- returns and lengths of finished episodes in ``info`` (what PPO logs).
* :class:`FlattenObservation` -- observation to a 1-D float32 vector (uint8 pixels scaled to [0, 1]).
* :class:`NormalizeObservation`, :class:`NormalizeReward` -- running mean/variance normalisation.
* :class:`ClipAction` -- continuous actions clipped to the Box bounds.
* :class:`PrevActionReward` -- previous action, previous reward and an episode-start flag appended.
* :class:`MetaRL` -- meta-episodes of ``k`` trials of one randomly projected task (in-context RL).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces
from gymnax.wrappers.purerl import GymnaxWrapper, LogWrapper

# ---------------------------------------------------------------------------
# Spaces as flat float vectors


def flat_size(space: Any) -> int:
    """Length of :func:`flatten` 's output for ``space`` (Discrete is one-hot)."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, spaces.Box):
        return int(np.prod(space.shape, dtype=int))
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        return sum(flat_size(s) for s in _children(space))
    raise TypeError(f"Cannot flatten a {type(space).__name__} space; use Box, Discrete, Dict or Tuple spaces.")


def flat_bounds(space: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` of :func:`flatten` 's output, each ``[flat_size(space)]`` float32."""
    if isinstance(space, spaces.Discrete):
        return np.zeros(space.n, np.float32), np.ones(space.n, np.float32)
    if isinstance(space, spaces.Box):
        scale = _pixel_scale(space)
        low = np.broadcast_to(np.asarray(space.low, np.float32) * scale, space.shape).reshape(-1)
        high = np.broadcast_to(np.asarray(space.high, np.float32) * scale, space.shape).reshape(-1)
        return low, high
    lows, highs = zip(*(flat_bounds(s) for s in _children(space)))
    return np.concatenate(lows), np.concatenate(highs)


def _pixel_scale(space: spaces.Box) -> float:
    """1/255 for uint8 Boxes (pixels, symbolic grids), so that they flatten into [0, 1]; 1 otherwise."""
    return 1.0 / 255.0 if np.dtype(space.dtype) == np.uint8 else 1.0


def flatten(space: Any, x: Any) -> jax.Array:
    """One value of ``space`` as a ``[flat_size(space)]`` float32 vector (Discrete one-hot, uint8 divided by 255)."""
    if isinstance(space, spaces.Discrete):
        return jax.nn.one_hot(x, space.n, dtype=jnp.float32)
    if isinstance(space, spaces.Box):
        return jnp.reshape(jnp.asarray(x, jnp.float32) * _pixel_scale(space), (-1,))
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        return jnp.concatenate([flatten(s, v) for _, s, v in space_items(space, x)])
    raise TypeError(f"Cannot flatten a {type(space).__name__} space; use Box, Discrete, Dict or Tuple spaces.")


def flat_box(space: Any) -> spaces.Box:
    """The Box that :func:`flatten` maps ``space`` into."""
    low, high = flat_bounds(space)
    return spaces.Box(low, high, (low.shape[0],), jnp.float32)


@dataclasses.dataclass(frozen=True)
class ObservationPart:
    """One named part of a flattened observation: where it sits in the flat vector and what it holds.

    ``size`` is its length in the flat vector (parts follow one another in
    order); ``vocab_size > 0`` marks integer token ids in ``[0, vocab_size)``
    (an integer Box of a Dict observation, e.g. words), which an agent embeds
    rather than feeds as numbers; ``0`` marks real-valued features.
    ``shape`` is the part's shape before flattening (a Box's shape; ``()``
    for a nested Dict or Tuple), so that an agent can see an image as one:
    ``(H, W, C)`` parts may go through convolutions.
    """

    name: str
    size: int
    vocab_size: int = 0
    shape: tuple[int, ...] = ()

    @property
    def tokens(self) -> bool:
        return self.vocab_size > 0


def observation_parts(space: Any) -> tuple[ObservationPart, ...]:
    """The parts of :func:`flatten` 's output for ``space``, in flat order.

    A Dict space has one part per key (a nested Dict or Tuple counts as one
    part of features); anything else is a single part named ``"observation"``.
    Integer Boxes inside a Dict are tokens with ``vocab_size = high + 1``.
    """
    if not isinstance(space, spaces.Dict):
        return (ObservationPart("observation", flat_size(space), shape=_box_shape(space)),)
    parts = []
    for name, child in space.spaces.items():
        integer = isinstance(child, spaces.Box) and np.issubdtype(np.dtype(child.dtype), np.integer)
        if integer and np.dtype(child.dtype) != np.uint8:
            if np.any(np.asarray(child.low) < 0):
                raise ValueError(
                    f"Observation part {name!r} is an integer Box with negative values; token ids must be 0 or more."
                )
            parts.append(ObservationPart(name, flat_size(child), int(np.max(child.high)) + 1, _box_shape(child)))
        else:
            parts.append(ObservationPart(name, flat_size(child), shape=_box_shape(child)))
    return tuple(parts)


def _box_shape(space: Any) -> tuple[int, ...]:
    """A Box's shape as ints; ``()`` for any other space."""
    return tuple(int(n) for n in space.shape) if isinstance(space, spaces.Box) else ()


def _children(space: Any) -> list[Any]:
    return list(space.spaces.values()) if isinstance(space, spaces.Dict) else list(space.spaces)


def _field(x: Any, key: str) -> Any:
    return x[key] if isinstance(x, dict) else getattr(x, key)


def space_items(space: Any, x: Any) -> list[tuple[str, Any, Any]]:
    """``(label, subspace, value)`` of each part of a Dict or Tuple ``space`` and a value ``x`` of it, in flattening order.

    ``label`` indexes the part as Python would: ``['vision']`` for a Dict key, ``[0]`` for a Tuple position.
    A Dict value may be a dict or an object with the keys as attributes.
    """
    if isinstance(space, spaces.Dict):
        return [(f"[{k!r}]", s, _field(x, k)) for k, s in space.spaces.items()]
    return [(f"[{i}]", s, v) for i, (s, v) in enumerate(zip(space.spaces, x))]


def _done(terminated: jax.Array, truncated: jax.Array) -> jax.Array:
    return jnp.logical_or(terminated, truncated)


class SpaceWrapper(GymnaxWrapper):
    """gymnax's proxying wrapper, plus spaces that fall back to the default params when given None."""

    def _inner_observation_space(self, params: Any) -> Any:
        return self._env.observation_space(self.default_params if params is None else params)

    def _inner_action_space(self, params: Any) -> Any:
        return self._env.action_space(self.default_params if params is None else params)


# ---------------------------------------------------------------------------
# Episode statistics


class EpisodeStatistics(LogWrapper):
    """Running episode return and length; ``info`` reports the last finished episode.

    This is gymnax's ``LogWrapper`` under the name mnemax's agents use. On every
    step ``info`` holds ``"returned_episode_returns"`` (float32, the return of
    the episode that ended at this step, else of the last finished one),
    ``"returned_episode_lengths"`` (int32), ``"returned_episode"`` (bool, an
    episode ended at this step by termination OR truncation) and
    ``"returned_episode_valid"`` (bool, at least one episode has finished).
    """


# ---------------------------------------------------------------------------
# Observation transforms


class FlattenObservation(SpaceWrapper):
    """Observation (and ``info["final_observation"]``) as a 1-D float32 vector.

    Box observations are reshaped (uint8 ones divided by 255, the usual scaling
    of pixels), Discrete ones one-hot encoded, Dict/Tuple ones concatenated in
    order. ``[*shape] -> [prod(shape)]``.
    """

    def observation_space(self, params: Any = None) -> spaces.Box:
        return flat_box(self._inner_observation_space(params))

    def observation_parts(self, params: Any = None) -> tuple[ObservationPart, ...]:
        """Which slices of the flat observation are which part of the original one (see :func:`observation_parts`)."""
        return observation_parts(self._inner_observation_space(params))

    def _flatten(self, obs: Any, params: Any) -> jax.Array:
        return flatten(self._inner_observation_space(params), obs)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, Any]:
        obs, state = self._env.reset(key, params)
        return self._flatten(obs, params), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: Any, action: Any, params: Any = None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        info = {**info, "final_observation": self._flatten(info["final_observation"], params)}
        return self._flatten(obs, params), state, reward, terminated, truncated, info


@struct.dataclass
class RunningMoments:
    """Mean and (population) variance of everything seen so far, and how many items that was.

    ``mean``/``var`` have the shape of one item; ``count`` is a float scalar.
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array

    @classmethod
    def zeros(cls, shape: tuple[int, ...] = ()) -> RunningMoments:
        return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.zeros((), jnp.float32))


def merge_moments(a: RunningMoments, b: RunningMoments) -> RunningMoments:
    """Moments of the union of two disjoint sets (Chan, Golub & LeVeque 1979, parallel update).

    With ``n = n_a + n_b`` and ``delta = mean_b - mean_a``:
    ``mean = mean_a + delta n_b / n`` and
    ``var = (var_a n_a + var_b n_b + delta^2 n_a n_b / n) / n``.
    Merging one item at a time is Welford's algorithm. An empty side (count 0)
    leaves the other unchanged.
    """
    count = a.count + b.count
    safe = jnp.maximum(count, 1e-12)
    delta = b.mean - a.mean
    mean = a.mean + delta * b.count / safe
    m2 = a.var * a.count + b.var * b.count + jnp.square(delta) * a.count * b.count / safe
    var = jnp.where(count > 0, m2 / safe, a.var)
    return RunningMoments(mean, var, count)


def observe_moments(moments: RunningMoments, x: jax.Array) -> RunningMoments:
    """Add one item ``x`` (shape of ``moments.mean``) to the running moments."""
    x = jnp.asarray(x, jnp.float32)
    return merge_moments(moments, RunningMoments(x, jnp.zeros_like(x), jnp.ones((), jnp.float32)))


def pool_moments(moments: RunningMoments) -> RunningMoments:
    """Merge moments kept by vmapped copies (leading axis ``[B, ...]``) into one set.

    Under ``jax.vmap`` each env copy keeps its own statistics; a caller that
    wants one shared normaliser pools them with this and broadcasts the result
    back into every copy's state.
    """
    first = jax.tree.map(lambda leaf: leaf[0], moments)
    rest = jax.tree.map(lambda leaf: leaf[1:], moments)
    return jax.lax.scan(lambda acc, item: (merge_moments(acc, item), None), first, rest)[0]


@struct.dataclass
class NormalizeObservationState:
    env_state: Any
    moments: RunningMoments


class NormalizeObservation(SpaceWrapper):
    """Observations standardised by their running mean and variance, then clipped.

    ``obs_out = clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`` where
    the moments include every observation returned so far (reset ones too),
    updated in the state by :func:`observe_moments`. Under ``jax.vmap`` each
    copy keeps its own statistics unless the caller pools them
    (:func:`pool_moments`). ``info["final_observation"]`` is normalised with the
    same moments. Needs a Box observation space (flatten others first).
    """

    def __init__(self, env: Any, clip: float = 10.0, epsilon: float = 1e-8):
        super().__init__(env)
        space = env.observation_space(env.default_params)
        if not isinstance(space, spaces.Box):
            raise TypeError(
                f"NormalizeObservation needs Box observations, got {type(space).__name__}; wrap the env in FlattenObservation first."
            )
        self.clip = float(clip)
        self.epsilon = float(epsilon)

    def observation_space(self, params: Any = None) -> spaces.Box:
        shape = self._inner_observation_space(params).shape
        return spaces.Box(-self.clip, self.clip, shape, jnp.float32)

    def _normalize(self, obs: jax.Array, moments: RunningMoments) -> jax.Array:
        scaled = (jnp.asarray(obs, jnp.float32) - moments.mean) / jnp.sqrt(moments.var + self.epsilon)
        return jnp.clip(scaled, -self.clip, self.clip)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, NormalizeObservationState]:
        obs, env_state = self._env.reset(key, params)
        moments = observe_moments(RunningMoments.zeros(jnp.shape(obs)), obs)
        return self._normalize(obs, moments), NormalizeObservationState(env_state, moments)

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: NormalizeObservationState, action: Any, params: Any = None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        moments = observe_moments(state.moments, obs)
        info = {**info, "final_observation": self._normalize(info["final_observation"], moments)}
        state = NormalizeObservationState(env_state, moments)
        return self._normalize(obs, moments), state, reward, terminated, truncated, info


@struct.dataclass
class NormalizeRewardState:
    env_state: Any
    moments: RunningMoments
    discounted_return: jax.Array


class NormalizeReward(SpaceWrapper):
    """Rewards divided by the running standard deviation of the discounted return.

    As gym's ``NormalizeReward``: ``G_t = r_t + gamma G_{t-1}`` (``G`` restarts
    after an episode ends), the moments of ``G`` are tracked, and the agent
    sees ``r_t / sqrt(var(G) + epsilon)`` -- scaled, not centred, so the sign
    of rewards is kept. ``clip`` (off by default) bounds the scaled reward.
    Under ``jax.vmap`` each copy keeps its own statistics unless the caller
    pools them (:func:`pool_moments`). ``info["raw_reward"]`` holds the reward
    before scaling.
    """

    def __init__(self, env: Any, gamma: float = 0.99, epsilon: float = 1e-8, clip: float | None = None):
        super().__init__(env)
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"NormalizeReward needs a discount gamma in [0, 1], got {gamma}.")
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        self.clip = None if clip is None else float(clip)

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[Any, NormalizeRewardState]:
        obs, env_state = self._env.reset(key, params)
        return obs, NormalizeRewardState(env_state, RunningMoments.zeros(), jnp.zeros((), jnp.float32))

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: NormalizeRewardState, action: Any, params: Any = None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        discounted_return = self.gamma * state.discounted_return + reward
        moments = observe_moments(state.moments, discounted_return)
        scaled = reward / jnp.sqrt(moments.var + self.epsilon)
        if self.clip is not None:
            scaled = jnp.clip(scaled, -self.clip, self.clip)
        next_return = jnp.where(_done(terminated, truncated), 0.0, discounted_return)
        state = NormalizeRewardState(env_state, moments, next_return.astype(jnp.float32))
        info = {**info, "raw_reward": reward}
        return obs, state, scaled.astype(jnp.float32), terminated, truncated, info


# ---------------------------------------------------------------------------
# Actions


class ClipAction(SpaceWrapper):
    """Continuous actions clipped to the inner Box bounds before they reach the env.

    ``action_space`` stays the inner Box, so agents still read the bounds the
    env acts within (e.g. to squash a Gaussian); any real action is accepted.
    """

    def __init__(self, env: Any):
        super().__init__(env)
        space = env.action_space(env.default_params)
        if not isinstance(space, spaces.Box):
            raise TypeError(f"ClipAction needs a Box action space, got {type(space).__name__}; Discrete actions need no clipping.")

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any = None):
        space = self._inner_action_space(params)
        action = jnp.clip(action, space.low, space.high).astype(space.dtype)
        return self._env.step(key, state, action, params)


# ---------------------------------------------------------------------------
# Previous action and reward in the observation


@struct.dataclass
class PrevActionRewardState:
    env_state: Any
    prev_action: jax.Array  # [A] float32, one-hot when Discrete
    prev_reward: jax.Array  # [] float32


class PrevActionReward(SpaceWrapper):
    """Observation ``[flat_obs (D), prev_action (A), prev_reward (1), episode_start (1)]``, float32.

    ``prev_action`` is one-hot for a Discrete action space (A = n) and the raw
    action for a Box (A = prod(shape)). At the first step of an episode (after
    ``reset`` and after an auto-reset) ``prev_action`` and ``prev_reward`` are
    zeros and ``episode_start`` is 1.0; otherwise ``episode_start`` is 0.0.
    ``info["final_observation"]`` carries the last action and reward of the
    episode that ended, with ``episode_start`` 0.0. This is the input
    popjaxrl-style recurrent agents read; the start flag tells a backbone
    where to reset.
    """

    def observation_space(self, params: Any = None) -> spaces.Box:
        obs_low, obs_high = flat_bounds(self._inner_observation_space(params))
        act_low, act_high = flat_bounds(self._inner_action_space(params))
        low = np.concatenate([obs_low, act_low, [-np.inf, 0.0]]).astype(np.float32)
        high = np.concatenate([obs_high, act_high, [np.inf, 1.0]]).astype(np.float32)
        return spaces.Box(low, high, (low.shape[0],), jnp.float32)

    def _augment(self, obs: Any, prev_action: jax.Array, prev_reward: jax.Array, start: jax.Array, params: Any) -> jax.Array:
        flat_obs = flatten(self._inner_observation_space(params), obs)
        extras = jnp.stack([jnp.asarray(prev_reward, jnp.float32), jnp.asarray(start, jnp.float32)])
        return jnp.concatenate([flat_obs, prev_action, extras])

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, PrevActionRewardState]:
        obs, env_state = self._env.reset(key, params)
        no_action = jnp.zeros(flat_size(self._inner_action_space(params)), jnp.float32)
        state = PrevActionRewardState(env_state, no_action, jnp.zeros((), jnp.float32))
        return self._augment(obs, no_action, state.prev_reward, 1.0, params), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: PrevActionRewardState, action: Any, params: Any = None):
        obs, env_state, reward, terminated, truncated, info = self._env.step(key, state.env_state, action, params)
        done = _done(terminated, truncated)
        encoded = flatten(self._inner_action_space(params), action)
        reward32 = jnp.asarray(reward, jnp.float32)
        prev_action = jnp.where(done, 0.0, encoded)
        prev_reward = jnp.where(done, 0.0, reward32)
        final = self._augment(info["final_observation"], encoded, reward32, 0.0, params)
        info = {**info, "final_observation": final}
        state = PrevActionRewardState(env_state, prev_action, prev_reward)
        return self._augment(obs, prev_action, prev_reward, done, params), state, reward, terminated, truncated, info


# ---------------------------------------------------------------------------
# Meta-RL: k trials of one task per meta-episode

_EVAL_TASK_BIT = np.uint32(1 << 31)


@struct.dataclass
class MetaRLState:
    env_state: Any
    task_id: jax.Array  # [] uint32; train ids have the top bit clear, held-out ids set
    obs_projection: jax.Array  # [D_flat, obs_dim] float32 (identity when projection is off)
    action_map: jax.Array  # Box: [action_dim, A] float32; Discrete: [n] int32 permutation
    trial: jax.Array  # [] int32, index of the current trial in [0, trials)
    trial_start: jax.Array  # [] bool, the next step is the first of a trial


class MetaRL(SpaceWrapper):
    """Meta-episodes of ``trials`` trials of one task, for in-context (RL^2-style) agents.

    The inner env runs and auto-resets as usual; each of its episodes is one
    trial. The wrapper's ``terminated``/``truncated`` fire only when the
    ``trials``-th trial ends (with the kind of ending of that trial), so an
    agent's recurrent state persists across the trials of a meta-episode and
    value targets run through the trial boundaries. Observation:
    ``[projected_obs (obs_dim), trial_start (1)]`` float32, where
    ``trial_start`` is 1.0 at the first step of every trial; ``info["trial"]``
    is the index of the trial the step belongs to and ``info["trial_end"]``
    says the trial ended at this step. ``info["final_observation"]`` is the
    last observation of a meta-episode where one ends and the observation
    itself elsewhere: a trial boundary is an ordinary step for the agent.
    ``info["inner_terminated"]``/``info["inner_truncated"]`` keep the inner
    env's flags. Compose with :class:`PrevActionReward`
    (outside this wrapper) to add the previous action and reward.

    The task. With ``projection`` a task is a random linear map of the
    flattened observation, ``W_obs ~ N(0, 1) / sqrt(D)`` of ``[D, obs_dim]``,
    and of the action: for a Box action space the agent acts in
    ``[-1, 1]^action_dim`` and the env receives ``a @ W_act`` (``W_act ~ N(0,
    1) / sqrt(action_dim)`` of ``[action_dim, A]``), clipped to ``[-1, 1]`` and
    rescaled into the env's bounds (unbounded dimensions are passed through);
    for a Discrete action space the task permutes the actions. Plain envs thus
    become a distribution of tasks; envs with their own randomised parameters
    keep that randomisation on top. Without ``projection`` the observation is
    the flattened one and actions pass through.

    Task ids. At each meta-episode reset a ``uint32`` task id is drawn from the
    key; the projections are a deterministic function of the id and
    ``task_seed``. Training tasks (``eval_tasks=False``) have ids in
    ``[0, num_train_tasks)`` (``[0, 2^31)`` when ``num_train_tasks`` is None);
    held-out tasks (``eval_tasks=True``) have the top bit set, ids in
    ``[2^31, 2^32)``, so the two sets never share an id and held-out
    evaluation sees projections it never trained on.
    """

    def __init__(
        self,
        env: Any,
        trials: int = 2,
        projection: bool = True,
        obs_dim: int | None = None,
        action_dim: int | None = None,
        num_train_tasks: int | None = None,
        eval_tasks: bool = False,
        task_seed: int = 0,
    ):
        super().__init__(env)
        if int(trials) < 1:
            raise ValueError(f"MetaRL needs at least one trial per meta-episode, got trials={trials}.")
        if not projection and (obs_dim is not None or action_dim is not None):
            raise ValueError("obs_dim and action_dim set the projection sizes; pass projection=True or leave them None.")
        if num_train_tasks is not None and not 1 <= int(num_train_tasks) <= int(_EVAL_TASK_BIT):
            raise ValueError(f"num_train_tasks must be between 1 and 2^31, got {num_train_tasks}.")
        params = env.default_params
        self._default_obs_space = env.observation_space(params)
        self._default_action_space = env.action_space(params)
        if not isinstance(self._default_action_space, (spaces.Box, spaces.Discrete)):
            raise TypeError(f"MetaRL needs a Box or Discrete action space, got {type(self._default_action_space).__name__}.")
        self.trials = int(trials)
        self.projection = bool(projection)
        self.num_train_tasks = None if num_train_tasks is None else int(num_train_tasks)
        self.eval_tasks = bool(eval_tasks)
        self.task_seed = int(task_seed)
        self._flat_obs_dim = flat_size(self._default_obs_space)
        self.obs_dim = int(obs_dim) if obs_dim is not None else self._flat_obs_dim
        self._discrete = isinstance(self._default_action_space, spaces.Discrete)
        inner_action_dim = 1 if self._discrete else flat_size(self._default_action_space)
        self._inner_action_dim = inner_action_dim
        if self._discrete and action_dim is not None:
            raise ValueError("action_dim applies to Box action spaces; a Discrete task permutes its actions instead.")
        self.action_dim = int(action_dim) if action_dim is not None else inner_action_dim

    # -- spaces ---------------------------------------------------------------

    def observation_space(self, params: Any = None) -> spaces.Box:
        if self.projection:
            low = np.full(self.obs_dim, -np.inf, np.float32)
            high = np.full(self.obs_dim, np.inf, np.float32)
        else:
            low, high = flat_bounds(self._inner_observation_space(params))
        low = np.concatenate([low, [0.0]]).astype(np.float32)
        high = np.concatenate([high, [1.0]]).astype(np.float32)
        return spaces.Box(low, high, (low.shape[0],), jnp.float32)

    def action_space(self, params: Any = None) -> Any:
        inner = self._inner_action_space(params)
        if self._discrete or not self.projection:
            return inner
        return spaces.Box(-1.0, 1.0, (self.action_dim,), jnp.float32)

    # -- tasks ----------------------------------------------------------------

    def sample_task_id(self, key: jax.Array) -> jax.Array:
        """A ``uint32`` task id from the train or held-out range (see the class docstring)."""
        bits = jax.random.bits(key, (), jnp.uint32)
        if self.eval_tasks:
            return bits | _EVAL_TASK_BIT
        if self.num_train_tasks is None:
            return bits & ~_EVAL_TASK_BIT
        return bits % jnp.uint32(self.num_train_tasks)

    def task_maps(self, task_id: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(W_obs [D, obs_dim], action_map)`` of a task id; identity maps without projection."""
        obs_key, action_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(self.task_seed), task_id))
        if not self.projection:
            identity_action = jnp.arange(self._default_action_space.n, dtype=jnp.int32) if self._discrete else jnp.eye(self.action_dim)
            return jnp.eye(self._flat_obs_dim), identity_action
        obs_projection = jax.random.normal(obs_key, (self._flat_obs_dim, self.obs_dim)) / np.sqrt(self._flat_obs_dim)
        if self._discrete:
            action_map = jax.random.permutation(action_key, self._default_action_space.n).astype(jnp.int32)
        else:
            action_map = jax.random.normal(action_key, (self.action_dim, self._inner_action_dim)) / np.sqrt(self.action_dim)
        return obs_projection, action_map

    def _env_action(self, action: jax.Array, action_map: jax.Array, params: Any) -> jax.Array:
        """The agent's action mapped into the inner env's action space."""
        inner = self._inner_action_space(params)
        if self._discrete:
            return action_map[action].astype(inner.dtype)
        if not self.projection:
            return action
        mixed = jnp.clip(jnp.reshape(action, (-1,)) @ action_map, -1.0, 1.0)
        # Bounds may depend on traced params (Pendulum's max_torque), so jnp throughout.
        low = jnp.broadcast_to(jnp.asarray(inner.low, jnp.float32), inner.shape).reshape(-1)
        high = jnp.broadcast_to(jnp.asarray(inner.high, jnp.float32), inner.shape).reshape(-1)
        bounded = jnp.isfinite(low) & jnp.isfinite(high)
        rescaled = jnp.where(bounded, low, 0.0) + (mixed + 1.0) / 2.0 * jnp.where(bounded, high - low, 0.0)
        return jnp.reshape(jnp.where(bounded, rescaled, mixed), inner.shape).astype(inner.dtype)

    def _observe(self, obs: Any, obs_projection: jax.Array, trial_start: jax.Array, params: Any) -> jax.Array:
        flat = flatten(self._inner_observation_space(params), obs)
        projected = flat @ obs_projection if self.projection else flat
        return jnp.concatenate([projected, jnp.asarray(trial_start, jnp.float32)[None]])

    def _new_meta_episode(self, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        task_id = self.sample_task_id(key)
        return (task_id, *self.task_maps(task_id))

    # -- interface ------------------------------------------------------------

    @partial(jax.jit, static_argnames=("self",))
    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, MetaRLState]:
        task_key, env_key = jax.random.split(key)
        task_id, obs_projection, action_map = self._new_meta_episode(task_key)
        obs, env_state = self._env.reset(env_key, params)
        state = MetaRLState(env_state, task_id, obs_projection, action_map, jnp.zeros((), jnp.int32), jnp.ones((), bool))
        return self._observe(obs, obs_projection, True, params), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: jax.Array, state: MetaRLState, action: Any, params: Any = None):
        step_key, task_key = jax.random.split(key)
        env_action = self._env_action(action, state.action_map, params)
        obs, env_state, reward, inner_terminated, inner_truncated, info = self._env.step(
            step_key, state.env_state, env_action, params
        )
        trial_end = _done(inner_terminated, inner_truncated)
        meta_end = jnp.logical_and(trial_end, state.trial == self.trials - 1)
        # The inner env has already auto-reset; a finished meta-episode also draws a new task.
        new_id, new_obs_projection, new_action_map = self._new_meta_episode(task_key)
        next_state = MetaRLState(
            env_state=env_state,
            task_id=jnp.where(meta_end, new_id, state.task_id),
            obs_projection=jnp.where(meta_end, new_obs_projection, state.obs_projection),
            action_map=jnp.where(meta_end, new_action_map, state.action_map),
            trial=jnp.where(meta_end, 0, state.trial + trial_end.astype(jnp.int32)),
            trial_start=trial_end,
        )
        obs_out = self._observe(obs, next_state.obs_projection, trial_end, params)
        # Only the end of a meta-episode is an episode end for the agent; a trial boundary is an ordinary step.
        final = jnp.where(meta_end, self._observe(info["final_observation"], state.obs_projection, False, params), obs_out)
        info = {
            **info,
            "final_observation": final,
            "trial": state.trial,
            "trial_end": trial_end,
            "task_id": state.task_id,
            "inner_terminated": inner_terminated,
            "inner_truncated": inner_truncated,
        }
        terminated = jnp.logical_and(meta_end, inner_terminated)
        truncated = jnp.logical_and(meta_end, jnp.logical_and(inner_truncated, jnp.logical_not(inner_terminated)))
        return obs_out, next_state, reward, terminated, truncated, info
