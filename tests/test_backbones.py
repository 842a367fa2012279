"""Contract tests for every registered backbone, plus facts of the SSM initialisations.

The contract (backbones/__init__.py): one call over T steps equals T calls of
one step with the carry threaded through, for every reset pattern, and a reset
at step t makes the outputs from t on those of a fresh carry. Parametrised over
``mnemax.backbones.names()``, so a newly registered backbone is covered; a core
that declares input parts gets the random ``[T, B, D]`` inputs cut into them.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mnemax.backbones as backbones
from mnemax.backbones.lru import lru_eigenvalues
from mnemax.backbones.ssm_init import hippo_eigendecomposition, hippo_legs_normal, s4d_imaginary

FEATURES = 8
INPUT_DIM = 3
BATCH = 3  # fixed so that each sequence length compiles once per backbone
LENGTHS = (1, 2, 5, 12)
# Small settings per backbone; `num_layers` is set to 2 wherever it exists.
OVERRIDES = {
    "transformer": {"window": 4, "num_heads": 2},
    "s4d": {"state_size": 8},
    "mamba": {"state_size": 4},
    "mingru": {"expand": 1.0},
    "mlstm": {"num_heads": 2, "chunk_size": 4},
    "ffm": {"trace_size": 4, "context_size": 2},
    "deltanet": {"chunk_size": 4},
    "gated_deltanet": {"chunk_size": 4},
    "mom": {"memory_size": 4, "num_memories": 3, "chunk_size": 4},
    "titans": {"memory_size": 4, "hidden_size": 8, "chunk_size": 3},
    "dcem": {"capacity": 4, "key_size": 4, "top_k": 2},  # capacity 4 < the longest episodes: the ring wraps
}


def small_options(name: str) -> dict:
    fields = {f.name for f in dataclasses.fields(backbones.make(name, FEATURES))}
    options = {"num_layers": 2} if "num_layers" in fields else {}
    return options | OVERRIDES.get(name, {})


def small_module(name: str):
    """The backbone with its small options, and a function that turns ``[..., D]`` arrays into what it takes."""
    module = backbones.make(name, FEATURES, **small_options(name))
    parts = backbones.input_parts(module)
    return module, lambda x: backbones.split_parts(x, parts)


class Compiled:
    """A backbone with parameters and one jitted apply, shared by all examples of a test."""

    def __init__(self, name: str):
        self.module, self.feed = small_module(name)
        carry = self.module.initialize_carry(BATCH)
        x = self.feed(jnp.zeros((2, BATCH, INPUT_DIM)))
        self.params = jax.jit(self.module.init)(jax.random.key(0), carry, x, jnp.zeros((2, BATCH), bool))
        self.apply = jax.jit(self.module.apply)

    def run(self, carry, inputs, resets):
        """``inputs [T, B, D]``, cut into parts for a core that has them."""
        return self.apply(self.params, carry, self.feed(inputs), resets)

    def run_steps(self, carry, inputs, resets):
        """The same steps one call each, carry threaded; returns ``(carry, outputs [T, B, H])``."""
        outputs = []
        for t in range(inputs.shape[0]):
            carry, y = self.run(carry, inputs[t : t + 1], resets[t : t + 1])
            outputs.append(y)
        return carry, jnp.concatenate(outputs)


@pytest.fixture(scope="module", params=backbones.names())
def compiled(request) -> Compiled:
    return Compiled(request.param)


def assert_close(actual, expected, rtol=1e-4):
    """Relative error ``max |a - e| / max(|e|, 1)`` below ``rtol``, leaf by leaf."""
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        a, e = np.asarray(a), np.asarray(e)
        assert a.shape == e.shape
        scale = max(float(np.max(np.abs(e), initial=0.0)), 1.0)
        assert float(np.max(np.abs(a - e), initial=0.0)) <= rtol * scale


@st.composite
def episodes(draw):
    """Inputs ``[T, B, D]``, resets ``[T, B]`` and a carry-warming prefix, T from LENGTHS."""
    length = draw(st.sampled_from(LENGTHS))
    seed = draw(st.integers(0, 2**31 - 1))
    resets = np.array(draw(st.lists(st.booleans(), min_size=length * BATCH, max_size=length * BATCH)))
    keys = jax.random.split(jax.random.key(seed), 2)
    inputs = jax.random.normal(keys[0], (length, BATCH, INPUT_DIM))
    warmup = jax.random.normal(keys[1], (2, BATCH, INPUT_DIM))
    return inputs, jnp.asarray(resets.reshape(length, BATCH)), warmup


@settings(max_examples=8)
@given(data=episodes())
def test_sequence_equals_threaded_steps_and_resets_restart(compiled, data):
    inputs, resets, warmup = data
    # Start from a non-initial carry, so that resets have something to erase.
    carry, _ = compiled.run(compiled.module.initialize_carry(BATCH), warmup, jnp.zeros((2, BATCH), bool))

    seq_carry, seq_out = compiled.run(carry, inputs, resets)
    step_carry, step_out = compiled.run_steps(carry, inputs, resets)
    assert seq_out.shape == (inputs.shape[0], BATCH, FEATURES) and seq_out.dtype == jnp.float32
    assert_close(seq_out, step_out)
    assert_close(seq_carry, step_carry)

    # After a reset at t, batch entry b continues exactly as a fresh carry on the suffix.
    fresh_outputs = {}
    for t, b in zip(*np.nonzero(np.asarray(resets))):
        if (t, b) not in fresh_outputs and not any(k[1] == b for k in fresh_outputs):
            fresh_outputs[(t, b)] = None
    for t, b in fresh_outputs:
        fresh = compiled.module.initialize_carry(BATCH)
        _, suffix = compiled.run_steps(fresh, inputs[t:], resets[t:])
        assert_close(seq_out[t:, b], suffix[:, b])


def test_ten_thousand_steps_jit_vmap_grad(compiled):
    """Long sequences stay finite in value and gradient; jit, vmap and grad compose."""
    module, params = compiled.module, compiled.params
    length, copies = 10_000, 2
    key_x, key_r = jax.random.split(jax.random.key(1))
    inputs = compiled.feed(jax.random.normal(key_x, (copies, length, 1, INPUT_DIM)))
    resets = jax.random.bernoulli(key_r, 1e-3, (copies, length, 1))

    def loss(p, x, r):
        _, y = module.apply(p, module.initialize_carry(1), x, r)
        return jnp.mean(y**2), y

    per_copy = jax.vmap(jax.value_and_grad(loss, has_aux=True), in_axes=(None, 0, 0))
    (values, outputs), grads = jax.jit(per_copy)(params, inputs, resets)
    assert outputs.shape == (copies, length, 1, FEATURES)
    assert np.all(np.isfinite(np.asarray(outputs)))
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
    assert any(float(jnp.max(jnp.abs(g))) > 0 for g in leaves)


@pytest.mark.parametrize("name", backbones.names())
def test_bad_shapes_get_one_clear_error(name):
    module, feed = small_module(name)
    carry = module.initialize_carry(2)
    with pytest.raises(ValueError, match=r"\[T, B"):
        module.init(jax.random.key(0), carry, feed(jnp.zeros((2, INPUT_DIM))), jnp.zeros((2,), bool))
    with pytest.raises(ValueError, match="resets"):
        module.init(jax.random.key(0), carry, feed(jnp.zeros((4, 2, INPUT_DIM))), jnp.zeros((2, 4), bool))
    # A dict to a core without parts, an array to a core with parts: one sentence naming what it takes.
    parts = backbones.input_parts(module)
    wrong = jnp.zeros((4, 2, INPUT_DIM)) if parts else {"vision": jnp.zeros((4, 2, INPUT_DIM))}
    with pytest.raises(ValueError, match="takes a dict of parts" if parts else "takes one array"):
        module.init(jax.random.key(0), carry, wrong, jnp.zeros((4, 2), bool))
    if parts:
        with pytest.raises(ValueError, match=f"lack the part.*{parts[-1]!r}"):
            module.init(jax.random.key(0), carry, {parts[0]: jnp.zeros((4, 2, 2))}, jnp.zeros((4, 2), bool))


def test_unknown_name_and_option_are_named():
    with pytest.raises(ValueError) as error:
        backbones.make("nope", FEATURES)
    assert "'nope'" in str(error.value) and all(name in str(error.value) for name in backbones.names())
    with pytest.raises(ValueError, match="'bogus'"):
        backbones.make("s5", FEATURES, bogus=1)


@pytest.mark.parametrize(
    "name, options, message",
    [
        ("s5", {"state_size": 8, "blocks": 3}, "blocks"),
        ("s5", {"state_size": 6, "blocks": 2}, "even"),
        ("s5", {"discretization": "euler"}, "discretization"),
        ("s4d", {"init_method": "random"}, "init"),
        ("lru", {"r_min": 0.99, "r_max": 0.9}, "r_min"),
    ],
)
def test_inconsistent_options_are_explained(name, options, message):
    with pytest.raises(ValueError, match=message):
        backbones.make(name, FEATURES, **options).initialize_carry(1)


@pytest.mark.parametrize("size", [2, 8, 16])
def test_hippo_init_has_real_part_minus_half_and_conjugate_pairs(size):
    eigenvalues, vectors = hippo_eigendecomposition(size)
    np.testing.assert_allclose(eigenvalues.real, -0.5, atol=1e-12)
    # Before halving, the spectrum is closed under conjugation (pairs +-i w).
    np.testing.assert_allclose(np.sort(eigenvalues.imag), np.sort(-eigenvalues.imag), atol=1e-9)
    assert np.all(eigenvalues.imag[: size // 2] < 0)  # the kept half holds one of each pair
    # V diagonalises the normal HiPPO-LegS matrix.
    normal = hippo_legs_normal(size)
    np.testing.assert_allclose(normal @ vectors, vectors * eigenvalues, atol=1e-9)


def test_s5_blocks_tile_the_eigenvalues():
    module = backbones.make("s5", FEATURES, num_layers=1, state_size=8, blocks=2)
    carry = module.initialize_carry(1)
    assert carry[0].shape == (1, 4)
    params = module.init(jax.random.key(0), carry, jnp.zeros((1, 1, 2)), jnp.zeros((1, 1), bool))["params"]
    block, _ = hippo_eigendecomposition(4)
    expected = np.tile(block[:2], 2)
    np.testing.assert_allclose(params["ssm_0"]["lambda_im"], expected.imag, rtol=1e-6)
    np.testing.assert_allclose(params["ssm_0"]["lambda_re"], -0.5)


@pytest.mark.parametrize("init_method", ["lin", "inv"])
def test_s4d_init_imaginary_parts(init_method):
    size = 8
    module = backbones.make("s4d", FEATURES, num_layers=1, state_size=size, init_method=init_method)
    params = module.init(
        jax.random.key(0), module.initialize_carry(1), jnp.zeros((1, 1, 2)), jnp.zeros((1, 1), bool)
    )["params"]["ssm_0"]
    n = np.arange(size // 2)
    expected = np.pi * n if init_method == "lin" else size / np.pi * (size / (2 * n + 1) - 1)
    np.testing.assert_allclose(params["imag"], np.broadcast_to(expected, (FEATURES, size // 2)), rtol=1e-6)
    np.testing.assert_allclose(-np.exp(params["log_neg_re"]), -0.5, rtol=1e-6)
    np.testing.assert_allclose(s4d_imaginary(init_method, size // 2, size), expected)


def test_lru_ring_init_and_normalisation():
    module = backbones.make("lru", 64, num_layers=1, r_min=0.4, r_max=0.6, max_phase=np.pi / 4)
    params = module.init(
        jax.random.key(0), module.initialize_carry(1), jnp.zeros((1, 1, 2)), jnp.zeros((1, 1), bool)
    )["params"]["ssm_0"]
    eigenvalues = np.asarray(lru_eigenvalues(params["nu_log"], params["theta_log"], False))
    assert np.all((np.abs(eigenvalues) >= 0.4 - 1e-6) & (np.abs(eigenvalues) <= 0.6 + 1e-6))
    assert np.all((np.angle(eigenvalues) >= 0) & (np.angle(eigenvalues) <= np.pi / 4 + 1e-6))
    np.testing.assert_allclose(np.exp(params["gamma_log"]), np.sqrt(1 - np.abs(eigenvalues) ** 2), rtol=1e-5)


@pytest.mark.parametrize("negative", [False, True])
def test_lru_negative_eigenvalues_only_with_the_option(negative):
    """Real-valued LRU (max_phase=0): eigenvalues in (0, 1), or (-1, 1) with negative_eigenvalues."""
    nu_log = jnp.linspace(-8.0, 4.0, 200)
    eigenvalues = np.asarray(lru_eigenvalues(nu_log, None, negative))
    np.testing.assert_allclose(eigenvalues.imag, 0.0)
    if negative:
        assert eigenvalues.real.min() < -0.999
    else:
        assert eigenvalues.real.min() >= 0.0

    # Through the layer: an impulse decays with alternating sign only with the option.
    module = backbones.make("lru", 2, num_layers=1, state_size=1, max_phase=0.0, negative_eigenvalues=negative)
    carry = module.initialize_carry(1)
    inputs = jnp.zeros((6, 1, 1)).at[0].set(1.0)
    resets = jnp.zeros((6, 1), bool)
    params = module.init(jax.random.key(0), carry, inputs, resets)
    assert "theta_log" not in params["params"]["ssm_0"]
    params = jax.tree_util.tree_map_with_path(
        lambda path, p: jnp.full_like(p, 1.0) if "nu_log" in jax.tree_util.keystr(path) else p, params
    )  # exp(-e) ~ 0.066: lambda ~ 0.066, or ~ -0.87 with the option

    apply, states = jax.jit(module.apply), []
    for t in range(6):
        carry, _ = apply(params, carry, inputs[t : t + 1], resets[t : t + 1])
        states.append(complex(carry[0][0, 0]))
    signs = np.sign(np.real(states[1:]) / np.real(states[:-1]))
    assert np.all(signs < 0) if negative else np.all(signs > 0)


@pytest.mark.parametrize("name", ["s5", "s4d", "lru"])
def test_chunked_scan_equals_one_scan_in_value_and_gradient(name):
    """Sequences longer than chunk_size run in rematerialised chunks; results must not change."""
    whole = backbones.make(name, FEATURES, num_layers=1, chunk_size=64)
    chunked = backbones.make(name, FEATURES, num_layers=1, chunk_size=4)
    keys = jax.random.split(jax.random.key(3), 3)
    inputs = jax.random.normal(keys[0], (11, 2, INPUT_DIM))  # two chunks of 4, then 3 steps
    resets = jax.random.bernoulli(keys[1], 0.2, (11, 2))
    carry = whole.initialize_carry(2)
    params = whole.init(keys[2], carry, inputs, resets)

    def loss(module, p):
        final, y = module.apply(p, carry, inputs, resets)
        return jnp.sum(y**2) + sum(jnp.sum(jnp.abs(s) ** 2) for s in final), (final, y)

    (value_w, aux_w), grad_w = jax.jit(jax.value_and_grad(lambda p: loss(whole, p), has_aux=True))(params)
    (value_c, aux_c), grad_c = jax.jit(jax.value_and_grad(lambda p: loss(chunked, p), has_aux=True))(params)
    assert_close(aux_c, aux_w)
    assert_close(value_c, value_w)
    assert_close(grad_c, grad_w, rtol=1e-3)
