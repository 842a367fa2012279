"""LRU: the Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural
Networks for Long Sequences"), resettable.

One layer holds ``N`` complex states::

    x_t = lambda * x_{t-1} + gamma * (B u_t)      (reset: x_{t-1} := 0)
    y_t = Re(C x_t) + D u_t

with the exponential parameterisation ``lambda = exp(-exp(nu) + i exp(theta))``
(Sec. 3.3), ``|lambda|`` initialised uniformly on the ring ``[r_min, r_max]``
and the phase on ``[0, max_phase]`` (Lemma 3.2), and the normalisation
``gamma = sqrt(1 - |lambda|^2)`` (learned from that start, Sec. 3.4).

Negative eigenvalues (Grazzi et al. 2024, "Unlocking State-Tracking in Linear
RNNs Through Negative Eigenvalues"): a diagonal recurrence whose eigenvalues
lie in ``[0, 1)`` cannot track parity; the fix is to map the range onto
``(-1, 1)`` with ``x -> 2x - 1``. mnemax applies exactly that map to the
LRU's radial factor: with ``negative_eigenvalues=True``,
``lambda = (2 exp(-exp(nu)) - 1) exp(i exp(theta))``, initialised so that
``|lambda|`` still lies on the ring (and the sign starts positive). This matters
for the real-valued LRU (``max_phase=0``: no phase parameter, real eigenvalues
in ``(0, 1)``, or ``(-1, 1)`` with the option). The complex LRU can already
reach a negative real eigenvalue through phase ``pi``; the option there only
adds a second route to it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax.backbones.registry import register
from mnemax.backbones.ssm_init import as_complex, ring_magnitudes
from mnemax.backbones.ssm_stack import DiagonalSSM, DiscreteSystem, SSMStack


def lru_eigenvalues(nu_log: jax.Array, theta_log: jax.Array | None, negative_eigenvalues: bool) -> jax.Array:
    """``lambda [N]`` (complex) from the stored parameters; ``theta_log=None`` is the real-valued LRU."""
    radial = jnp.exp(-jnp.exp(nu_log))
    if negative_eigenvalues:
        radial = 2.0 * radial - 1.0
    phase = jnp.zeros_like(nu_log) if theta_log is None else jnp.exp(theta_log)
    return radial * jnp.exp(1j * phase.astype(jnp.complex64))


class LRUSSM(DiagonalSSM):
    """One LRU layer; state ``[B, N]``. Parameters ``nu_log, theta_log, gamma_log [N]``, ``B [N, H, 2]``, ``C [H, N, 2]``, ``D [H]``."""

    features: int
    state_size: int
    r_min: float = 0.9
    r_max: float = 0.999
    max_phase: float = 2 * np.pi
    negative_eigenvalues: bool = False

    def system(self) -> DiscreteSystem:
        """Register the parameters: ``lambda [N]``, ``gamma B [N, H]``, ``C [H, N]``, ``D [H]``."""
        size = self.state_size

        def init_nu(key, shape):
            magnitude = ring_magnitudes(key, size, self.r_min, self.r_max)
            radial = (magnitude + 1.0) / 2.0 if self.negative_eigenvalues else magnitude
            return jnp.log(-jnp.log(radial))

        def init_theta(key, shape):
            return jnp.log(jax.random.uniform(key, shape, maxval=self.max_phase))

        def init_gamma(key, shape):
            return jnp.log(jnp.sqrt(1.0 - jnp.abs(jax.lax.stop_gradient(eigenvalues)) ** 2))

        nu_log = self.param("nu_log", init_nu, (size,))
        theta_log = self.param("theta_log", init_theta, (size,)) if self.max_phase > 0 else None
        eigenvalues = lru_eigenvalues(nu_log, theta_log, self.negative_eigenvalues)
        gamma_log = self.param("gamma_log", init_gamma, (size,))
        b = as_complex(self.param("B", nn.initializers.normal(1.0 / np.sqrt(2 * self.features)), (size, self.features, 2)))
        c = as_complex(self.param("C", nn.initializers.normal(1.0 / np.sqrt(size)), (self.features, size, 2)))
        d = self.param("D", nn.initializers.normal(1.0), (self.features,))
        return DiscreteSystem(eigenvalues, jnp.exp(gamma_log)[:, None] * b, c, d)


@register("lru")
class LRU(SSMStack):
    """Stacked resettable LRU layers.

    Options: ``num_layers`` (4), ``chunk_size`` (4096) and ``scan_method`` (see ssm_stack.py), ``state_size`` N (default ``features``),
    ``r_min``/``r_max`` (0.9/0.999, the initial ring of ``|lambda|``),
    ``max_phase`` (2 pi; 0 gives the real-valued LRU), ``negative_eigenvalues``
    (False; see the module docstring).
    """

    state_size: int | None = None
    r_min: float = 0.9
    r_max: float = 0.999
    max_phase: float = 2 * np.pi
    negative_eigenvalues: bool = False

    @property
    def _state_size(self) -> int:
        return self.features if self.state_size is None else self.state_size

    def check_options(self) -> None:
        super().check_options()
        if not 0.0 <= self.r_min < self.r_max < 1.0:
            raise ValueError(f"The LRU ring needs 0 <= r_min < r_max < 1, got r_min={self.r_min}, r_max={self.r_max}.")
        if self.max_phase < 0:
            raise ValueError(f"max_phase must be >= 0 (0 gives real eigenvalues), got {self.max_phase}.")

    def state_shape(self) -> tuple[int, ...]:
        return (self._state_size,)

    def make_ssm(self, name: str) -> LRUSSM:
        return LRUSSM(
            features=self.features,
            state_size=self._state_size,
            r_min=self.r_min,
            r_max=self.r_max,
            max_phase=self.max_phase,
            negative_eigenvalues=self.negative_eigenvalues,
            name=name,
        )
