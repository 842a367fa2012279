"""Actor-critic networks for PPO: an encoder MLP, an optional resettable backbone, actor and critic heads.

One module serves feed-forward and recurrent policies with the backbone
interface of :mod:`mnemax.backbones` (time-major, explicit resets)::

    obs [T, B, D] -> encoder MLP -> backbone (or nothing) -> actor head  -> logits or mean [T, B, A]
                                                          -> critic head -> value          [T, B]

Feed-forward networks have no carry (``None``) and ignore ``resets``. With
``separate_critic`` the critic head reads a torso of its own (a second encoder
and backbone, the layout of memorax and of CleanRL's separate networks), and
the carry is the pair ``(actor carry, critic carry)``.

An observation with named parts (a Dict observation flattened by
:class:`~mnemax.envs.FlattenObservation`, e.g. a view and words) is split back
into its parts, each encoded on its own (features by an MLP, token ids by an
embedding), and handed to the backbone as a dict when the backbone declares
the parts it reads (:func:`mnemax.backbones.input_parts`, DCEM's vision and language), else
concatenated. With ``reconstruction`` the network also decodes every part of
its input from the backbone's output and reports that loss in the
``"aux_losses"`` collection, for the agent to weight and add.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax.backbones import input_parts
from mnemax.envs.wrappers import ObservationPart

ACTIVATIONS = ("tanh", "relu", "leaky_relu", "gelu", "elu", "silu")


def activation_fn(name: str):
    """The flax activation called ``name``; one of :data:`ACTIVATIONS`."""
    if name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}.")
    return getattr(nn, name)


class OrthogonalMLP(nn.Module):
    """Dense layers with orthogonal ``sqrt(2)`` initialisation and an activation after each (PPO's layers)."""

    sizes: Sequence[int]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        for size in self.sizes:
            x = act(nn.Dense(size, kernel_init=nn.initializers.orthogonal(np.sqrt(2.0)))(x))
        return x


def split_parts(parts: Sequence[ObservationPart], obs: jax.Array) -> dict[str, jax.Array]:
    """The flat observation ``[..., D]`` cut into its named parts ``{name: [..., part.size]}``."""
    bounds = np.cumsum([0, *(part.size for part in parts)])
    if obs.shape[-1] != bounds[-1]:
        raise ValueError(
            f"The observation has {obs.shape[-1]} values but its parts "
            f"({', '.join(f'{p.name}: {p.size}' for p in parts)}) add up to {bounds[-1]}."
        )
    return {part.name: obs[..., start:stop] for part, start, stop in zip(parts, bounds[:-1], bounds[1:])}


def token_ids(part: ObservationPart, values: jax.Array) -> jax.Array:
    """Token ids held as floats in a flat observation, back to int32 in ``[0, vocab_size)``."""
    return jnp.clip(jnp.round(values), 0, part.vocab_size - 1).astype(jnp.int32)


class ConvTorso(nn.Module):
    """3 x 3 convolutions (stride 1, same padding), the activation after each, flattened: ``[..., H, W, C] -> [..., H W channels[-1]]``.

    The small grid-world torso (MiniGrid's and Navix's agents use one like
    it): a cell's features are compared with its neighbours' by the same
    weights wherever the cell is, which an MLP over the flat view must learn
    position by position.
    """

    channels: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = activation_fn(self.activation)
        lead = x.shape[:-3]
        x = x.reshape(-1, *x.shape[-3:])
        for width in self.channels:
            x = act(nn.Conv(width, (3, 3), padding="SAME", kernel_init=nn.initializers.orthogonal(np.sqrt(2.0)))(x))
        return x.reshape(*lead, -1)


def convolved(part: ObservationPart, conv_channels: Sequence[int]) -> bool:
    """Whether ``part`` goes through a :class:`ConvTorso`: convolutions are configured and it is an image ``(H, W, C)`` of features."""
    return bool(conv_channels) and len(part.shape) == 3 and not part.tokens


class PartEncoder(nn.Module):
    """Encode one observation part ``[T, B, size] -> [T, B, E]``: tokens embedded and concatenated, then an MLP.

    An image part ``(H, W, C)`` goes through ``conv_channels`` convolutions
    first when any are given (:func:`convolved`).
    """

    part: ObservationPart
    sizes: Sequence[int]
    activation: str
    token_features: int
    conv_channels: Sequence[int] = ()

    @nn.compact
    def __call__(self, values: jax.Array) -> jax.Array:
        if self.part.tokens:
            embedded = nn.Embed(self.part.vocab_size, self.token_features, name="embed")(token_ids(self.part, values))
            values = embedded.reshape(*values.shape[:-1], self.part.size * self.token_features)
        elif convolved(self.part, self.conv_channels):
            image = values.reshape(*values.shape[:-1], *self.part.shape)
            values = ConvTorso(tuple(self.conv_channels), self.activation, name="conv")(image)
        return OrthogonalMLP(self.sizes, self.activation, name="mlp")(values)


class Reconstruction(nn.Module):
    """Decode every part of the observation from the agent's state; the mean loss over ``[T, B]``.

    Feature parts: mean squared error over the part's values. Token parts:
    mean cross-entropy over the part's tokens. The parts' losses are summed,
    so each part weighs the same whatever its size. This is the auxiliary
    loss of Hill et al. (2021), whose memory agents stayed near chance
    without it.
    """

    parts: Sequence[ObservationPart]

    @nn.compact
    def __call__(self, state: jax.Array, obs: jax.Array) -> jax.Array:
        targets = split_parts(self.parts, jax.lax.stop_gradient(obs))
        loss = jnp.zeros(state.shape[:-1])
        for part in self.parts:
            if part.tokens:
                logits = nn.Dense(part.size * part.vocab_size, name=f"decode_{part.name}")(state)
                logits = logits.reshape(*state.shape[:-1], part.size, part.vocab_size)
                log_probs = jax.nn.log_softmax(logits)
                ids = token_ids(part, targets[part.name])
                loss += -jnp.mean(jnp.take_along_axis(log_probs, ids[..., None], axis=-1)[..., 0], axis=-1)
            else:
                prediction = nn.Dense(part.size, name=f"decode_{part.name}")(state)
                loss += jnp.mean(jnp.square(prediction - targets[part.name]), axis=-1)
        return jnp.mean(loss)


class ActorCritic(nn.Module):
    """Policy and value network; ``__call__(carry, obs[T, B, D], resets[T, B])``.

    Returns ``(carry, (policy_params, value[T, B]))`` where ``policy_params`` is
    ``logits[T, B, A]`` for a discrete policy and ``(mean[T, B, A], log_std[T, B, A])``
    for a continuous one (a state-independent learned log-std, as in Schulman
    et al. 2017's continuous-control experiments).

    Attributes:
      action_dim: number of discrete actions, or size of the continuous action vector.
      discrete: Categorical policy if true, diagonal Normal if false.
      encoder_sizes: widths of the encoder MLP in front of the backbone (may be empty).
      head_sizes: widths of the hidden layers of each of the actor and critic heads.
      activation: activation of the encoder and heads.
      backbone: a built backbone module, or ``None`` for a feed-forward network.
      observation_parts: the named parts of the flat observation (:func:`mnemax.envs.observation_parts`);
        empty or one part of features: the whole observation goes through one encoder.
      token_features: embedding width of each token of a token part.
      conv_channels: widths of 3 x 3 convolutions that image parts ``(H, W, C)`` go through before
        the encoder MLP (:class:`ConvTorso`); empty: images are flattened into the MLP.
      reconstruction: also decode the observation from the backbone's output (loss sown as
        ``aux_losses/reconstruction``).
      separate_critic: give the critic its own encoder and backbone instead of sharing the actor's
        (parameters ``critic_encoder*`` and ``critic_backbone``; twice the recurrent work per step).
    """

    action_dim: int
    discrete: bool = True
    encoder_sizes: Sequence[int] = ()
    head_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    backbone: nn.Module | None = None
    observation_parts: tuple[ObservationPart, ...] = ()
    token_features: int = 16
    conv_channels: Sequence[int] = ()
    reconstruction: bool = False
    separate_critic: bool = False

    def initialize_carry(self, batch_size: int) -> Any:
        """The backbone's initial carry for ``batch_size`` environments (``None`` when feed-forward;
        ``(actor carry, critic carry)`` with ``separate_critic``)."""
        if self.backbone is None:
            return None
        carry = self.backbone.initialize_carry(batch_size)
        return (carry, self.backbone.initialize_carry(batch_size)) if self.separate_critic else carry

    def encode(self, obs: jax.Array, prefix: str = "") -> jax.Array | dict[str, jax.Array]:
        """The encoder's output: one array, or a dict of encoded parts for a backbone that reads parts.

        ``prefix`` names a second encoder's parameters (the separate critic's).
        """
        parts = self.observation_parts
        if len(parts) <= 1 and not any(part.tokens or convolved(part, self.conv_channels) for part in parts):
            return OrthogonalMLP(self.encoder_sizes, self.activation, name=f"{prefix}encoder")(obs)
        values = split_parts(parts, obs)
        encoded = {
            part.name: PartEncoder(
                part, self.encoder_sizes, self.activation, self.token_features, tuple(self.conv_channels),
                name=f"{prefix}encoder_{part.name}",
            )(values[part.name])
            for part in parts
        }
        wanted = () if self.backbone is None else input_parts(self.backbone)
        if wanted:
            return {name: encoded[name] for name in wanted}
        return jnp.concatenate(list(encoded.values()), axis=-1)

    @nn.compact
    def __call__(self, carry: Any, obs: jax.Array, resets: jax.Array):
        paired = self.separate_critic and self.backbone is not None  # the carry is (actor carry, critic carry)
        actor_carry, critic_carry = carry if paired else (carry, None)
        x = self.encode(obs)
        if self.backbone is not None:
            actor_carry, x = self.backbone(actor_carry, x, resets)
        critic_x = x
        if self.separate_critic:
            critic_x = self.encode(obs, prefix="critic_")
            if self.backbone is not None:
                critic_backbone = self.backbone.clone(parent=self, name="critic_backbone")
                critic_carry, critic_x = critic_backbone(critic_carry, critic_x, resets)
        carry = (actor_carry, critic_carry) if paired else actor_carry
        if self.reconstruction:
            parts = self.observation_parts or (ObservationPart("observation", obs.shape[-1]),)
            self.sow("aux_losses", "reconstruction", Reconstruction(parts, name="decoder")(x, obs))
        actor = OrthogonalMLP(self.head_sizes, self.activation, name="actor")(x)
        out = nn.Dense(self.action_dim, kernel_init=nn.initializers.orthogonal(0.01), name="actor_out")(actor)
        critic = OrthogonalMLP(self.head_sizes, self.activation, name="critic")(critic_x)
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name="critic_out")(critic)[..., 0]
        if self.discrete:
            return carry, (out, value)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return carry, ((out, jnp.broadcast_to(log_std, out.shape)), value)
