"""The state-tracking tasks' labels and the variants the check runs (scripts/state_tracking.py)."""

from __future__ import annotations

import jax
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemax.experiment.state_tracking import TASKS, StateTrackingConfig, format_table, parity_stream, variants


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), length=st.sampled_from([1, 7, 40]), task=st.sampled_from(sorted(TASKS)))
def test_labels_are_the_running_sum_modulo_k(seed, length, task):
    modulus, stream = TASKS[task]
    tokens, labels = map(np.asarray, stream(jax.random.key(seed), 3, length))
    assert tokens.shape == labels.shape == (length, 3)
    assert tokens.min() >= 0 and tokens.max() < modulus
    for b in range(3):
        total = 0
        for t in range(length):
            total = (total + int(tokens[t, b])) % modulus
            assert labels[t, b] == total


def test_parity_flips_exactly_on_ones():
    bits, parity = map(np.asarray, parity_stream(jax.random.key(0), 64, 50))
    previous = np.concatenate([np.zeros((1, 64), int), parity[:-1]])
    np.testing.assert_array_equal(parity != previous, bits == 1)
    assert 0.4 < bits.mean() < 0.6


def test_cores_with_the_option_run_both_ways_and_the_table_has_every_row():
    config = StateTrackingConfig(features=8)
    rows = {row.label: dict(row.options) for row in variants(["gru", "lru", "gated_deltanet"], config)}
    assert set(rows) == {"gru", "lru [0, 1]", "lru [-1, 1]", "gated_deltanet [0, 1]", "gated_deltanet [-1, 1]",
                         "gated_deltanet [-1, 1] conv_size 1"}
    assert rows["gated_deltanet [-1, 1] conv_size 1"] == {**rows["gated_deltanet [-1, 1]"], "conv_size": 1}
    assert rows["lru [-1, 1]"]["negative_eigenvalues"] and not rows["lru [0, 1]"]["negative_eigenvalues"]
    assert rows["lru [0, 1]"]["max_phase"] == 0.0 and "negative_eigenvalues" not in rows["gru"]
    accuracy = np.array([[1.0, 0.5, 0.5], [1.0, 1.0, 0.5], [1.0, 1.0, 1.0]])
    result = {"accuracy": accuracy, "final_loss": np.zeros(3), "train_seconds": 1.0, "parameters": 10}
    table = format_table({("parity", "gru"): result}, config)
    assert "| parity | gru | 10 | 1.000 ± 0.000 | 0.833 ± 0.236 | 0.667 ± 0.236 |" in table
