"""One latent sequence world model whose sequence backbone is a plug-in: RSSM, TSSM and S4WM in one class.

The model (S4WM, Deng et al. 2023, sec. 3; DreamerV3 sec. 2 for the heads)::

    e_t = encoder(x_t)                       # MLP on symlog(x) for vectors, CNN for images
    z_t ~ q(z_t | e_t)                       # non-recurrent posterior: all t in parallel
          q(z_t | h_t, e_t)                  # classic RSSM posterior (classic_posterior=True): sequential
    g_t = MLP([z_{t-1}, a_{t-1}, first_t])   # z, a zeroed at episode starts
    h_t = backbone(g_{1:t})                  # gru -> RSSM, transformer -> TSSM, s5/s4d/lru -> S4WM
    p(z_t | h_t)                             # prior
    heads on [h_t, z_t]: x_t (symlog MSE), r_t (two-hot over 255 symlog bins), c_t (Bernoulli)

Latents are ``groups`` categoricals of ``classes`` classes (32 x 32 by default),
1% unimix, one-hot samples with straight-through gradients.

The Flax module :class:`LatentSequenceModel` holds the parameters and the
per-piece computations; the functions below it (:func:`observe`,
:func:`observe_stepwise`, :func:`imagine_step`, :func:`imagine`) are pure
functions of ``(model, params, ...)`` that thread the :class:`ModelCarry`
explicitly. :func:`observe` runs the backbone in sequence mode (one parallel
scan for the SSMs); :func:`imagine_step` runs it in step mode (T = 1, the
transformer's KV cache as carry).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax.backbones import BackboneSpec
from mnemax.worldmodels.distributions import sample_one_hot, symlog, unimix_logits
from mnemax.worldmodels.networks import MLP, ConvDecoder, ConvEncoder, concat, flatten_groups, unit_frames, zero_dense

POLICY_INPUTS = ("output", "state", "full")
"""What a policy reads from the latent sequence model (see :attr:`WorldModelConfig.policy_inputs`)."""


@dataclasses.dataclass(frozen=True)
class WorldModelConfig:
    """Sizes and loss scales of the latent sequence world model (registered as ``rssm``); hashable, so static under ``jit``.

    Attributes:
      backbone: the sequence core (``gru``, ``lstm``, ``transformer``, ``s5``, ``s4d``, ``lru``).
      latent_groups, latent_classes: ``z_t`` is ``latent_groups`` categoricals of ``latent_classes`` classes.
      hidden: width of every MLP layer; layers: MLP depth of encoder, posterior, prior, decoder and heads.
      unimix: uniform mixture weight of the latent categoricals (DreamerV3: 1%).
      classic_posterior: RSSM's ``q(z_t | h_t, x_t)`` instead of S4WM's ``q(z_t | x_t)``;
        observation then runs step by step.
      num_bins: two-hot bins of the reward head.
      twohot_limit: the bins span ``[-twohot_limit, twohot_limit]`` in symlog space (DreamerV3: 20, i.e.
        raw rewards up to about 5e8); narrow it for tasks whose rewards are small against one bin's width
        (``2 * twohot_limit / (num_bins - 1)``, 0.16 by default).
      dyn_scale, rep_scale, free_nats: KL balancing (DreamerV3 2023: 0.5, 0.1, 1.0).
      reward_scale: weight of the reward head's loss (DreamerV3's ``loss_scales.reward``, 1.0).
      cnn_depth, cnn_stages: CNN encoder/decoder for image observations ``[H, W, C]``.
      policy_inputs: what a policy reads (:func:`policy_features`). ``"output"`` (DreamerV3):
        ``[h_t, z_t]``; ``"state"``: ``[s_t, z_t]`` with ``s_t`` the backbone's recurrent state (symlog of its
        real and imaginary parts for the SSMs); ``"full"``: ``[h_t, s_t, z_t]``. An SSM's output ``h_t`` is
        trained to serve the heads, whose reward at ``t`` concerns the action at ``t - 1``, so what the next
        action needs may sit in ``s_t`` but not in ``h_t`` (R2I feeds its policy the SSM state). ``"state"``
        and ``"full"`` need a recurrent backbone (not ``transformer``).
    """

    backbone: BackboneSpec = BackboneSpec("gru", 256)
    latent_groups: int = 32
    latent_classes: int = 32
    hidden: int = 256
    layers: int = 2
    unimix: float = 0.01
    classic_posterior: bool = False
    num_bins: int = 255
    twohot_limit: float = 20.0
    dyn_scale: float = 0.5
    rep_scale: float = 0.1
    free_nats: float = 1.0
    reward_scale: float = 1.0
    cnn_depth: int = 16
    cnn_stages: int = 2
    policy_inputs: str = "output"

    @property
    def latent_size(self) -> int:
        return self.latent_groups * self.latent_classes

    @property
    def feature_size(self) -> int:
        """Width of ``[h_t, z_t]``, what the heads, actor and critic read."""
        return self.backbone.features + self.latent_size

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and how to fix it (run when the config is built)."""
        if not isinstance(self.backbone, BackboneSpec):
            raise TypeError(f"WorldModelConfig.backbone must be a mnemax.backbones.BackboneSpec, got {type(self.backbone).__name__}.")
        for name in ("latent_groups", "latent_classes", "hidden", "layers", "cnn_depth", "cnn_stages"):
            if getattr(self, name) < 1:
                raise ValueError(f"WorldModelConfig.{name} must be a positive integer, got {getattr(self, name)}.")
        if self.latent_classes < 2:
            raise ValueError(f"Each latent needs at least 2 classes, got latent_classes={self.latent_classes}.")
        if not 0.0 <= self.unimix < 1.0:
            raise ValueError(f"unimix is a mixing weight in [0, 1), got {self.unimix}.")
        if self.num_bins < 2:
            raise ValueError(f"The reward head needs at least 2 two-hot bins, got num_bins={self.num_bins}.")
        if not self.twohot_limit > 0:
            raise ValueError(
                f"twohot_limit is the half-width of the two-hot bins in symlog space and must be positive, "
                f"got {self.twohot_limit}; DreamerV3 uses 20."
            )
        if min(self.dyn_scale, self.rep_scale, self.free_nats, self.reward_scale) < 0:
            raise ValueError("dyn_scale, rep_scale, free_nats and reward_scale must be non-negative.")
        if self.policy_inputs not in POLICY_INPUTS:
            raise ValueError(
                f"policy_inputs={self.policy_inputs!r} is not one of {', '.join(map(repr, POLICY_INPUTS))}."
            )
        if self.policy_inputs != "output" and self.backbone.name == "transformer":
            raise ValueError(
                f"policy_inputs={self.policy_inputs!r} feeds the policy the backbone's recurrent state, and the "
                "transformer's carry is a KV cache; use policy_inputs='output' or a recurrent backbone."
            )


class ModelCarry(NamedTuple):
    """What the world model carries between calls; batch is the leading axis of every leaf.

    backbone: the backbone's carry ``[B, ...]`` (GRU state, S5 state, KV cache, ...).
    latent: ``[B, groups * classes]`` the last step's latent ``z_{t-1}`` (zero at the start).
    """

    backbone: Any
    latent: jax.Array


class LatentState(NamedTuple):
    """The model state the heads, the actor and the critic read: ``h`` ``[..., H]`` and ``z`` ``[..., G*K]``."""

    h: jax.Array
    z: jax.Array

    def features(self) -> jax.Array:
        """``[h, z]`` concatenated, ``[..., H + G*K]``."""
        return concat(self.h, self.z)


class Observation(NamedTuple):
    """What :func:`observe` returns per step, all ``[T, B, ...]``.

    state: ``h_t`` and the posterior sample ``z_t``.
    posterior_logits, prior_logits: ``[T, B, groups, classes]``, unimix applied.
    """

    state: LatentState
    posterior_logits: jax.Array
    prior_logits: jax.Array


class HeadOutputs(NamedTuple):
    """Predictions from ``[h_t, z_t]``: observation (symlog space for vectors), reward two-hot logits, continue logit."""

    observation: jax.Array  # [..., *obs_shape]
    reward_logits: jax.Array  # [..., num_bins]
    continue_logits: jax.Array  # [...]


class LatentSequenceModel(nn.Module):
    """Parameters and per-piece computations of the world model (see the module docstring).

    ``obs_shape`` is ``(D,)`` for vectors or ``(H, W, C)`` for images;
    ``action_size`` is the width of the action input (one-hot size for discrete actions).
    """

    config: WorldModelConfig
    obs_shape: tuple[int, ...]
    action_size: int

    def setup(self) -> None:
        c = self.config
        hidden = (c.hidden,) * c.layers
        if self.is_image:
            self.encoder = ConvEncoder(c.cnn_depth, c.cnn_stages)
            self.decoder = nn.Sequential([MLP(hidden), ConvDecoder(tuple(self.obs_shape), c.cnn_depth, c.cnn_stages)])
        else:
            self.encoder = MLP(hidden)
            self.decoder = nn.Sequential([MLP(hidden), nn.Dense(int(np.prod(self.obs_shape)))])
        self.posterior_net = nn.Sequential([MLP(hidden), nn.Dense(c.latent_size)])
        self.prior_net = nn.Sequential([MLP(hidden), nn.Dense(c.latent_size)])
        self.core_input = MLP((c.hidden,))
        self.backbone = c.backbone.build()
        self.reward_head = nn.Sequential([MLP(hidden), zero_dense(c.num_bins)])
        self.continue_head = nn.Sequential([MLP(hidden), nn.Dense(1)])

    @property
    def is_image(self) -> bool:
        return len(self.obs_shape) == 3

    def _latent_logits(self, flat_logits: jax.Array) -> jax.Array:
        c = self.config
        logits = flat_logits.reshape(flat_logits.shape[:-1] + (c.latent_groups, c.latent_classes))
        return unimix_logits(logits, c.unimix)

    def embed(self, obs: jax.Array) -> jax.Array:
        """Observations ``[..., *obs_shape] -> [..., E]`` (vectors are symlog-squashed first, uint8 images scaled to [0, 1])."""
        if self.is_image:
            return self.encoder(unit_frames(obs))
        return self.encoder(symlog(obs.reshape(obs.shape[: obs.ndim - len(self.obs_shape)] + (-1,))))

    def posterior(self, embedding: jax.Array, h: jax.Array | None) -> jax.Array:
        """Posterior logits ``[..., G, K]`` from ``e_t`` (and ``h_t`` for the classic RSSM posterior)."""
        inputs = embedding if h is None else concat(h, embedding)
        return self._latent_logits(self.posterior_net(inputs))

    def prior(self, h: jax.Array) -> jax.Array:
        """Prior logits ``[..., G, K]`` from ``h_t``."""
        return self._latent_logits(self.prior_net(h))

    def core(self, carry: Any, latents: jax.Array, actions: jax.Array, resets: jax.Array) -> tuple[Any, jax.Array]:
        """Backbone over ``MLP([z_{t-1}, a_{t-1}])``: ``[T, B, G*K], [T, B, A], [T, B] -> carry, h [T, B, H]``.

        Where ``resets`` is true the inputs are zeroed (nothing came before the
        episode's first step) and the backbone resets its carry. The reset flag
        is an input feature too: without it the first step's input would be a
        constant vector, whose normalisation inside the backbone has unbounded
        gradients.
        """
        start = resets.astype(latents.dtype)[..., None]
        keep = 1.0 - start
        inputs = self.core_input(concat(latents * keep, actions.astype(latents.dtype) * keep, start))
        return self.backbone(carry, inputs, resets)

    def heads(self, state: LatentState) -> HeadOutputs:
        """Decoder, reward and continue predictions from ``[h, z]``."""
        features = state.features()
        observation = self.decoder(features)
        if not self.is_image:
            observation = observation.reshape(features.shape[:-1] + tuple(self.obs_shape))
        return HeadOutputs(observation, self.reward_head(features), self.continue_head(features)[..., 0])

    def __call__(self, carry: ModelCarry, obs: jax.Array, actions: jax.Array, resets: jax.Array) -> HeadOutputs:
        """Touch every piece once, for ``init``: ``obs [T, B, ...]``, ``actions [T, B, A]``, ``resets [T, B]``."""
        embedding = self.embed(obs)
        _, h = self.core(carry.backbone, jnp.zeros(obs.shape[:2] + (self.config.latent_size,)), actions, resets)
        self.prior(h)
        logits = self.posterior(embedding, h if self.config.classic_posterior else None)
        return self.heads(LatentState(h, flatten_groups(jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1]))))


# --------------------------------------------------------------------------- pure functions over (model, params)


def build_model(config: WorldModelConfig, obs_shape: tuple[int, ...], action_size: int) -> LatentSequenceModel:
    """The model for observations of ``obs_shape`` and actions of width ``action_size`` (the config checked itself when built)."""
    obs_shape = tuple(int(d) for d in obs_shape)
    if len(obs_shape) not in (1, 3):
        raise ValueError(
            f"The world model reads vector observations (D,) or images (H, W, C); got shape {obs_shape}. "
            "Flatten other observations with mnemax.envs.FlattenObservation."
        )
    if len(obs_shape) == 3:
        scale = 2**config.cnn_stages
        if obs_shape[0] % scale or obs_shape[1] % scale:
            raise ValueError(
                f"Image observations {obs_shape} need height and width divisible by 2**cnn_stages = {scale}; "
                "lower cnn_stages or pad the images."
            )
    if action_size < 1:
        raise ValueError(f"action_size must be at least 1, got {action_size}.")
    return LatentSequenceModel(config, obs_shape, int(action_size))


def initial_carry(model: LatentSequenceModel, batch_size: int) -> ModelCarry:
    """The carry before any step: the backbone's initial carry and a zero latent."""
    backbone = model.config.backbone.build().initialize_carry(batch_size)
    return ModelCarry(backbone, jnp.zeros((batch_size, model.config.latent_size), jnp.float32))


def init_params(model: LatentSequenceModel, key: jax.Array) -> Any:
    """Parameters for ``model`` (batch and time of 1)."""
    obs = jnp.zeros((1, 1) + model.obs_shape, jnp.float32)
    actions = jnp.zeros((1, 1, model.action_size), jnp.float32)
    return model.init(key, initial_carry(model, 1), obs, actions, jnp.ones((1, 1), bool))


def _step_keys(key: jax.Array, length: int) -> jax.Array:
    """One key per time step; sequence and step mode draw ``z_t`` with the same ``keys[t]``."""
    return jax.random.split(key, length)


def _sample_latents(keys: jax.Array, logits: jax.Array) -> jax.Array:
    """``[T]`` keys, ``[T, B, G, K]`` logits -> ``[T, B, G*K]`` straight-through one-hot samples."""
    return flatten_groups(jax.vmap(sample_one_hot)(keys, logits))


def _check_sequence(model: LatentSequenceModel, obs: jax.Array, actions: jax.Array, resets: jax.Array) -> None:
    lead = tuple(resets.shape)
    if len(lead) != 2:
        raise ValueError(f"resets must be time-major [T, B], got shape {lead}.")
    if tuple(obs.shape) != lead + model.obs_shape:
        raise ValueError(f"obs must have shape [T, B, *obs_shape] = {lead + model.obs_shape}, got {tuple(obs.shape)}.")
    if tuple(actions.shape) != lead + (model.action_size,):
        raise ValueError(
            f"actions must have shape [T, B, A] = {lead + (model.action_size,)}, got {tuple(actions.shape)}; "
            "discrete actions are one-hot."
        )


def observe(
    model: LatentSequenceModel,
    params: Any,
    carry: ModelCarry,
    obs: jax.Array,
    prev_actions: jax.Array,
    resets: jax.Array,
    key: jax.Array,
) -> tuple[ModelCarry, Observation]:
    """Posterior rollout over a sequence: ``obs [T, B, ...]``, ``prev_actions [T, B, A]`` (``a_{t-1}``), ``resets [T, B]``.

    With the non-recurrent posterior every ``z_t`` is sampled in parallel and the
    backbone runs once in sequence mode. With ``classic_posterior`` ``z_t``
    depends on ``h_t``, so this is :func:`observe_stepwise`. Both draw ``z_t``
    with ``split(key, T)[t]``, so they agree sample for sample.
    """
    _check_sequence(model, obs, prev_actions, resets)
    if model.config.classic_posterior:
        carry, observation, _ = observe_stepwise(model, params, carry, obs, prev_actions, resets, key)
        return carry, observation
    length = obs.shape[0]
    posterior_logits = model.apply(params, obs, None, method=_posterior_from_obs)
    latents = _sample_latents(_step_keys(key, length), posterior_logits)
    previous = jnp.concatenate([carry.latent[None], latents[:-1]], axis=0)
    backbone_carry, h = model.apply(params, carry.backbone, previous, prev_actions, resets, method=LatentSequenceModel.core)
    prior_logits = model.apply(params, h, method=LatentSequenceModel.prior)
    state = LatentState(h, latents)
    return ModelCarry(backbone_carry, latents[-1]), Observation(state, posterior_logits, prior_logits)


def _posterior_from_obs(module: LatentSequenceModel, obs: jax.Array, h: jax.Array | None) -> jax.Array:
    return module.posterior(module.embed(obs), h)


def observe_stepwise(
    model: LatentSequenceModel,
    params: Any,
    carry: ModelCarry,
    obs: jax.Array,
    prev_actions: jax.Array,
    resets: jax.Array,
    key: jax.Array,
) -> tuple[ModelCarry, Observation, ModelCarry]:
    """The posterior rollout one step at a time (backbone in step mode), also returning the carry after every step.

    Returns ``(final carry, Observation [T, B, ...], carries [T, B, ...])``;
    ``carries[t]`` is the carry after step t, from which :func:`imagine` can
    start at ``(h_t, z_t)``. Equals :func:`observe` for the non-recurrent
    posterior (the test of sequence mode against step mode).
    """
    _check_sequence(model, obs, prev_actions, resets)
    classic = model.config.classic_posterior

    def step(carry: ModelCarry, inputs):
        obs_t, action_t, reset_t, key_t = inputs
        backbone_carry, h = model.apply(
            params, carry.backbone, carry.latent[None], action_t[None], reset_t[None], method=LatentSequenceModel.core
        )
        logits = model.apply(params, obs_t[None], h if classic else None, method=_posterior_from_obs)
        latent = _sample_latents(key_t[None], logits)
        prior_logits = model.apply(params, h, method=LatentSequenceModel.prior)
        carry = ModelCarry(backbone_carry, latent[0])
        return carry, (Observation(LatentState(h[0], latent[0]), logits[0], prior_logits[0]), carry)

    keys = _step_keys(key, obs.shape[0])
    carry, (observation, carries) = jax.lax.scan(step, carry, (obs, prev_actions, resets, keys))
    return carry, observation, carries


def imagine_step(
    model: LatentSequenceModel, params: Any, carry: ModelCarry, action: jax.Array, key: jax.Array
) -> tuple[ModelCarry, LatentState]:
    """One step of the prior dynamics from ``carry`` (holding ``z_t``) under ``action`` ``[B, A]``.

    ``h_{t+1} = backbone(MLP([z_t, a_t]))`` in step mode, ``z_{t+1} ~ p(z | h_{t+1})``.
    """
    resets = jnp.zeros((1, action.shape[0]), bool)
    backbone_carry, h = model.apply(params, carry.backbone, carry.latent[None], action[None], resets, method=LatentSequenceModel.core)
    prior_logits = model.apply(params, h, method=LatentSequenceModel.prior)
    latent = flatten_groups(sample_one_hot(key, prior_logits[0]))
    return ModelCarry(backbone_carry, latent), LatentState(h[0], latent)


def output_features(state: LatentState, carry: ModelCarry) -> jax.Array:
    """What DreamerV3's actor and critic read: ``[h_t, z_t]``, ``[N, H + G*K]`` (``carry`` unused)."""
    return state.features()


def carry_features(carry: ModelCarry) -> jax.Array:
    """The backbone's recurrent state as real features ``[N, F]``, symlog-squashed.

    Every leaf of the backbone's carry is flattened per example; complex SSM
    states contribute their real and imaginary parts. An SSM's output ``h_t``
    is a readout of this state that the world model trains for its own heads
    (``h_t`` holds what the reward of the *previous* action needs); the state
    holds everything the model remembers, which a policy may need one step
    earlier (R2I, Samsami et al. 2024, feeds its policy the SSM's hidden state).
    Only meaningful for recurrent carries: a transformer's carry is a KV cache.
    """
    parts = []
    for leaf in jax.tree.leaves(carry.backbone):
        flat = leaf.reshape(leaf.shape[0], -1)
        parts.extend([flat.real, flat.imag] if jnp.iscomplexobj(flat) else [flat])
    return symlog(jnp.concatenate(parts, axis=-1).astype(jnp.float32))


def imagine(
    model: LatentSequenceModel,
    params: Any,
    carry: ModelCarry,
    start: LatentState,
    policy: Callable[[jax.Array, jax.Array], jax.Array],
    horizon: int,
    key: jax.Array,
    features: Callable[[LatentState, ModelCarry], jax.Array] = output_features,
) -> tuple[LatentState, jax.Array, jax.Array]:
    """Roll the prior forward ``horizon`` steps from ``(carry, start)`` choosing actions with ``policy``.

    ``features(state, carry) -> [N, F]`` is what the policy reads (default
    ``[h_t, z_t]``; :func:`carry_features` gives it the recurrent state), and
    ``policy(features [N, F], key) -> action [N, A]`` (one-hot for discrete).
    Returns ``states [horizon + 1, N, ...]`` (``states[0] = start``), the
    policy's ``features [horizon + 1, N, F]`` of each, and ``actions
    [horizon + 1, N, A]``, ``actions[t]`` taken in ``states[t]`` (the last one
    is drawn only so the arrays align). Deterministic given ``key``.
    """

    def step(inputs, key_t):
        carry, state = inputs
        policy_key, model_key = jax.random.split(key_t)
        read = features(state, carry)
        action = policy(read, policy_key)
        carry, next_state = imagine_step(model, params, carry, action, model_key)
        return (carry, next_state), (state, read, action)

    keys = jax.random.split(key, horizon + 1)
    (carry, last), (states, reads, actions) = jax.lax.scan(step, (carry, start), keys[:-1])
    last_read = features(last, carry)
    last_action = policy(last_read, keys[-1])

    def append(sequence, item):
        return jnp.concatenate([sequence, item[None]], axis=0)

    states = jax.tree.map(append, states, last)
    return states, append(reads, last_read), append(actions, last_action)


def imagine_open_loop(
    model: LatentSequenceModel, params: Any, carry: ModelCarry, actions: jax.Array, key: jax.Array
) -> LatentState:
    """Prior rollout under given ``actions [H, B, A]`` from ``carry``: states ``[H, B, ...]`` (the memory probe)."""

    def step(carry, inputs):
        action, key_t = inputs
        carry, state = imagine_step(model, params, carry, action, key_t)
        return carry, state

    _, states = jax.lax.scan(step, carry, (actions, jax.random.split(key, actions.shape[0])))
    return states


def heads(model: LatentSequenceModel, params: Any, state: LatentState) -> HeadOutputs:
    """Decoder, reward and continue predictions for any ``[..., ]`` batch of states."""
    return model.apply(params, state, method=LatentSequenceModel.heads)


def policy_features(policy_inputs: str) -> Callable[[LatentState, ModelCarry], jax.Array]:
    """``features(state, carry) -> [N, F]``, what a policy reads (see :attr:`WorldModelConfig.policy_inputs`)."""
    if policy_inputs == "output":
        return output_features
    if policy_inputs == "state":
        return lambda state, carry: jnp.concatenate([carry_features(carry), state.z], axis=-1)
    return lambda state, carry: jnp.concatenate([state.h, carry_features(carry), state.z], axis=-1)
