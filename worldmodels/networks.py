"""Small networks the world model is made of: MLPs, a CNN encoder and its transposed decoder.

DreamerV3 style: Dense/Conv -> LayerNorm -> SiLU. The LayerNorm epsilon is 1e-3,
not 1e-6: an all-zero input (an episode start feeds zeros to the core's input
MLP, a zero observation to the encoder) makes the Dense output constant, and
at zero variance a LayerNorm amplifies gradients by ``1 / sqrt(epsilon)`` per
layer, which reached ``inf`` with 1e-6. Output layers that predict a
distribution are plain ``nn.Dense`` in the caller, so their init can be chosen
(zero for the reward and value heads).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

NORM_EPSILON = 1e-3


class MLP(nn.Module):
    """``len(sizes)`` x (Dense -> LayerNorm -> SiLU) over the last axis: ``[..., D] -> [..., sizes[-1]]``."""

    sizes: Sequence[int]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for size in self.sizes:
            x = nn.silu(nn.LayerNorm(epsilon=NORM_EPSILON)(nn.Dense(size)(x)))
        return x


class ConvEncoder(nn.Module):
    """Stride-2 convolutions over ``[..., H, W, C]`` images, flattened: ``-> [..., E]``.

    Channels double at every stage from ``depth``; H and W must be divisible by
    ``2 ** stages`` (the decoder mirrors the shapes exactly).
    """

    depth: int = 16
    stages: int = 2

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        lead = images.shape[:-3]
        x = images.reshape((-1,) + images.shape[-3:])
        for stage in range(self.stages):
            x = nn.Conv(self.depth * 2**stage, (4, 4), strides=(2, 2), padding="SAME")(x)
            x = nn.silu(nn.LayerNorm(epsilon=NORM_EPSILON)(x))
        return x.reshape(lead + (-1,))


class ConvDecoder(nn.Module):
    """Features ``[..., F]`` -> images ``[..., H, W, C]`` by transposed convolutions mirroring :class:`ConvEncoder`."""

    image_shape: tuple[int, int, int]
    depth: int = 16
    stages: int = 2

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        height, width, channels = self.image_shape
        scale = 2**self.stages
        top = self.depth * 2 ** (self.stages - 1)
        lead = features.shape[:-1]
        x = nn.Dense((height // scale) * (width // scale) * top)(features.reshape((-1, features.shape[-1])))
        x = x.reshape((-1, height // scale, width // scale, top))
        for stage in reversed(range(self.stages - 1)):
            x = nn.ConvTranspose(self.depth * 2**stage, (4, 4), strides=(2, 2), padding="SAME")(x)
            x = nn.silu(nn.LayerNorm(epsilon=NORM_EPSILON)(x))
        x = nn.ConvTranspose(channels, (4, 4), strides=(2, 2), padding="SAME")(x)
        return x.reshape(lead + (height, width, channels))


def zero_dense(features: int) -> nn.Dense:
    """An output layer initialised to zero (DreamerV3 zero-initialises its reward and value heads)."""
    return nn.Dense(features, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)


def flatten_groups(latent: jax.Array) -> jax.Array:
    """``[..., groups, classes] -> [..., groups * classes]``."""
    return latent.reshape(latent.shape[:-2] + (-1,))


def concat(*arrays: jax.Array) -> jax.Array:
    return jnp.concatenate(arrays, axis=-1)
