"""Actor-critic networks for PPO: an encoder MLP, an optional resettable backbone, actor and critic heads.

One module serves feed-forward and recurrent policies with the backbone
interface of :mod:`mnemax.backbones` (time-major, explicit resets)::

    obs [T, B, D] -> encoder MLP -> backbone (or nothing) -> actor head  -> logits or mean [T, B, A]
                                                          -> critic head -> value          [T, B]

Feed-forward networks have no carry (``None``) and ignore ``resets``.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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
    """

    action_dim: int
    discrete: bool = True
    encoder_sizes: Sequence[int] = ()
    head_sizes: Sequence[int] = (64, 64)
    activation: str = "tanh"
    backbone: nn.Module | None = None

    def initialize_carry(self, batch_size: int) -> Any:
        """The backbone's initial carry for ``batch_size`` environments (``None`` when feed-forward)."""
        return None if self.backbone is None else self.backbone.initialize_carry(batch_size)

    @nn.compact
    def __call__(self, carry: Any, obs: jax.Array, resets: jax.Array):
        x = OrthogonalMLP(self.encoder_sizes, self.activation, name="encoder")(obs)
        if self.backbone is not None:
            carry, x = self.backbone(carry, x, resets)
        actor = OrthogonalMLP(self.head_sizes, self.activation, name="actor")(x)
        out = nn.Dense(self.action_dim, kernel_init=nn.initializers.orthogonal(0.01), name="actor_out")(actor)
        critic = OrthogonalMLP(self.head_sizes, self.activation, name="critic")(x)
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name="critic_out")(critic)[..., 0]
        if self.discrete:
            return carry, (out, value)
        log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
        return carry, ((out, jnp.broadcast_to(log_std, out.shape)), value)
