"""Short causal convolutions over time that never reach across an episode reset.

Modern linear recurrences put a depthwise causal convolution of a few steps
(``K = 4``) after their input projections: Mamba on its inner stream,
Gated DeltaNet and Titans on queries, keys and values, xLSTM's mLSTM on the
stream that makes queries and keys. Content-addressed memories need it most:
a delta-rule or attention-like memory retrieves by matching ``q_t`` against
stored keys, and without the convolution ``q_t`` knows only ``x_t``, so "what
came ``k`` steps ago" (POPGym's RepeatPrevious) has no key to match.

The window is carried between calls as the last ``K - 1`` inputs, so one call
over ``T`` steps equals ``T`` calls of one step; a tap is used only when it
belongs to the current episode.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp


def episode_causal_conv(history: jax.Array, u: jax.Array, resets: jax.Array, kernel: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Depthwise causal convolution whose window stops at the most recent reset.

    Args:
      history: ``[B, K - 1, E]`` the previous call's last inputs, oldest first.
      u: ``[T, B, E]`` new inputs. resets: ``[T, B]`` bool.
      kernel: ``[K, E]``; ``kernel[K - 1]`` weighs the current step.

    Returns:
      ``(outputs [T, B, E], history [B, K - 1, E])``, the new history zeroed
      where it belongs to an episode other than the last step's.
    """
    size, steps = kernel.shape[0], u.shape[0]
    full = jnp.concatenate([jnp.swapaxes(history, 0, 1), u])  # [K - 1 + T, B, E]
    episode = jnp.cumsum(resets, axis=0, dtype=jnp.int32)  # [T, B]; the history is episode 0
    full_episode = jnp.concatenate([jnp.zeros((size - 1, u.shape[1]), jnp.int32), episode])
    outputs = jnp.zeros_like(u)
    for tap in range(size):
        same = (full_episode[tap : tap + steps] == episode)[..., None]
        outputs = outputs + jnp.where(same, full[tap : tap + steps], 0.0) * kernel[tap]
    tail = steps  # the last K - 1 entries of ``full`` start here (an empty slice when K = 1)
    keep = (full_episode[tail:] == episode[-1])[..., None]
    new_history = jnp.where(keep, full[tail:], 0.0)
    return outputs, jnp.swapaxes(new_history, 0, 1)


def conv_history(batch_size: int, size: int, features: int) -> jax.Array:
    """The empty window of a ``size``-step convolution on ``features`` channels: zeros ``[B, size - 1, features]``."""
    return jnp.zeros((batch_size, size - 1, features), jnp.float32)


class ConvolvedState(NamedTuple):
    """A layer's carry when a short convolution feeds its recurrence.

    core: the recurrence's own state (any PyTree, batch leading).
    conv: ``[B, K - 1, E]``, the convolution's last inputs.
    """

    core: Any
    conv: jax.Array


class ShortConv(nn.Module):
    """``silu(depthwise causal conv_K(u))`` on ``u [T, B, E]``, resettable; the window is carried.

    No bias and PyTorch's ``Conv1d`` initialisation (uniform on
    ``[-1/sqrt(K), 1/sqrt(K)]``), as the reference implementations of Gated
    DeltaNet and its relatives use.
    """

    size: int = 4

    @nn.compact
    def __call__(self, history: jax.Array, u: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(history [B, K - 1, E], u [T, B, E], resets [T, B]) -> (history, outputs [T, B, E])``."""
        bound = 1.0 / self.size**0.5
        init = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)  # noqa: E731
        kernel = self.param("kernel", init, (self.size, u.shape[-1]))
        outputs, history = episode_causal_conv(history, u, resets.astype(bool), kernel)
        return history, nn.silu(outputs)


def convolved_projections(
    x: jax.Array, widths: tuple[int, ...], history: jax.Array, resets: jax.Array, conv_size: int
) -> tuple[jax.Array, list[jax.Array]]:
    """Project ``x [T, B, F]`` to streams of the given widths, jointly through one :class:`ShortConv`.

    Call it inside a compact method: it adds the projection ``qkv`` and the
    convolution ``short_conv`` to the calling module. A depthwise convolution
    of the joint projection is the same as one per stream.

    Returns ``(history, streams)``: the convolution's new window and one ``[T, B, width]`` array per width.
    """
    joint = nn.Dense(sum(widths), use_bias=False, name="qkv")(x)
    history, joint = ShortConv(conv_size, name="short_conv")(history, joint, resets)
    cuts = [sum(widths[: i + 1]) for i in range(len(widths) - 1)]
    return history, jnp.split(joint, cuts, axis=-1)
