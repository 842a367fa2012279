"""The fast paths PPO's SSM backbones take on CPU give what the parallel scan and complex products give.

``resettable_scan(method="auto")`` runs a sequential ``lax.scan`` on CPU, so the
backbone contract tests exercise that path here; this file holds the
associative scan to the same values and gradients, and the real-packed
``B_bar u`` and ``Re(C x)`` products of ``DiagonalSSM`` to the complex ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnemax.backbones.scan import resettable_scan, resolve_scan_method
from mnemax.backbones.ssm_stack import DiagonalSSM, DiscreteSystem

T, B, P, H = 9, 3, 4, 5


def scan_loss(method: str):
    def loss(transition, drive, resets, state):
        last, states = resettable_scan(transition, drive, resets, state, method)
        weights = jnp.arange(1, T + 1, dtype=jnp.float32)[:, None, None]
        return jnp.sum(jnp.abs(states) ** 2 * weights) + jnp.sum(jnp.abs(last)), (last, states)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 3), has_aux=True))


LOSSES = {method: scan_loss(method) for method in ("associative", "sequential")}


def complex_normal(key, shape, scale=1.0):
    re, im = jax.random.normal(key, (2, *shape)) * scale
    return jax.lax.complex(re, im)


@given(st.lists(st.booleans(), min_size=T * B, max_size=T * B), st.integers(0, 2**16))
def test_sequential_and_associative_scans_agree_in_value_and_gradient(flags, seed):
    keys = jax.random.split(jax.random.key(seed), 3)
    transition = complex_normal(keys[0], (P,), 0.5)
    drive = complex_normal(keys[1], (T, B, P))
    state = complex_normal(keys[2], (B, P))
    resets = jnp.asarray(flags).reshape(T, B)
    (value_a, (last_a, states_a)), grads_a = LOSSES["associative"](transition, drive, resets, state)
    (value_s, (last_s, states_s)), grads_s = LOSSES["sequential"](transition, drive, resets, state)
    np.testing.assert_allclose(np.asarray(states_s), np.asarray(states_a), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(last_s), np.asarray(last_a), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(value_s), float(value_a), rtol=1e-5)
    for g_s, g_a in zip(grads_s, grads_a):
        np.testing.assert_allclose(np.asarray(g_s), np.asarray(g_a), rtol=1e-4, atol=1e-4)


def test_auto_is_sequential_on_cpu_and_unknown_methods_are_named():
    assert resolve_scan_method("auto") == ("sequential" if jax.default_backend() == "cpu" else "associative")
    with pytest.raises(ValueError, match="choose one of auto, associative, sequential"):
        resolve_scan_method("parallel")


def test_real_packed_drive_and_readout_equal_the_complex_products():
    keys = jax.random.split(jax.random.key(0), 4)
    system = DiscreteSystem(
        transition=complex_normal(keys[0], (P,)),
        input_matrix=complex_normal(keys[1], (P, H)),
        output_matrix=complex_normal(keys[2], (H, P)),
        feedthrough=jnp.linspace(-1.0, 1.0, H),
    )
    u = jax.random.normal(keys[3], (T, B, H))
    states = complex_normal(keys[3], (T, B, P))
    b, c = np.asarray(system.input_matrix, np.complex128), np.asarray(system.output_matrix, np.complex128)
    expected_drive = np.einsum("tbh,ph->tbp", np.asarray(u, np.float64), b)
    expected_out = np.einsum("tbp,hp->tbh", np.asarray(states, np.complex128), c).real + np.asarray(
        system.feedthrough
    ) * np.asarray(u)
    drive, readout = jax.jit(DiagonalSSM.drive)(system, u), jax.jit(DiagonalSSM.readout)(system, states, u)
    np.testing.assert_allclose(np.asarray(drive), expected_drive, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(readout), expected_out, rtol=1e-4, atol=1e-4)
