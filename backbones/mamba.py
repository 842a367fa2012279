"""Mamba: the selective state-space layer S6 (Gu & Dao 2023, "Mamba: Linear-Time Sequence
Modeling with Selective State Spaces", Alg. 2 and Sec. 3.4), resettable.

One layer on ``features = H`` channels, ``E = expand * H`` inner channels and
``N`` states per inner channel::

    u, g   = split(W_in x_t)                              [B, E] each
    u      = silu(causal depthwise conv_K(u))             window of K steps
    Delta_t = softplus(W_dt (W_low u_t) + b_dt)            [B, E]  input-dependent step
    B_t, C_t = W_B u_t, W_C u_t                            [B, N]  input-dependent maps
    a_t    = exp(Delta_t A)                                [B, E, N], A = -exp(A_log) < 0
    h_t    = a_t * h_{t-1} + Delta_t B_t u_t               (reset: h_{t-1} := 0)
    y_t    = W_out((C_t . h_t + D u_t) * silu(g_t))

The convolution never reaches across a reset: its last ``K - 1`` inputs live in
the carry, a tap is used only when it belongs to the current episode, and the
carried window is zeroed where it does not. ``A`` starts at ``-(1, ..., N)``
(S4D-real) and ``b_dt`` so that ``Delta`` starts log-uniform on
``[dt_min, dt_max]``.

``negative_eigenvalues=True`` maps the transition ``a_t in (0, 1)`` to
``2 a_t - 1 in (-1, 1)``, the change Grazzi et al. 2024 ("Unlocking
State-Tracking in Linear RNNs Through Negative Eigenvalues") make to Mamba so a
diagonal recurrence can flip sign and track parity.

The recurrence runs as :func:`scan.selective_scan`: associative for
``method="parallel"``, ``lax.scan`` for ``"sequential"``, and ``"auto"``
picks by backend as S5 does.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.mixer_stack import MixerStack, diagonal_scan_method
from mnemax.backbones.registry import register
from mnemax.backbones.scan import selective_scan
from mnemax.backbones.short_conv import episode_causal_conv


class MambaState(NamedTuple):
    """One layer's carry: SSM states ``[B, E, N]`` and the convolution's last inputs ``[B, K - 1, E]``."""

    ssm: jax.Array
    conv: jax.Array


class MambaLayer(nn.Module):
    """One S6 block on ``x [T, B, H]``; see the module docstring."""

    features: int
    inner: int
    state_size: int
    conv_size: int
    dt_rank: int
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    negative_eigenvalues: bool = False
    method: str = "auto"

    def initial_state(self, batch_size: int) -> MambaState:
        return MambaState(
            ssm=jnp.zeros((batch_size, self.inner, self.state_size), jnp.float32),
            conv=jnp.zeros((batch_size, self.conv_size - 1, self.inner), jnp.float32),
        )

    @nn.compact
    def __call__(self, state: MambaState, x: jax.Array, resets: jax.Array) -> tuple[MambaState, jax.Array]:
        u, gate = jnp.split(nn.Dense(2 * self.inner, use_bias=False, name="in_projection")(x), 2, axis=-1)
        kernel = self.param("conv_kernel", nn.initializers.lecun_normal(in_axis=0, out_axis=1), (self.conv_size, self.inner))
        conv_bias = self.param("conv_bias", nn.initializers.zeros, (self.inner,))
        u, history = episode_causal_conv(state.conv, u, resets, kernel)
        u = nn.silu(u + conv_bias)  # [T, B, E]

        low, b, c = jnp.split(
            nn.Dense(self.dt_rank + 2 * self.state_size, use_bias=False, name="x_projection")(u),
            [self.dt_rank, self.dt_rank + self.state_size],
            axis=-1,
        )

        def init_dt_bias(key, shape, dtype=jnp.float32):
            dt = jnp.exp(jax.random.uniform(key, shape, minval=math.log(self.dt_min), maxval=math.log(self.dt_max)))
            return dt + jnp.log(-jnp.expm1(-dt))  # softplus^-1(dt)

        delta = nn.softplus(nn.Dense(self.inner, bias_init=init_dt_bias, name="dt_projection")(low))  # [T, B, E]
        a_log = self.param(
            "A_log",
            lambda key, shape: jnp.log(jnp.broadcast_to(jnp.arange(1, shape[1] + 1, dtype=jnp.float32), shape)),
            (self.inner, self.state_size),
        )
        transition = jnp.exp(delta[..., None] * -jnp.exp(a_log))  # [T, B, E, N], in (0, 1)
        if self.negative_eigenvalues:
            transition = 2.0 * transition - 1.0
        drive = (delta * u)[..., None] * b[..., None, :]  # [T, B, E, N]
        ssm, states = selective_scan(transition, drive, resets, state.ssm, diagonal_scan_method(self.method))
        d = self.param("D", nn.initializers.ones, (self.inner,))
        y = jnp.einsum("tben,tbn->tbe", states, c) + d * u
        y = y * nn.silu(gate)
        return MambaState(ssm, history), nn.Dense(self.features, use_bias=False, name="out_projection")(y)


@register("mamba")
class Mamba(MixerStack):
    """Stacked resettable Mamba (S6) layers (see mixer_stack.py for the residual block).

    Options: ``num_layers`` (2), ``expand`` (1; inner channels ``E = expand *
    features``), ``state_size`` N (16), ``conv_size`` K (4), ``dt_rank``
    (default ``ceil(features / 16)``), ``dt_min``/``dt_max`` (1e-3/1e-1),
    ``negative_eigenvalues`` (False), ``method`` (``"auto"``, ``"sequential"``,
    ``"parallel"``).
    """

    expand: int = 1
    state_size: int = 16
    conv_size: int = 4
    dt_rank: int | None = None
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    negative_eigenvalues: bool = False

    def check_options(self) -> None:
        super().check_options()
        if min(self.expand, self.state_size, self.conv_size) < 1 or (self.dt_rank is not None and self.dt_rank < 1):
            raise ValueError(
                "Mamba needs expand, state_size, conv_size and dt_rank >= 1; got "
                f"{self.expand}, {self.state_size}, {self.conv_size}, {self.dt_rank}."
            )
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"Mamba needs 0 < dt_min <= dt_max, got {self.dt_min}, {self.dt_max}.")

    def make_mixer(self, **naming) -> MambaLayer:
        return MambaLayer(
            features=self.features,
            inner=self.expand * self.features,
            state_size=self.state_size,
            conv_size=self.conv_size,
            dt_rank=self.dt_rank or math.ceil(self.features / 16),
            dt_min=self.dt_min,
            dt_max=self.dt_max,
            negative_eigenvalues=self.negative_eigenvalues,
            method=self.method,
            **naming,
        )
