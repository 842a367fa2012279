"""The dual-coding episodic memory (``dcem``) against what it promises.

The shared contract (sequence == threaded steps, resets, T = 10,000) is in
test_backbones.py. Here: ``read_memory`` alone (a stored key finds its value,
top-k weights, unwritten slots), and through the module: a reset empties the
memory, the ring overwrites the oldest slot, gradients reach both parts, and
the single-column baseline reads whole slots where dcem reads one modality.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mnemax.backbones as backbones
from mnemax.backbones.dcem import read_memory

FEATURES, BATCH, DV, DL = 8, 2, 3, 2
SMALL = {"capacity": 4, "key_size": 4, "top_k": 2, "num_heads": 2}


def episode(key, length: int) -> dict:
    kv, kl = jax.random.split(key)
    return {"vision": jax.random.normal(kv, (length, BATCH, DV)), "language": jax.random.normal(kl, (length, BATCH, DL))}


def build(**options):
    module = backbones.make("dcem", FEATURES, **(SMALL | options))
    carry = module.initialize_carry(BATCH)
    params = jax.jit(module.init)(jax.random.key(0), carry, episode(jax.random.key(1), 1), jnp.zeros((1, BATCH), bool))
    return module, carry, params


def run_with_reads(module, params, carry, inputs, resets):
    """``(carry, outputs [T, B, F], reads [T, B, R])``: the reads the module sows."""
    (carry, outputs), state = jax.jit(partial(module.apply, mutable=["intermediates"]))(params, carry, inputs, resets)
    return carry, outputs, state["intermediates"]["step"]["reads"][0]


def codes(params, inputs):
    """The projections the memory stores: ``(vision [T, B, K], language [T, B, K])``."""
    p = params["params"]
    project = lambda x, layer: x @ p[layer]["kernel"] + p[layer]["bias"]  # noqa: E731
    return project(inputs["vision"], "vision_projection"), project(inputs["language"], "language_projection")


# --------------------------------------------------------------------------- read_memory alone


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), slot=st.integers(0, 5))
def test_a_query_equal_to_a_stored_key_returns_that_slots_value(seed, slot):
    k1, k2 = jax.random.split(jax.random.key(seed))
    keys = jnp.linalg.qr(jax.random.normal(k1, (16, 6)))[0].T[None]  # [1, M=6, K=16], orthonormal rows
    values = jax.random.normal(k2, (1, 6, 5))
    read = read_memory(keys, values, jnp.ones((1, 6), bool), keys[:, None, slot], top_k=3, scale=50.0)
    np.testing.assert_allclose(read[0, 0], values[0, slot], atol=1e-5)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**31 - 1), top_k=st.integers(1, 8), filled=st.integers(0, 6))
def test_weights_are_a_softmax_over_the_top_k_valid_slots_only(seed, top_k, filled):
    """With values = identity the read is the weight vector over slots; unwritten slots score highest here."""
    m, k = 6, 4
    keys_key, query_key = jax.random.split(jax.random.key(seed))
    keys = jax.random.normal(keys_key, (1, m, k))
    queries = jax.random.normal(query_key, (1, 3, k))
    valid = jnp.arange(m)[None] < filled
    keys = jnp.where(valid[..., None], keys, 100.0 * queries[:, :1])  # unwritten slots: the best match of head 0
    weights = np.asarray(read_memory(keys, jnp.eye(m)[None], valid, queries, top_k))[0]  # [H, M]
    scores = np.asarray(jnp.einsum("hk,mk->hm", queries[0], keys[0])) / np.sqrt(k)
    for h in range(3):
        kept = [j for j in np.argsort(-scores[h], kind="stable") if j < filled][:top_k]
        expected = np.zeros(m)
        if kept:
            expected[kept] = np.exp(scores[h, kept] - scores[h, kept].max())
            expected /= expected.sum()
        np.testing.assert_allclose(weights[h], expected, atol=1e-6)
        assert np.all(weights[h, filled:] == 0.0) and np.count_nonzero(weights[h]) <= top_k


def test_top_one_returns_exactly_the_best_slots_value():
    keys = jax.random.normal(jax.random.key(3), (2, 7, 4))
    values = jax.random.normal(jax.random.key(4), (2, 7, 3))
    queries = jax.random.normal(jax.random.key(5), (2, 2, 4))
    read = read_memory(keys, values, jnp.ones((2, 7), bool), queries, top_k=1)
    best = np.argmax(np.einsum("bhk,bmk->bhm", queries, keys), axis=-1)
    np.testing.assert_array_equal(read, np.take_along_axis(np.asarray(values), best[..., None], axis=1))


def test_an_empty_memory_reads_zeros_with_finite_gradients():
    keys, values, queries = jnp.ones((1, 3, 2)), jnp.ones((1, 3, 2)), jnp.ones((1, 1, 2))
    empty = jnp.zeros((1, 3), bool)
    np.testing.assert_array_equal(read_memory(keys, values, empty, queries, 2), 0.0)
    grads = jax.grad(lambda q, k: jnp.sum(read_memory(k, values, empty, q, 2)), argnums=(0, 1))(queries, keys)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)


# --------------------------------------------------------------------------- through the module


def test_a_reset_empties_the_memory():
    """After a reset nothing written before it can be read: reads, outputs and carry equal a fresh start's."""
    module, fresh, params = build()
    warm, _, _ = run_with_reads(module, params, fresh, episode(jax.random.key(2), 3), jnp.zeros((3, BATCH), bool))
    warm, _, _ = run_with_reads(module, params, warm, episode(jax.random.key(4), 3), jnp.zeros((3, BATCH), bool))
    assert np.all(np.asarray(warm.filled) == SMALL["capacity"])
    suffix = episode(jax.random.key(3), 3)
    resets = jnp.zeros((3, BATCH), bool).at[0, 0].set(True)
    after, outputs, reads = run_with_reads(module, params, warm, suffix, resets)
    start, fresh_outputs, fresh_reads = run_with_reads(module, params, fresh, suffix, jnp.zeros((3, BATCH), bool))
    np.testing.assert_allclose(reads[:, 0], fresh_reads[:, 0], atol=1e-6)
    np.testing.assert_allclose(outputs[:, 0], fresh_outputs[:, 0], atol=1e-6)
    for leaf, fresh_leaf in zip(jax.tree.leaves(after), jax.tree.leaves(start)):
        np.testing.assert_allclose(leaf[0], fresh_leaf[0], atol=1e-6)
    assert int(after.filled[0]) == 3 and int(after.filled[1]) == SMALL["capacity"]
    assert not np.allclose(reads[:, 1], fresh_reads[:, 1])  # the entry without a reset still reads its past


def test_the_ring_overwrites_the_oldest_slot():
    module, carry, params = build(capacity=3)
    inputs = episode(jax.random.key(4), 5)
    carry, _, _ = run_with_reads(module, params, carry, inputs, jnp.zeros((5, BATCH), bool))
    vision, language = codes(params, inputs)
    order = [3, 4, 2]  # slots 0, 1, 2 after steps 0..4: steps 3 and 4 replaced steps 0 and 1
    np.testing.assert_allclose(carry.vision, jnp.swapaxes(vision[jnp.array(order)], 0, 1), atol=1e-6)
    np.testing.assert_allclose(carry.language, jnp.swapaxes(language[jnp.array(order)], 0, 1), atol=1e-6)
    np.testing.assert_array_equal(carry.filled, 3)
    np.testing.assert_array_equal(carry.next_slot, 2)


@pytest.mark.parametrize("single_column", [False, True])
def test_top_one_reads_are_stored_rows_of_the_right_column(single_column):
    """dcem reads the vision code in the language->vision direction and the language code in the other;
    the single-column baseline reads whole slots ``concat(vision, language)``. Both only from this episode's slots."""
    module, carry, params = build(top_k=1, capacity=8, single_column=single_column)
    inputs = episode(jax.random.key(5), 6)
    _, _, reads = run_with_reads(module, params, carry, inputs, jnp.zeros((6, BATCH), bool))
    vision, language = codes(params, inputs)
    heads, size = SMALL["num_heads"], SMALL["key_size"]
    for t in range(6):
        for b in range(BATCH):
            if single_column:
                columns = [(reads[t, b].reshape(heads, 2 * size), jnp.concatenate([vision, language], -1)[: t + 1, b])]
            else:
                lv, vl = reads[t, b].reshape(2, heads, size)
                columns = [(lv, vision[: t + 1, b]), (vl, language[: t + 1, b])]
            for read, rows in columns:
                distance = np.abs(np.asarray(read)[:, None, :] - np.asarray(rows)[None]).max(-1)  # [H, t + 1]
                assert np.all(distance.min(-1) < 1e-5)


def test_gradients_reach_both_parts_through_the_memory():
    module, carry, params = build()
    inputs = episode(jax.random.key(6), 4)

    def last_output(inputs):
        return jnp.sum(module.apply(params, carry, inputs, jnp.zeros((4, BATCH), bool))[1][-1])

    grads = jax.jit(jax.grad(last_output))(inputs)
    for part in ("vision", "language"):
        assert float(jnp.abs(grads[part][0]).max()) > 0, part  # step 0 reaches step 3 through memory and LSTM
        assert float(jnp.abs(grads[part][-1]).max()) > 0, part


def test_single_column_runs_and_differs():
    dual, carry, dual_params = build()
    single, _, single_params = build(single_column=True)
    inputs, resets = episode(jax.random.key(7), 5), jnp.zeros((5, BATCH), bool)
    _, y_dual, _ = run_with_reads(dual, dual_params, carry, inputs, resets)
    _, y_single, _ = run_with_reads(single, single_params, carry, inputs, resets)
    assert y_single.shape == y_dual.shape == (5, BATCH, FEATURES)
    assert np.all(np.isfinite(np.asarray(y_single)))
    assert not np.allclose(y_single, y_dual)
    width = lambda p: p["params"]["step"]["query"]["kernel"].shape[1]  # noqa: E731
    assert width(single_params) == width(dual_params)  # H x 2K either way: H queries of 2K, or 2H of K


def test_parts_are_named_by_the_fields_and_checked():
    module = backbones.make("dcem", FEATURES, vision_key="rgb", language_key="text")
    assert backbones.input_parts(module) == ("rgb", "text")
    assert backbones.input_parts(backbones.make("gru", FEATURES)) == ()
    carry = module.initialize_carry(1)
    with pytest.raises(ValueError, match="lack the part.*'rgb'"):
        module.init(jax.random.key(0), carry, {"vision": jnp.zeros((1, 1, 2)), "text": jnp.zeros((1, 1, 2))},
                    jnp.zeros((1, 1), bool))
    with pytest.raises(ValueError, match="capacity >= 1"):
        backbones.make("dcem", FEATURES, capacity=0).initialize_carry(1)
    with pytest.raises(ValueError, match="carry's memory"):
        build()[0].apply(build()[2], backbones.make("dcem", FEATURES, capacity=5, key_size=4).initialize_carry(BATCH),
                         episode(jax.random.key(0), 1), jnp.zeros((1, BATCH), bool))


def test_split_parts_cuts_the_last_axis():
    x = jnp.arange(2 * 5.0).reshape(1, 2, 5)
    parts = backbones.split_parts(x, ("a", "b"))
    assert parts["a"].shape == (1, 2, 2) and parts["b"].shape == (1, 2, 3)
    np.testing.assert_array_equal(jnp.concatenate([parts["a"], parts["b"]], -1), x)
    assert backbones.split_parts(x, ()) is x
    with pytest.raises(ValueError, match="D >= 3"):
        backbones.split_parts(x[..., :2], ("a", "b", "c"))


def test_sown_slot_weights_are_what_the_language_to_vision_read_used():
    """``slot_weights`` [T, B, H, M]: a distribution over the slots written so far, and the read is it times the vision column."""
    module, carry, params = build()
    inputs = episode(jax.random.key(7), 3)
    (_, _), state = jax.jit(partial(module.apply, mutable=["intermediates"]))(params, carry, inputs, jnp.zeros((3, BATCH), bool))
    weights = np.asarray(state["intermediates"]["step"]["slot_weights"][0])  # [T, B, H, M]
    reads = np.asarray(state["intermediates"]["step"]["reads"][0])
    assert weights.shape == (3, BATCH, SMALL["num_heads"], SMALL["capacity"])
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)
    for t in range(3):
        assert (weights[t, :, :, t + 1 :] == 0).all()  # slots not yet written get nothing
    vision_codes, _ = codes(params, inputs)  # [T, B, K]: slot t holds step t's code
    expected = np.einsum("tbhm,mbk->tbhk", weights[:, :, :, :3], np.asarray(vision_codes))
    np.testing.assert_allclose(reads[..., : SMALL["num_heads"] * SMALL["key_size"]], expected.reshape(3, BATCH, -1), atol=1e-5)


def test_reading_before_writing_never_finds_the_steps_own_embeddings():
    """With ``read_before_write`` the first step of an episode reads nothing and step 1 reads exactly step 0's vision code."""
    module, carry, params = build(read_before_write=True)
    inputs = episode(jax.random.key(8), 3)
    resets = jnp.zeros((3, BATCH), bool).at[0].set(True)
    (_, _), state = jax.jit(partial(module.apply, mutable=["intermediates"]))(params, carry, inputs, resets)
    weights = np.asarray(state["intermediates"]["step"]["slot_weights"][0])  # [T, B, H, M]
    reads = np.asarray(state["intermediates"]["step"]["reads"][0])
    width = SMALL["num_heads"] * SMALL["key_size"]
    assert (weights[0] == 0).all() and (reads[0] == 0).all()  # an empty memory reads zeros
    np.testing.assert_allclose(weights[1].sum(-1), 1.0, rtol=1e-5)
    assert (weights[1, :, :, 1:] == 0).all() and (weights[2, :, :, 2:] == 0).all()  # never its own slot
    vision_codes, _ = codes(params, inputs)
    expected = np.repeat(np.asarray(vision_codes)[0][:, None, :], SMALL["num_heads"], axis=1).reshape(BATCH, width)
    np.testing.assert_allclose(reads[1, :, :width], expected, atol=1e-5)
    # What is written is unchanged: the same carry as the default order after the episode.
    default, _, _ = build()
    after_first = module.apply(params, carry, inputs, resets)[0]
    after_default = default.apply(params, carry, inputs, resets)[0]
    np.testing.assert_allclose(np.asarray(after_first.vision), np.asarray(after_default.vision), atol=1e-6)
