"""Continuous-to-discrete maps for diagonal state matrices (Smith et al. 2023, Sec. 2.2 and App. A).

For ``dx/dt = Lambda x + B u`` with a diagonal ``Lambda`` and step ``Delta``:

* zero-order hold: ``Lambda_bar = exp(Lambda Delta)``,
  ``B_bar = (Lambda_bar - 1) / Lambda * B``;
* bilinear (Tustin): ``Lambda_bar = (1 + Delta/2 Lambda) / (1 - Delta/2 Lambda)``,
  ``B_bar = Delta / (1 - Delta/2 Lambda) * B``.

Both are returned as ``(Lambda_bar, gain)`` with ``B_bar = gain * B`` (gain
broadcast over the input axis), so each model multiplies its own ``B``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

METHODS = ("zoh", "bilinear")


def discretize(eigenvalues: jax.Array, step: jax.Array, method: str = "zoh") -> tuple[jax.Array, jax.Array]:
    """``(Lambda_bar, gain)`` for diagonal ``eigenvalues`` (complex) and time ``step`` (broadcastable)."""
    check_method(method)
    if method == "zoh":
        transition = jnp.exp(eigenvalues * step)
        return transition, (transition - 1.0) / eigenvalues
    inverse = 1.0 / (1.0 - step / 2.0 * eigenvalues)
    return inverse * (1.0 + step / 2.0 * eigenvalues), inverse * step


def check_method(method: str) -> None:
    """Raise the one-sentence error for an unknown discretization name."""
    if method not in METHODS:
        raise ValueError(f"Unknown discretization {method!r}; choose one of {', '.join(METHODS)}.")
