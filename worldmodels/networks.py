"""Small networks the world model is made of: MLPs, a CNN encoder and its upsampling decoder.

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


def unit_frames(frames: jax.Array) -> jax.Array:
    """Frames as float32 in [0, 1]: uint8 pixels divided by 255, floats unchanged.

    Image envs hand out uint8 frames (and the replay keeps them so, a quarter
    of the memory); the CNN reads, and the decoder predicts, values in [0, 1].
    ``mnemax.envs.memory.metrics`` scores frames with the same conversion of its
    own: ``envs`` imports from no other mnemax folder (docs/ARCHITECTURE.md).
    """
    frames = jnp.asarray(frames)
    return frames.astype(jnp.float32) / 255.0 if frames.dtype == jnp.uint8 else frames.astype(jnp.float32)


def image_patches(images: jax.Array, size: int, stride: int) -> jax.Array:
    """``[N, H, W, C]`` -> ``[N, ceil(H / stride), ceil(W / stride), size * size * C]``: every ``size x size``
    window (SAME padding, as ``lax.conv`` pads), flattened in (row, column, channel) order.

    Written with strided slices, so a convolution becomes ``patches @ kernel``.
    Why not ``lax.conv``: inside a loop (``lax.scan`` over training updates)
    XLA's CPU backend runs the kernel-gradient convolution several times slower
    than outside one (jax-ml/jax#12868); slices and a matmul have no such cliff.
    """
    _, height, width, _ = images.shape
    out_h, out_w = -(-height // stride), -(-width // stride)
    pad_h, pad_w = max((out_h - 1) * stride + size - height, 0), max((out_w - 1) * stride + size - width, 0)
    padded = jnp.pad(images, ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    windows = [
        padded[:, i : i + stride * (out_h - 1) + 1 : stride, j : j + stride * (out_w - 1) + 1 : stride, :]
        for i in range(size)
        for j in range(size)
    ]
    return jnp.concatenate(windows, axis=-1)


class PatchConv(nn.Module):
    """A SAME-padded 2-D convolution ``[N, H, W, C] -> [N, H / stride, W / stride, features]`` as patches @ kernel.

    The kernel is ``[size, size, C, features]`` with ``nn.Conv``'s initialiser,
    so this is ``nn.Conv(features, (size, size), strides=stride, padding="SAME")``
    computed without a convolution op (see :func:`image_patches`).
    """

    features: int
    size: int = 4
    stride: int = 2

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        channels = images.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (self.size, self.size, channels, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        patches = image_patches(images, self.size, self.stride)
        return patches @ kernel.reshape(-1, self.features) + bias


class SubPixelUpsample(nn.Module):
    """``[N, H, W, C] -> [N, 2H, 2W, features]``: a 3x3 :class:`PatchConv` to ``4 * features`` channels, then depth to space.

    The sub-pixel convolution of Shi et al. (2016): each of the four output
    phases is a learned function of the 3x3 input neighbourhood, which
    contains the 2x2 neighbourhood a 4x4 stride-2 transposed convolution uses,
    so it can express that layer; computed at the input resolution, without
    the transposed-convolution gradient that is slow inside CPU loops.
    """

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, height, width, _ = x.shape
        x = PatchConv(4 * self.features, size=3, stride=1)(x)  # [N, H, W, 2 * 2 * F]
        x = x.reshape(n, height, width, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
        return x.reshape(n, 2 * height, 2 * width, self.features)


class ConvEncoder(nn.Module):
    """Stride-2 4x4 convolutions over ``[..., H, W, C]`` images, flattened: ``-> [..., E]``.

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
            x = PatchConv(self.depth * 2**stage, size=4, stride=2)(x)
            x = nn.silu(nn.LayerNorm(epsilon=NORM_EPSILON)(x))
        return x.reshape(lead + (-1,))


class ConvDecoder(nn.Module):
    """Features ``[..., F]`` -> images ``[..., H, W, C]`` by 2x upsampling stages mirroring :class:`ConvEncoder`."""

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
            x = SubPixelUpsample(self.depth * 2**stage)(x)
            x = nn.silu(nn.LayerNorm(epsilon=NORM_EPSILON)(x))
        x = SubPixelUpsample(channels)(x)
        return x.reshape(lead + (height, width, channels))


def zero_dense(features: int) -> nn.Dense:
    """An output layer initialised to zero (DreamerV3 zero-initialises its reward and value heads)."""
    return nn.Dense(features, kernel_init=nn.initializers.zeros, bias_init=nn.initializers.zeros)


def flatten_groups(latent: jax.Array) -> jax.Array:
    """``[..., groups, classes] -> [..., groups * classes]``."""
    return latent.reshape(latent.shape[:-2] + (-1,))


def concat(*arrays: jax.Array) -> jax.Array:
    return jnp.concatenate(arrays, axis=-1)
