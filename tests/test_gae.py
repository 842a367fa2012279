"""GAE: hand-computed cases (termination, truncation) and a property test against a plain loop."""

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import numpy as np
import pytest
from hypothesis import given

from mnemax.agents.returns import generalized_advantage_estimate

gae = jax.jit(generalized_advantage_estimate)


def reference_gae(rewards, values, next_values, terminated, dones, gamma, lam):
    """The textbook backward loop, one environment column at a time."""
    advantages = np.zeros_like(values, dtype=np.float64)
    following = np.zeros(values.shape[1])
    for t in reversed(range(values.shape[0])):
        delta = rewards[t] + gamma * (1.0 - terminated[t]) * next_values[t] - values[t]
        following = delta + gamma * lam * (1.0 - dones[t]) * following
        advantages[t] = following
    return advantages, advantages + values


def column(*xs):
    return np.asarray(xs, np.float32)[:, None]


def test_no_episode_end_is_discounted_sum_of_deltas():
    gamma, lam = 0.9, 0.5
    r, v, nv = column(1.0, 2.0), column(0.5, 1.0), column(1.0, 3.0)
    zeros = column(0, 0)
    adv, targets = gae(r, v, nv, zeros, zeros, gamma, lam)
    d0 = 1.0 + 0.9 * 1.0 - 0.5
    d1 = 2.0 + 0.9 * 3.0 - 1.0
    np.testing.assert_allclose(adv[:, 0], [d0 + 0.45 * d1, d1], rtol=1e-6)
    np.testing.assert_allclose(targets[:, 0], [d0 + 0.45 * d1 + 0.5, d1 + 1.0], rtol=1e-6)


def test_termination_drops_bootstrap_and_cuts_recursion():
    gamma, lam = 0.9, 0.5
    r, v, nv = column(1.0, 2.0), column(0.5, 1.0), column(7.0, 3.0)
    ended = column(1, 0)
    adv, _ = gae(r, v, nv, ended, ended, gamma, lam)
    # Step 0 ends the episode by termination: no bootstrap, no advantage from step 1.
    np.testing.assert_allclose(adv[:, 0], [1.0 - 0.5, 2.0 + 0.9 * 3.0 - 1.0], rtol=1e-6)


def test_truncation_bootstraps_from_final_observation_but_cuts_recursion():
    gamma, lam = 0.9, 0.5
    # next_values[0] = V(final observation of the truncated episode) = 7.
    r, v, nv = column(1.0, 2.0), column(0.5, 1.0), column(7.0, 3.0)
    adv, targets = gae(r, v, nv, column(0, 0), column(1, 0), gamma, lam)
    np.testing.assert_allclose(adv[:, 0], [1.0 + 0.9 * 7.0 - 0.5, 2.0 + 0.9 * 3.0 - 1.0], rtol=1e-6)
    np.testing.assert_allclose(targets[0, 0], 1.0 + 0.9 * 7.0, rtol=1e-6)


def test_constant_reward_with_time_limit_targets_one_over_one_minus_gamma():
    """Reward 1 per step, truncation every 5 steps, critic already at the fixed point 1/(1-gamma)."""
    gamma, lam, horizon = 0.9, 0.95, 20
    fixed_point = 1.0 / (1.0 - gamma)
    dones = (np.arange(horizon) % 5 == 4).astype(np.float32)[:, None]
    values = np.full((horizon, 1), fixed_point, np.float32)
    ones = np.ones((horizon, 1), np.float32)
    _, targets = gae(ones, values, values, np.zeros_like(dones), dones, gamma, lam)
    np.testing.assert_allclose(targets, fixed_point, rtol=1e-5)
    # Treating the time limit as termination pulls the targets below the fixed point.
    _, wrong = gae(ones, values, values, dones, dones, gamma, lam)
    assert float(wrong[4, 0]) == pytest.approx(1.0)
    assert float(wrong.mean()) < 0.8 * fixed_point


@st.composite
def rollouts(draw):
    t = draw(st.integers(1, 12))
    b = draw(st.integers(1, 4))
    floats = st.floats(-10, 10, width=32)
    arr = lambda: draw(hnp.arrays(np.float32, (t, b), elements=floats))  # noqa: E731
    dones = draw(hnp.arrays(np.bool_, (t, b)))
    terminated = dones & draw(hnp.arrays(np.bool_, (t, b)))
    gamma = draw(st.floats(0.0, 1.0))
    lam = draw(st.floats(0.0, 1.0))
    return arr(), arr(), arr(), terminated, dones, gamma, lam


@given(rollouts())
def test_matches_plain_loop(rollout):
    rewards, values, next_values, terminated, dones, gamma, lam = rollout
    adv, targets = generalized_advantage_estimate(
        rewards, values, next_values, terminated, dones, np.float32(gamma), np.float32(lam)
    )
    ref_adv, ref_targets = reference_gae(
        rewards.astype(np.float64), values.astype(np.float64), next_values.astype(np.float64),
        terminated.astype(np.float64), dones.astype(np.float64), gamma, lam,
    )
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(targets, ref_targets, rtol=1e-4, atol=1e-3)
