"""The S5 layer against an independent float64 recurrence in numpy.

The reference reads the layer's continuous parameters (Lambda, B~, C~, D,
log-step), discretises them itself, and runs the recurrence one step at a
time with resets (Smith et al. 2023, Eqs. 2-4). The layer runs in float32
(its associative scan); the test requires a relative error
``max |y - y_ref| / max |y_ref|`` below 1e-5.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnemax.backbones.s5 import S5SSM


def reference_outputs(params, state, inputs, resets, method: str, conj_sym: bool) -> np.ndarray:
    """``y [T, B, H]`` by the sequential float64 recurrence ``x_t = Lambda_bar x_{t-1} + B_bar u_t``."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    eigenvalues = p["lambda_re"] + 1j * p["lambda_im"]
    b_tilde = p["B"][..., 0] + 1j * p["B"][..., 1]
    c_tilde = p["C"][..., 0] + 1j * p["C"][..., 1]
    step = np.exp(p["log_step"])
    if method == "zoh":
        transition = np.exp(eigenvalues * step)
        b_bar = ((transition - 1) / eigenvalues)[:, None] * b_tilde
    else:
        transition = (1 + step / 2 * eigenvalues) / (1 - step / 2 * eigenvalues)
        b_bar = (step / (1 - step / 2 * eigenvalues))[:, None] * b_tilde
    x = np.asarray(state, np.complex128)
    u_all = np.asarray(inputs, np.float64)
    outputs = []
    for t in range(u_all.shape[0]):
        x = np.where(np.asarray(resets[t])[:, None], 0.0, transition * x) + u_all[t] @ b_bar.T
        readout = (x @ c_tilde.T).real
        outputs.append((2.0 * readout if conj_sym else readout) + p["D"] * u_all[t])
    return np.stack(outputs)


@pytest.mark.parametrize(
    "state_size, blocks, method, conj_sym",
    [(8, 1, "zoh", True), (16, 2, "zoh", True), (16, 4, "bilinear", True), (12, 3, "zoh", False)],
)
def test_s5_layer_matches_float64_recurrence(state_size, blocks, method, conj_sym):
    features, length, batch = 6, 24, 3
    layer = S5SSM(features=features, state_size=state_size, blocks=blocks, discretization=method, conj_sym=conj_sym)
    kept = state_size // 2 if conj_sym else state_size
    keys = jax.random.split(jax.random.key(7), 5)
    inputs = jax.random.normal(keys[0], (length, batch, features))
    resets = jax.random.bernoulli(keys[1], 0.15, (length, batch))
    state = jax.lax.complex(*jax.random.normal(keys[2], (2, batch, kept)))
    params = layer.init(keys[3], state, inputs, resets)["params"]
    # Larger steps than the init range so that the state really carries information across steps.
    params["log_step"] = jax.random.uniform(keys[4], (kept,), minval=np.log(0.05), maxval=np.log(0.5))

    apply = jax.jit(layer.apply)
    final, outputs = apply({"params": params}, state, inputs, resets)
    expected = reference_outputs(params, state, inputs, resets, method, conj_sym)
    assert np.asarray(resets).any()
    error = np.max(np.abs(np.asarray(outputs, np.float64) - expected)) / np.max(np.abs(expected))
    assert error < 1e-5, error
    # The initial state matters where no reset came first, so it was really threaded in.
    _, from_zero = apply({"params": params}, jnp.zeros_like(state), inputs, resets)
    assert np.max(np.abs(np.asarray(from_zero) - np.asarray(outputs))) > 1e-3
    assert final.shape == (batch, kept) and final.dtype == jnp.complex64
