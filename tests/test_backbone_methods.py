"""The sequence methods of mamba, mingru, mlstm and ffm agree, and their specific options behave.

``method="sequential"`` (a ``lax.scan`` over time) and ``method="parallel"``
(associative scan, or mLSTM's chunkwise form) compute the same recurrence, so
for any reset pattern they must give the same outputs, final carry and
parameter gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mnemax.backbones as backbones
from mnemax.backbones.short_conv import episode_causal_conv

FEATURES, INPUT_DIM, BATCH, LENGTH = 8, 3, 2, 11
SMALL = {
    "mamba": {"state_size": 4, "num_layers": 2},
    "mingru": {"expand": 1.0, "num_layers": 2},
    "mlstm": {"num_heads": 2, "chunk_size": 4, "num_layers": 2},  # 11 steps: two chunks of 4, then 3
    "ffm": {"trace_size": 4, "context_size": 2, "num_layers": 2},
}


class MethodPair:
    """Both methods of one backbone, with shared parameters and a jitted loss-and-gradient each."""

    def __init__(self, name: str):
        self.modules = {m: backbones.make(name, FEATURES, method=m, **SMALL[name]) for m in ("sequential", "parallel")}
        module = self.modules["sequential"]
        self.carry = module.initialize_carry(BATCH)
        x = jnp.zeros((LENGTH, BATCH, INPUT_DIM))
        self.params = jax.jit(module.init)(jax.random.key(0), self.carry, x, jnp.zeros((LENGTH, BATCH), bool))
        self.apply = jax.jit(module.apply)
        self.loss = {m: jax.jit(jax.value_and_grad(self._loss(mod), has_aux=True)) for m, mod in self.modules.items()}

    @staticmethod
    def _loss(module):
        def loss(params, carry, inputs, resets):
            final, y = module.apply(params, carry, inputs, resets)
            leaves = jax.tree.leaves(final)
            return jnp.sum(y**2) + sum(jnp.sum(jnp.abs(s) ** 2) for s in leaves), (final, y)

        return loss


@pytest.fixture(scope="module", params=sorted(SMALL))
def pair(request) -> MethodPair:
    return MethodPair(request.param)


def assert_close(actual, expected, rtol):
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        a, e = np.asarray(a), np.asarray(e)
        scale = max(float(np.max(np.abs(e), initial=0.0)), 1.0)
        assert float(np.max(np.abs(a - e), initial=0.0)) <= rtol * scale


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), resets=st.lists(st.booleans(), min_size=LENGTH * BATCH, max_size=LENGTH * BATCH))
def test_sequential_and_parallel_agree_in_value_and_gradient(pair, seed, resets):
    keys = jax.random.split(jax.random.key(seed), 2)
    inputs = jax.random.normal(keys[0], (LENGTH, BATCH, INPUT_DIM))
    resets = jnp.asarray(np.array(resets).reshape(LENGTH, BATCH))
    # A non-initial carry, so the parallel form must fold it in.
    warm, _ = pair.apply(pair.params, pair.carry, jax.random.normal(keys[1], (3, BATCH, INPUT_DIM)), jnp.zeros((3, BATCH), bool))
    (value_s, aux_s), grad_s = pair.loss["sequential"](pair.params, warm, inputs, resets)
    (value_p, aux_p), grad_p = pair.loss["parallel"](pair.params, warm, inputs, resets)
    assert_close(aux_p, aux_s, 1e-4)
    assert_close(value_p, value_s, 1e-4)
    assert_close(grad_p, grad_s, 1e-3)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_unknown_method_is_one_sentence(name):
    with pytest.raises(ValueError, match="method 'fast'.*auto, sequential, parallel"):
        backbones.make(name, FEATURES, method="fast").initialize_carry(1)


def test_causal_conv_window_stops_at_a_reset():
    """Each output sums only the taps of its own episode; the carried window is cleared by a reset."""
    history = jnp.full((1, 2, 1), 100.0)  # [B, K - 1, E], two earlier inputs
    u = jnp.arange(1.0, 6.0).reshape(5, 1, 1)  # [T, B, E]: 1, 2, 3, 4, 5
    resets = jnp.array([False, False, True, False, False])[:, None]
    kernel = jnp.ones((3, 1))  # K = 3, plain window sums
    outputs, new_history = episode_causal_conv(history, u, resets, kernel)
    # steps 0, 1 continue the carried episode; step 2 starts a new one
    np.testing.assert_allclose(outputs[:, 0, 0], [201.0, 103.0, 3.0, 7.0, 12.0])
    np.testing.assert_allclose(new_history[0, :, 0], [4.0, 5.0])
    _, cleared = episode_causal_conv(history, u[:1], jnp.array([[True]]), kernel)
    np.testing.assert_allclose(cleared[0, :, 0], [0.0, 1.0])


@pytest.mark.parametrize("negative", [False, True])
def test_mamba_negative_eigenvalues_flip_the_state_sign(negative):
    """With ``A`` very negative the transition is ~0, or ~-1 under the option: an impulse then alternates in sign."""
    module = backbones.make("mamba", 4, num_layers=1, state_size=2, conv_size=1, negative_eigenvalues=negative)
    carry = module.initialize_carry(1)
    inputs = jnp.zeros((6, 1, 1)).at[0].set(1.0)
    resets = jnp.zeros((6, 1), bool)
    params = module.init(jax.random.key(0), carry, inputs, resets)
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: jnp.full_like(p, 10.0) if "A_log" in jax.tree_util.keystr(path) else p, params
    )  # A = -e^10: exp(Delta A) < 1e-9 for the initial steps Delta >= 1e-3
    apply, states = jax.jit(module.apply), []
    for t in range(6):
        carry, _ = apply(params, carry, inputs[t : t + 1], resets[t : t + 1])
        states.append(np.asarray(carry[0].ssm[0]))
    states = np.stack(states)  # [T, E, N]; zero input after step 0 (silu(0) = 0), so only the transition acts
    ratio = states[1:] / np.where(states[:-1] == 0, 1.0, states[:-1])
    moving = np.abs(states[:-1]) > 1e-12
    assert moving.any()
    if negative:
        assert np.all(ratio[moving] < 0) and np.all(ratio[moving] >= -1)  # 2 exp(Delta A) - 1 rounds to -1 here
    else:
        assert np.all(ratio[moving] >= 0) and np.all(ratio[moving] < 1)


def test_mlstm_stabiliser_keeps_large_input_gates_finite():
    """Input-gate pre-activations of 200 overflow exp() in float32; the stabilised form stays finite."""
    module = backbones.make("mlstm", FEATURES, num_layers=1, num_heads=2, chunk_size=4)
    carry = module.initialize_carry(1)
    inputs = jax.random.normal(jax.random.key(0), (9, 1, INPUT_DIM))
    resets = jnp.zeros((9, 1), bool)
    params = module.init(jax.random.key(1), carry, inputs, resets)
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: jnp.full_like(p, 200.0) if "input_gate" in jax.tree_util.keystr(path) and "bias" in jax.tree_util.keystr(path) else p,
        params,
    )
    for method in ("sequential", "parallel"):
        final, outputs = backbones.make("mlstm", FEATURES, num_layers=1, num_heads=2, chunk_size=4, method=method).apply(
            params, carry, inputs, resets
        )
        assert np.all(np.isfinite(np.asarray(outputs)))
        assert np.all(np.isfinite(np.asarray(final[0].core.memory)))
        np.testing.assert_array_less(190.0, np.asarray(final[0].core.stabilizer))  # m_t tracks the huge gate
