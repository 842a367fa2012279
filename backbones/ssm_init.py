"""Initialisers of diagonal state-space models: HiPPO-LegS (S5), S4D-Lin/Inv, the LRU ring.

Everything here returns numpy float64 (or complex128) arrays or flax-style
``init(key, shape)`` functions; the models cast to their parameter dtype.
Complex parameters are stored as real/imaginary pairs in a trailing axis of 2
(:func:`as_complex` reads them back), so optimisers see only real numbers.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

Initializer = Callable[[jax.Array, tuple[int, ...]], jax.Array]


def as_complex(pair: jax.Array) -> jax.Array:
    """``[..., 2]`` real/imaginary pair -> complex ``[...]``."""
    return jax.lax.complex(pair[..., 0], pair[..., 1])


def as_pair(value: jax.Array) -> jax.Array:
    """Complex ``[...]`` -> ``[..., 2]`` real/imaginary pair (the stored form)."""
    return jnp.stack([value.real, value.imag], axis=-1)


def hippo_legs(size: int) -> np.ndarray:
    """The HiPPO-LegS matrix ``A`` (Gu et al. 2020, Eq. 4), ``[N, N]``.

    ``A_nk = -sqrt(2n+1) sqrt(2k+1)`` below the diagonal, ``-(n+1)`` on it, 0 above.
    """
    q = np.sqrt(1.0 + 2.0 * np.arange(size))
    return -(np.tril(np.outer(q, q)) - np.diag(np.arange(size)))


def hippo_legs_normal(size: int) -> np.ndarray:
    """HiPPO-LegS plus its rank-1 term ``p p^T``, ``p_n = sqrt(n + 1/2)`` (Gu et al. 2022, S4 Sec. 3.1).

    The result is normal: ``-1/2`` times the identity plus a skew-symmetric matrix.
    """
    p = np.sqrt(np.arange(size) + 0.5)
    return hippo_legs(size) + np.outer(p, p)


def hippo_eigendecomposition(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues ``Lambda [N]`` and unitary eigenvectors ``V [N, N]`` of the normal HiPPO-LegS.

    The real part of every eigenvalue is the mean of the diagonal (``-1/2``);
    the imaginary parts come from ``eigh`` of the Hermitian ``-i S`` where ``S``
    is the skew part (Smith et al. 2023, App. B.1). Imaginary parts ascend, so
    the first half holds one eigenvalue of each conjugate pair.
    """
    normal = hippo_legs_normal(size)
    skew = (normal - normal.T) / 2.0
    imag, vectors = np.linalg.eigh(-1j * skew)
    real = np.full(size, np.mean(np.diag(normal)))
    return real + 1j * imag, vectors


@functools.lru_cache(maxsize=32)
def s5_eigensystem(state_size: int, blocks: int, conj_sym: bool) -> tuple[np.ndarray, np.ndarray]:
    """S5's block-diagonal initial ``Lambda [P']`` and eigenvectors ``V [P, P']``.

    The HiPPO-LegS eigendecomposition of size ``P / J`` is tiled over ``J``
    blocks: ``Lambda`` repeated, ``V`` block-diagonal (Smith et al. 2023, Sec.
    4.3). With conjugate symmetry each block keeps half of its eigenvalues, so
    ``P' = P / 2``; otherwise ``P' = P``.
    """
    block = state_size // blocks
    eigenvalues, vectors = hippo_eigendecomposition(block)
    if conj_sym:
        eigenvalues, vectors = eigenvalues[: block // 2], vectors[:, : block // 2]
    return np.tile(eigenvalues, blocks), scipy.linalg.block_diag(*([vectors] * blocks))


def s4d_imaginary(init: str, half_size: int, full_size: int) -> np.ndarray:
    """Imaginary parts of S4D's eigenvalues, ``[N/2]`` (Gu et al. 2022, Sec. 4.1).

    ``lin``: ``pi n``; ``inv``: ``(N/pi) (N/(2n+1) - 1)``, for ``n = 0 .. N/2 - 1``.
    """
    n = np.arange(half_size)
    if init == "lin":
        return np.pi * n
    if init == "inv":
        return full_size / np.pi * (full_size / (2 * n + 1) - 1)
    raise ValueError(f"Unknown S4D init {init!r}; choose 'lin' or 'inv'.")


def log_uniform(low: float, high: float) -> Initializer:
    """``log x`` with ``x`` log-uniform on ``[low, high]``: the learned log time-steps of S4D/S5."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, math.log(low), math.log(high))

    return init


def ring_magnitudes(key: jax.Array, size: int, r_min: float, r_max: float) -> jax.Array:
    """``|lambda| [N]`` with ``lambda`` uniform on the ring ``r_min <= |lambda| <= r_max`` (Orvieto et al. 2023, Lemma 3.2)."""
    u = jax.random.uniform(key, (size,))
    return jnp.sqrt(u * (r_max**2 - r_min**2) + r_min**2)
