"""S4D: ``H`` independent diagonal single-input single-output SSMs (Gu et al. 2022,
"On the Parameterization and Initialization of Diagonal State Space Models").

Channel ``h`` has ``N`` complex states, of which ``N/2`` are kept (the others
are their conjugates)::

    x_t[h] = Lambda_bar[h] * x_{t-1}[h] + B_bar[h] u_t[h]     (reset: x_{t-1} := 0)
    y_t[h] = 2 Re(sum_n C[h, n] x_t[h, n]) + D[h] u_t[h]

``Lambda = -exp(log_neg_re) + i imag`` keeps the real part negative (S4D Sec. 3.3);
``imag`` starts at S4D-Lin (``pi n``) or S4D-Inv (``(N/pi)(N/(2n+1) - 1)``);
``B`` starts at 1, ``C`` complex standard normal, the step per channel
log-uniform on ``[dt_min, dt_max]``; zero-order hold by default.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax.backbones.discretization import check_method, discretize
from mnemax.backbones.registry import register
from mnemax.backbones.ssm_init import as_complex, log_uniform, s4d_imaginary
from mnemax.backbones.ssm_stack import DiagonalSSM, DiscreteSystem, SSMStack

INITS = ("lin", "inv")


class S4DSSM(DiagonalSSM):
    """One S4D layer; state ``[B, H, N/2]``. Parameters ``log_neg_re, imag, B, C [H, N/2(, 2)]``, ``D, log_step [H]``."""

    features: int
    state_size: int = 64
    init_method: str = "lin"
    discretization: str = "zoh"
    dt_min: float = 1e-3
    dt_max: float = 1e-1

    def system(self) -> DiscreteSystem:
        """Register the parameters and discretise: ``Lambda_bar, B_bar, 2 C [H, N/2]``."""
        shape = (self.features, self.state_size // 2)
        imag_init = jnp.asarray(s4d_imaginary(self.init_method, shape[1], self.state_size), jnp.float32)
        log_neg_re = self.param("log_neg_re", nn.initializers.constant(np.log(0.5)), shape)
        imag = self.param("imag", lambda key, s: jnp.broadcast_to(imag_init, s), shape)
        b = as_complex(self.param("B", lambda key, s: jnp.zeros(s).at[..., 0].set(1.0), (*shape, 2)))
        c = as_complex(self.param("C", nn.initializers.normal(np.sqrt(0.5)), (*shape, 2)))
        d = self.param("D", nn.initializers.normal(1.0), (self.features,))
        log_step = self.param("log_step", log_uniform(self.dt_min, self.dt_max), (self.features,))
        eigenvalues = jax.lax.complex(-jnp.exp(log_neg_re), imag)
        transition, gain = discretize(eigenvalues, jnp.exp(log_step)[:, None], self.discretization)
        return DiscreteSystem(transition, gain * b, 2.0 * c, d)

    @staticmethod
    def drive(system: DiscreteSystem, u: jax.Array) -> jax.Array:
        """Channel h drives only its own states: ``[T, B, H] -> [T, B, H, N/2]``."""
        return system.input_matrix * u.astype(system.input_matrix.dtype)[..., None]

    @staticmethod
    def readout(system: DiscreteSystem, states: jax.Array, u: jax.Array) -> jax.Array:
        """``y[h] = 2 Re(sum_n C[h, n] x[h, n]) + D[h] u[h]``."""
        return jnp.einsum("tbhn,hn->tbh", states, system.output_matrix).real + system.feedthrough * u


@register("s4d")
class S4D(SSMStack):
    """Stacked resettable S4D layers.

    Options: ``num_layers`` (4), ``chunk_size`` (4096) and ``scan_method`` (see ssm_stack.py), ``state_size`` N per channel (64, even),
    ``init_method`` (``"lin"`` for S4D-Lin or ``"inv"`` for S4D-Inv; ``init`` is taken by flax), ``discretization`` (``"zoh"`` or
    ``"bilinear"``), ``dt_min``/``dt_max``.
    """

    state_size: int = 64
    init_method: str = "lin"
    discretization: str = "zoh"
    dt_min: float = 1e-3
    dt_max: float = 1e-1

    def check_options(self) -> None:
        super().check_options()
        check_method(self.discretization)
        if self.init_method not in INITS:
            raise ValueError(f"Unknown S4D init {self.init_method!r}; choose one of {', '.join(INITS)}.")
        if self.state_size < 2 or self.state_size % 2:
            raise ValueError(f"S4D keeps conjugate pairs, so state_size must be even and >= 2, got {self.state_size}.")

    def state_shape(self) -> tuple[int, ...]:
        return (self.features, self.state_size // 2)

    def make_ssm(self, name: str) -> S4DSSM:
        return S4DSSM(
            features=self.features,
            state_size=self.state_size,
            init_method=self.init_method,
            discretization=self.discretization,
            dt_min=self.dt_min,
            dt_max=self.dt_max,
            name=name,
        )
