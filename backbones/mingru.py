"""minGRU: the minimal GRU of Feng et al. 2024 ("Were RNNs All We Needed?", Sec. 3.1), resettable.

The gates depend on the input only, so the recurrence is diagonal and linear::

    z_t  = sigmoid(W_z x_t)          update gate          [B, N]
    h~_t = W_h x_t                   candidate state      [B, N]
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t               (reset: h_{t-1} := 0)
    y_t  = W_o h_t                   back to ``features``

It runs as :func:`scan.selective_scan` with ``a_t = 1 - z_t`` and
``b_t = z_t h~_t``: an associative scan over time (``method="parallel"``) or a
``lax.scan`` (``"sequential"``); ``"auto"`` takes the sequential one on a CPU
and the associative one elsewhere, as S5 does (see scan.py for the timings).
``N = round(expand * features)``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mnemax.backbones.mixer_stack import MixerStack, diagonal_scan_method
from mnemax.backbones.registry import register
from mnemax.backbones.scan import selective_scan


class MinGRULayer(nn.Module):
    """One minGRU over ``x [T, B, H]`` with ``hidden`` states; state ``[B, hidden]``."""

    features: int
    hidden: int
    method: str = "auto"

    def initial_state(self, batch_size: int) -> jax.Array:
        return jnp.zeros((batch_size, self.hidden), jnp.float32)

    @nn.compact
    def __call__(self, state: jax.Array, x: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        update = nn.sigmoid(nn.Dense(self.hidden, name="update_gate")(x))  # [T, B, N]
        candidate = nn.Dense(self.hidden, name="candidate")(x)  # [T, B, N]
        state, states = selective_scan(1.0 - update, update * candidate, resets, state, diagonal_scan_method(self.method))
        return state, nn.Dense(self.features, name="output")(states)


@register("mingru")
class MinGRU(MixerStack):
    """Stacked resettable minGRU layers (see mixer_stack.py for the block).

    Options: ``num_layers`` (2), ``expand`` (1.5: states per layer over
    ``features``), ``method`` (``"auto"``, ``"sequential"``, ``"parallel"``).
    """

    expand: float = 1.5

    def check_options(self) -> None:
        super().check_options()
        if self.expand <= 0:
            raise ValueError(f"MinGRU needs expand > 0, got {self.expand}.")

    def make_mixer(self, **naming) -> MinGRULayer:
        hidden = max(1, round(self.expand * self.features))
        return MinGRULayer(features=self.features, hidden=hidden, method=self.method, **naming)
