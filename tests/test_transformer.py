"""The sliding-window transformer backbone: chunking, resets, window, long sequences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnemax.backbones.registry import make
from mnemax.backbones.transformer import KVCache, Transformer, rotary_embedding

FEATURES, HEADS, WINDOW, BLOCK, INPUT_DIM = 16, 2, 4, 4, 3
RTOL, ATOL = 1e-4, 1e-5


class Backbone:
    """A small transformer, its parameters and its jitted apply, built once per module."""

    def __init__(self, **options):
        self.module = Transformer(FEATURES, num_heads=HEADS, window=WINDOW, query_block=BLOCK, **options)
        carry = self.module.initialize_carry(1)
        self.params = jax.jit(self.module.init)(
            jax.random.key(0), carry, jnp.zeros((1, 1, INPUT_DIM)), jnp.zeros((1, 1), bool)
        )
        self.apply = jax.jit(self.module.apply)

    def __call__(self, carry, inputs, resets):
        return self.apply(self.params, carry, jnp.asarray(inputs), jnp.asarray(resets))

    def threaded(self, carry, inputs, resets, chunks=(1,)):
        """The same steps fed in chunks of the given lengths, cycled (single steps by default)."""
        outputs, start, index = [], 0, 0
        while start < inputs.shape[0]:
            stop = start + chunks[index % len(chunks)]
            carry, out = self(carry, inputs[start:stop], resets[start:stop])
            outputs.append(out)
            start, index = stop, index + 1
        return carry, jnp.concatenate(outputs)


@pytest.fixture(scope="module", params=[False, True], ids=["residual", "gated"])
def backbone(request):
    return Backbone(gating=request.param)


def random_sequence(seed, steps, batch, reset_rate):
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(steps, batch, INPUT_DIM)).astype(np.float32)
    resets = rng.random((steps, batch)) < reset_rate
    return inputs, resets


def warm_carry(backbone, seed, batch):
    """A carry after a few steps (with a possible reset), so the cache is partly valid."""
    inputs, resets = random_sequence(seed + 1, WINDOW + 1, batch, 0.2)
    return backbone(backbone.module.initialize_carry(batch), inputs, resets)[0]


def assert_trees_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL, atol=ATOL)


sequences = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**31 - 1),
        # Shapes are few on purpose (each new one compiles): one step, one block,
        # several blocks with padding, several whole blocks.
        "steps": st.sampled_from([1, BLOCK - 1, BLOCK + 1, 3 * BLOCK]),
        "batch": st.sampled_from([1, 3]),
        "reset_rate": st.sampled_from([0.0, 0.15, 0.5]),
        "warm": st.booleans(),
    }
)


@given(case=sequences, chunks=st.lists(st.sampled_from([1, BLOCK - 1, BLOCK + 1]), min_size=1, max_size=3))
def test_one_call_equals_threaded_steps_and_chunks(backbone, case, chunks):
    inputs, resets = random_sequence(case["seed"], case["steps"], case["batch"], case["reset_rate"])
    batch = case["batch"]
    start = warm_carry(backbone, case["seed"], batch) if case["warm"] else backbone.module.initialize_carry(batch)
    whole = backbone(start, inputs, resets)
    assert whole[1].shape == (case["steps"], case["batch"], FEATURES) and whole[1].dtype == jnp.float32
    assert_trees_close(whole, backbone.threaded(start, inputs, resets))
    assert_trees_close(whole, backbone.threaded(start, inputs, resets, chunks))


@pytest.mark.parametrize("steps", [BLOCK + 1, 3 * BLOCK])
def test_query_blocks_do_not_change_results(backbone, steps):
    inputs, resets = random_sequence(steps, steps, 3, 0.15)
    start = warm_carry(backbone, steps, 3)
    unblocked = backbone.module.clone(query_block=1000)
    expected = jax.jit(unblocked.apply)(backbone.params, start, inputs, resets)
    assert_trees_close(backbone(start, inputs, resets), expected)


@given(case=sequences, reset_fraction=st.floats(0.0, 0.99), seed=st.integers(0, 2**31 - 1))
def test_nothing_before_a_reset_is_visible_after_it(backbone, case, reset_fraction, seed):
    batch, steps = case["batch"], case["steps"]
    reset_at = int(reset_fraction * steps)
    inputs, resets = random_sequence(case["seed"], steps, batch, case["reset_rate"])
    resets[reset_at, 0] = True  # element 0 resets at reset_at; others follow their random pattern
    outputs = backbone(warm_carry(backbone, case["seed"], batch), inputs, resets)[1]

    # Another history before the reset (inputs and starting carry) changes nothing from it on.
    other = inputs.copy()
    other[:reset_at] = np.random.default_rng(seed).normal(size=other[:reset_at].shape)
    other_outputs = backbone(warm_carry(backbone, seed, batch), other, resets)[1]
    np.testing.assert_allclose(other_outputs[reset_at:, 0], outputs[reset_at:, 0], rtol=RTOL, atol=ATOL)

    # And it equals a fresh carry started on the suffix.
    fresh_carry = backbone.module.initialize_carry(batch)
    fresh = backbone.threaded(fresh_carry, inputs[reset_at:], resets[reset_at:])[1]
    np.testing.assert_allclose(fresh[:, 0], outputs[reset_at:, 0], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("num_layers", [1, 2])
def test_influence_reaches_exactly_num_layers_times_window_steps(num_layers):
    backbone = Backbone(num_layers=num_layers)
    reach = num_layers * WINDOW
    steps, moved = reach + 6, 2
    inputs, resets = random_sequence(7, steps, 2, 0.0)
    outputs = backbone(backbone.module.initialize_carry(2), inputs, resets)[1]
    perturbed = inputs.copy()
    perturbed[moved] += 1.0
    perturbed_outputs = backbone(backbone.module.initialize_carry(2), perturbed, resets)[1]
    changed = np.abs(perturbed_outputs - outputs).max(axis=(1, 2))  # [T]
    assert np.all(changed[:moved] == 0.0)
    assert np.all(changed[moved : moved + reach + 1] > 1e-4), changed
    np.testing.assert_allclose(changed[moved + reach + 1 :], 0.0, atol=1e-6)


def test_ten_thousand_steps_jit_grad_vmap():
    module = Transformer(FEATURES, num_heads=HEADS, window=8, query_block=32, gating=True)
    steps, batch = 10_000, 2
    inputs, resets = map(jnp.asarray, random_sequence(3, steps, batch, 0.002))
    carry = module.initialize_carry(batch)

    # vmap over parameter seeds: each member equals its own unbatched call.
    short = inputs[:16], resets[:16]
    seeds = jax.random.split(jax.random.key(2), 3)
    stacked = jax.jit(jax.vmap(lambda k: module.init(k, carry, *short)))(seeds)
    batched = jax.jit(jax.vmap(lambda p: module.apply(p, carry, *short)[1]))(stacked)
    params = jax.tree.map(lambda leaf: leaf[1], stacked)
    single = jax.jit(module.apply)(params, carry, *short)[1]
    np.testing.assert_allclose(batched[1], single, rtol=RTOL, atol=ATOL)

    @jax.jit
    def loss_and_grads(params, inputs, resets):
        def loss(params, inputs):
            new_carry, outputs = module.apply(params, carry, inputs, resets)
            return jnp.mean(outputs**2) + jnp.mean(new_carry.keys**2), outputs

        return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, inputs)

    (value, outputs), (param_grads, input_grads) = loss_and_grads(params, inputs, resets)
    assert outputs.shape == (steps, batch, FEATURES)
    assert np.isfinite(value) and np.all(np.isfinite(outputs))
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves((param_grads, input_grads)))
    # The first step still matters to the loss through the early outputs.
    assert np.abs(input_grads[0]).max() > 0.0


@given(base=st.integers(0, 1000), seed=st.integers(0, 2**31 - 1))
def test_rotary_scores_depend_only_on_the_position_difference(base, seed):
    q, k = np.random.default_rng(seed).normal(size=(2, 6, 2, 8)).astype(np.float32)
    positions = jnp.arange(6)

    def scores(query_offset, key_offset):
        rotated_q = rotary_embedding(q, positions + query_offset)
        return jnp.einsum("qhd,khd->hqk", rotated_q, rotary_embedding(k, positions + key_offset))

    np.testing.assert_allclose(scores(base + 3, base), scores(3, 0), rtol=1e-3, atol=1e-3)
    # A rotation, not a no-op: another difference gives other scores.
    assert np.abs(scores(3, 0) - scores(4, 0)).max() > 1e-2


def test_carry_is_built_without_parameters_and_is_batch_major():
    module = make("transformer", 32, num_layers=3, num_heads=4, window=5)
    carry = module.initialize_carry(7)  # unbound module
    assert isinstance(carry, KVCache)
    assert carry.keys.shape == carry.values.shape == (7, 3, 4, 6, 8)  # [B, L, heads, W + 1, d]
    assert carry.valid.shape == (7, 6)
    assert carry.oldest.shape == carry.position.shape == (7,)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(carry))
    assert not np.any(carry.valid)


def test_bad_options_and_shapes_name_the_problem():
    with pytest.raises(ValueError, match="even width"):
        Transformer(12, num_heads=4).initialize_carry(1)
    with pytest.raises(ValueError, match="window"):
        Transformer(16, window=0).initialize_carry(1)
    module = Transformer(FEATURES, num_heads=HEADS, window=WINDOW)
    carry = module.initialize_carry(2)
    with pytest.raises(ValueError, match=r"\[T, B, D\]"):
        module.init(jax.random.key(0), carry, jnp.zeros((3, INPUT_DIM)), jnp.zeros((3, 2), bool))
    with pytest.raises(ValueError, match="resets"):
        module.init(jax.random.key(0), carry, jnp.zeros((3, 2, INPUT_DIM)), jnp.zeros((3,), bool))
    with pytest.raises(ValueError, match="initialize_carry"):
        wrong_batch = module.initialize_carry(5)
        module.init(jax.random.key(0), wrong_batch, jnp.zeros((3, 2, INPUT_DIM)), jnp.zeros((3, 2)))
