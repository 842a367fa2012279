"""S5: a multi-input multi-output diagonal state-space layer (Smith et al. 2023), resettable
for in-context RL (Lu et al. 2023).

One layer holds ``P`` complex states shared by all ``H`` channels::

    x_t = Lambda_bar x_{t-1} + B_bar u_t        (reset: x_{t-1} := 0)
    y_t = 2 Re(C~ x_t) + D u_t                  (conjugate symmetry; Re(C~ x_t) without)

``Lambda`` starts at the eigenvalues of the normal HiPPO-LegS matrix, tiled over
``blocks`` blocks; ``B~ = V^-1 B`` and ``C~ = C V`` with ``V`` the (block-diagonal)
eigenvectors. With conjugate symmetry only one eigenvalue of each conjugate
pair is kept, so the state has ``P/2`` entries and the readout doubles the
real part (Smith et al. 2023, Sec. 4.3 and App. B).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mnemax.backbones.discretization import check_method, discretize
from mnemax.backbones.registry import register
from mnemax.backbones.ssm_init import as_complex, as_pair, log_uniform, s5_eigensystem
from mnemax.backbones.ssm_stack import DiagonalSSM, DiscreteSystem, SSMStack


class S5SSM(DiagonalSSM):
    """One S5 layer on ``H = features`` channels with ``P = state_size`` states in ``blocks`` blocks.

    Parameters: ``lambda_re, lambda_im [P']``, ``B [P', H, 2]`` (B~), ``C [H, P', 2]``
    (C~), ``D [H]``, ``log_step [P']``, where ``P' = P/2`` under ``conj_sym``.
    """

    features: int
    state_size: int
    blocks: int = 1
    discretization: str = "zoh"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    conj_sym: bool = True
    clip_eigs: bool = False

    def system(self) -> DiscreteSystem:
        """Register the parameters and discretise: ``Lambda_bar [P']``, ``B_bar [P', H]``, ``C~ [H, P']``."""
        eigenvalues, vectors = s5_eigensystem(self.state_size, self.blocks, self.conj_sym)
        full, kept = vectors.shape
        inverse = vectors.conj().T  # V is unitary: V^-1 = V^H, [P', P]

        def init_b(key, shape):
            b = jax.nn.initializers.lecun_normal(in_axis=-1, out_axis=-2)(key, (full, self.features))
            return as_pair(inverse @ b.astype(jnp.complex64))

        def init_c(key, shape):
            c = jax.nn.initializers.truncated_normal(1.0 / np.sqrt(full))(key, (self.features, full, 2))
            return as_pair(as_complex(c) @ jnp.asarray(vectors, jnp.complex64))

        lambda_re = self.param("lambda_re", lambda key, shape: jnp.asarray(eigenvalues.real, jnp.float32), (kept,))
        lambda_im = self.param("lambda_im", lambda key, shape: jnp.asarray(eigenvalues.imag, jnp.float32), (kept,))
        b_tilde = as_complex(self.param("B", init_b, (kept, self.features, 2)))
        c_tilde = as_complex(self.param("C", init_c, (self.features, kept, 2)))
        d = self.param("D", nn.initializers.normal(1.0), (self.features,))
        log_step = self.param("log_step", log_uniform(self.dt_min, self.dt_max), (kept,))
        if self.clip_eigs:
            lambda_re = jnp.minimum(lambda_re, -1e-4)
        transition, gain = discretize(jax.lax.complex(lambda_re, lambda_im), jnp.exp(log_step), self.discretization)
        scale = 2.0 if self.conj_sym else 1.0  # y = 2 Re(C~ x) sums each kept state with its conjugate
        return DiscreteSystem(transition, gain[:, None] * b_tilde, scale * c_tilde, d)


@register("s5")
class S5(SSMStack):
    """Stacked resettable S5 layers (Lu et al. 2023): the in-context-RL backbone.

    Options: ``num_layers`` (4), ``chunk_size`` (4096) and ``scan_method`` (``"auto"``) (see
    ssm_stack.py), ``state_size`` P (default ``features``),
    ``blocks`` J (1; P must split into J blocks of even size under
    ``conj_sym``), ``discretization`` (``"zoh"`` or ``"bilinear"``),
    ``dt_min``/``dt_max`` (range of the log-uniform initial step), ``conj_sym``
    (True), ``clip_eigs`` (False; keeps ``Re Lambda <= -1e-4``).
    """

    state_size: int | None = None
    blocks: int = 1
    discretization: str = "zoh"
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    conj_sym: bool = True
    clip_eigs: bool = False

    @property
    def _state_size(self) -> int:
        return self.features if self.state_size is None else self.state_size

    def check_options(self) -> None:
        super().check_options()
        check_method(self.discretization)
        size, blocks = self._state_size, self.blocks
        if blocks < 1 or size % blocks:
            raise ValueError(f"state_size {size} must split into blocks={blocks} equal blocks; pick a divisor.")
        if self.conj_sym and (size // blocks) % 2:
            raise ValueError(
                f"With conj_sym each block needs an even size, but state_size {size} / blocks {blocks} "
                f"= {size // blocks}; change state_size or blocks, or set conj_sym=False."
            )

    def state_shape(self) -> tuple[int, ...]:
        return (self._state_size // 2 if self.conj_sym else self._state_size,)

    def make_ssm(self, name: str) -> S5SSM:
        return S5SSM(
            features=self.features,
            state_size=self._state_size,
            blocks=self.blocks,
            discretization=self.discretization,
            dt_min=self.dt_min,
            dt_max=self.dt_max,
            conj_sym=self.conj_sym,
            clip_eigs=self.clip_eigs,
            name=name,
        )
