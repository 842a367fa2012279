"""PPO: loss pieces, shapes and metrics, discrete/continuous, feed-forward/recurrent, truncation, determinism, sweeps."""

from __future__ import annotations

import dataclasses

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from hypothesis import given, settings
from hypothesis import strategies as st
from gymnax.environments import environment, spaces

from mnemax.agents import HParams, PPOConfig, make_ppo_env, make_rollout, make_train, make_trainer
from mnemax.agents.ppo import METRIC_NAMES, action_noise, make_network, policy_distribution, sample_with_noise
from mnemax.agents.ppo_losses import clipped_surrogate_loss, clipped_value_loss
from mnemax.backbones import BackboneSpec

TINY = PPOConfig(total_steps=4 * 16 * 3, num_envs=4, num_steps=16, update_epochs=2, num_minibatches=2, head_sizes=(16,))


# --------------------------------------------------------------------------- acting


@settings(max_examples=5)  # each new number of actions compiles the sampler
@given(logits=st.lists(st.floats(-3.0, 3.0), min_size=2, max_size=5), seed=st.integers(0, 2**16))
def test_gumbel_noise_samples_the_categorical_policy_and_reports_its_log_prob(logits, seed):
    logits = jnp.asarray(logits, jnp.float32)
    draws = 20_000
    noise = action_noise(jax.random.key(seed), True, (draws, logits.shape[0]))
    actions, log_probs = sample_with_noise(True, jnp.broadcast_to(logits, noise.shape), noise)
    frequencies = np.bincount(np.asarray(actions), minlength=logits.shape[0]) / draws
    np.testing.assert_allclose(frequencies, jax.nn.softmax(logits), atol=0.02)  # ~5 standard errors
    np.testing.assert_allclose(log_probs, jax.nn.log_softmax(logits)[actions], rtol=1e-5, atol=1e-6)


def test_normal_noise_samples_the_gaussian_policy_and_reports_its_log_prob():
    mean, log_std = jnp.array([0.5, -1.0]), jnp.array([0.0, -1.5])
    noise = action_noise(jax.random.key(0), False, (20_000, 2))
    policy = (jnp.broadcast_to(mean, noise.shape), jnp.broadcast_to(log_std, noise.shape))
    actions, log_probs = sample_with_noise(False, policy, noise)
    np.testing.assert_allclose(actions.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(actions.std(0), jnp.exp(log_std), rtol=0.03)
    expected = policy_distribution(False, (mean, log_std)).log_prob(actions)
    np.testing.assert_allclose(log_probs, expected, rtol=1e-5)


# --------------------------------------------------------------------------- loss pieces


def test_surrogate_loss_clips_ratio_in_the_direction_of_the_advantage():
    old = jnp.log(jnp.array([0.5, 0.5, 0.5, 0.5]))
    new = jnp.log(jnp.array([0.75, 0.75, 0.25, 0.5]))  # ratios 1.5, 1.5, 0.5, 1.0
    adv = jnp.array([1.0, -1.0, 1.0, 2.0])
    loss, diag = clipped_surrogate_loss(new, old, adv, 0.2)
    # min(r A, clip(r) A): 1.2, -1.5, 0.5, 2.0
    assert float(loss) == pytest.approx(-(1.2 - 1.5 + 0.5 + 2.0) / 4, rel=1e-5)
    assert float(diag["clip_fraction"]) == pytest.approx(0.75)
    ratio = np.array([1.5, 1.5, 0.5, 1.0])
    assert float(diag["approx_kl"]) == pytest.approx(np.mean(ratio - 1 - np.log(ratio)), rel=1e-5)


def test_surrogate_loss_is_minus_mean_advantage_at_ratio_one():
    logp = jnp.log(jnp.array([0.2, 0.7]))
    loss, diag = clipped_surrogate_loss(logp, logp, jnp.array([3.0, -1.0]), 0.2)
    assert float(loss) == pytest.approx(-1.0)
    assert float(diag["approx_kl"]) == 0.0 and float(diag["clip_fraction"]) == 0.0


def test_value_loss_takes_the_pessimistic_of_clipped_and_unclipped():
    old, target = jnp.array([0.0, 0.0]), jnp.array([1.0, -1.0])
    # First value overshoots far past the target but inside nothing; clipped value 0.2 is worse.
    values = jnp.array([3.0, -0.1])
    loss = clipped_value_loss(values, old, target, 0.2)
    expected = 0.5 * np.mean([max(4.0, 0.64), max(0.81, 0.81)])
    assert float(loss) == pytest.approx(expected, rel=1e-6)


# --------------------------------------------------------------------------- feed-forward CartPole

CARTPOLE = gymnax.make("CartPole-v1")
TRAIN = jax.jit(make_train(TINY, *CARTPOLE))
SWEEP = jax.jit(jax.vmap(make_train(TINY, *CARTPOLE)))


@pytest.fixture(scope="module")
def cartpole_run():
    return jax.block_until_ready(TRAIN(jax.random.key(0)))


def test_metrics_have_the_contracted_names_and_one_float32_value_per_update(cartpole_run):
    state, metrics = cartpole_run
    assert set(METRIC_NAMES) <= set(metrics)
    for name, value in metrics.items():
        assert value.shape == (TINY.num_updates,), name
        assert value.dtype == jnp.float32, name
    np.testing.assert_array_equal(metrics["env_steps"], [64.0, 128.0, 192.0])
    assert int(state.update_count) == TINY.num_updates
    assert np.all(metrics["episodes"] > 0)  # random CartPole episodes last ~20 steps
    assert np.all(np.isfinite(metrics["episode_return"]))
    for name in ("policy_loss", "value_loss", "entropy", "grad_norm", "approx_kl"):
        assert np.all(np.isfinite(metrics[name])), name
    # Linear annealing per update: lr * (1 - k / num_updates).
    np.testing.assert_allclose(metrics["learning_rate"], TINY.learning_rate * np.array([1.0, 2 / 3, 1 / 3]), rtol=1e-6)


def test_runner_state_is_a_named_pytree_of_arrays(cartpole_run):
    state, _ = cartpole_run
    assert hasattr(state, "_fields") and "env_state" in state._fields
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(state))
    assert state.obs.shape == (TINY.num_envs, 4)


def test_same_seed_gives_bit_identical_metrics_and_other_seeds_differ(cartpole_run):
    _, first = cartpole_run
    _, again = TRAIN(jax.random.key(0))
    _, other = TRAIN(jax.random.key(1))
    for name in first:
        np.testing.assert_array_equal(np.asarray(first[name]), np.asarray(again[name]), err_msg=name)
    assert not np.array_equal(first["policy_loss"], other["policy_loss"])


def test_four_learning_rates_in_one_compiled_call_give_four_curves(cartpole_run):
    rates = jnp.array([1e-4, 1e-3, 1e-2, 1e-1], jnp.float32)
    base = TINY.hparams()
    hparams = HParams(*(jnp.full((4,), h) for h in base))._replace(learning_rate=rates)
    keys = jnp.stack([jax.random.key(0)] * 4)
    _, metrics = SWEEP(keys, hparams)
    np.testing.assert_allclose(metrics["learning_rate"][:, 0], rates, rtol=1e-6)
    losses = np.asarray(metrics["value_loss"][:, -1])
    assert len(set(losses.tolist())) == 4
    # The first update starts from the same weights and rollout as the unvmapped default run.
    _, single = cartpole_run
    np.testing.assert_allclose(metrics["episode_return"][:, 0], single["episode_return"][0], rtol=1e-6)


def test_update_does_not_recompile_on_second_call():
    trainer = make_trainer(TINY, *CARTPOLE)
    update = jax.jit(trainer.update)
    state = jax.jit(trainer.init)(jax.random.key(0))
    state, _ = update(state)
    state, _ = update(state)
    assert update._cache_size() == 1


def test_config_errors_name_the_field_and_the_fix():
    with pytest.raises(ValueError, match="less than one update"):
        make_trainer(dataclasses.replace(TINY, total_steps=10), *CARTPOLE)
    with pytest.raises(ValueError, match="num_envs=6 must be divisible by num_minibatches=4"):
        make_trainer(dataclasses.replace(TINY, num_envs=6, num_minibatches=4, backbone=BackboneSpec("gru", 8)), *CARTPOLE)
    with pytest.raises(ValueError, match="activation"):
        make_trainer(dataclasses.replace(TINY, activation="swish2"), *CARTPOLE)


def test_config_is_hashable_and_hparams_default_to_its_fields():
    assert hash(TINY) == hash(dataclasses.replace(TINY))
    hp = TINY.hparams()
    assert float(hp.learning_rate) == pytest.approx(TINY.learning_rate)
    assert float(hp.gae_lambda) == pytest.approx(TINY.gae_lambda)


# --------------------------------------------------------------------------- continuous actions


def test_continuous_policy_trains_on_pendulum_with_a_learned_log_std():
    env, params = make_ppo_env("Pendulum-v1")
    config = dataclasses.replace(TINY, normalize_observations=True, normalize_rewards=True)
    state, metrics = jax.jit(make_train(config, env, params))(jax.random.key(0))
    assert "log_std" in state.params["params"]
    for name in ("policy_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(metrics[name])), name
    # Batch-wide observation statistics: one mean per observation dimension, shared by every env.
    assert state.obs_stats.mean.shape == (3,)
    assert float(state.obs_stats.count) == pytest.approx(config.num_envs * (1 + config.num_updates * config.num_steps))
    assert float(state.reward_stats.var) != 1.0


# --------------------------------------------------------------------------- truncation on a time-limit task


@struct.dataclass
class ClockState(environment.EnvState):
    pass


@struct.dataclass
class ClockParams(environment.EnvParams):
    max_steps_in_episode: int = 5
    truncation_as_termination: bool = False


class ConstantReward(environment.Environment):
    """Reward 1 every step, a time limit of 5 steps, and an observation that carries no time.

    The value of every state under truncation-is-not-termination is 1 / (1 - gamma);
    with ``truncation_as_termination`` the env reports the time limit as a terminal
    state, which is what ``done = terminated or truncated`` bootstrapping amounts to.
    """

    @property
    def default_params(self) -> ClockParams:
        return ClockParams()

    def step_env(self, key, state, action, params):
        state = ClockState(time=state.time + 1)
        terminated = jnp.logical_and(params.truncation_as_termination, state.time >= params.max_steps_in_episode)
        return jnp.zeros(1), state, jnp.float32(1.0), terminated, {}

    def reset_env(self, key, params):
        return jnp.zeros(1), ClockState(time=0)

    def is_terminated(self, state, params):
        return jnp.array(False)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 0.0, (1,), jnp.float32)


CLOCK = PPOConfig(
    total_steps=4 * 16 * 60,
    num_envs=4,
    num_steps=16,
    learning_rate=0.05,
    anneal_lr=False,
    gamma=0.9,
    gae_lambda=0.95,
    clip_eps=100.0,  # no value clipping: let the critic move freely
    ent_coef=0.0,
    head_sizes=(8,),
)


@pytest.mark.parametrize("as_termination", [False, True])
def test_critic_learns_the_infinite_horizon_value_through_truncation(as_termination):
    env, params = ConstantReward(), ClockParams(truncation_as_termination=as_termination)
    state, _ = jax.jit(make_train(CLOCK, env, params))(jax.random.key(0))
    network = make_network(CLOCK, 2, True)
    _, (_, value) = network.apply(state.params, None, jnp.zeros((1, 1, 1)), jnp.ones((1, 1), bool))
    value = float(value[0, 0])
    correct = 1.0 / (1.0 - CLOCK.gamma)
    if as_termination:
        # The average over the 5 positions of the finite-horizon value, ~2.6.
        finite = np.mean([(1 - CLOCK.gamma ** (5 - t)) / (1 - CLOCK.gamma) for t in range(5)])
        assert value == pytest.approx(finite, rel=0.15)
    else:
        assert value == pytest.approx(correct, rel=0.1)


@pytest.mark.parametrize("name", ["gru", "s5"])
def test_recurrent_critic_learns_the_infinite_horizon_value_through_truncation(name):
    """A memory critic can count steps, so truncation-as-termination would teach it V = 4.1 at t = 0, not 10."""
    spec = BackboneSpec.from_dict(name, 8, BACKBONE_OPTIONS.get(name, {}))
    config = dataclasses.replace(CLOCK, backbone=spec)
    state, _ = jax.jit(make_train(config, ConstantReward(), ClockParams()))(jax.random.key(0))
    network = make_network(config, 2, True)
    _, (_, value) = network.apply(state.params, network.initialize_carry(1), jnp.zeros((1, 1, 1)), jnp.ones((1, 1), bool))
    assert float(value[0, 0]) == pytest.approx(1.0 / (1.0 - CLOCK.gamma), rel=0.1)


# --------------------------------------------------------------------------- recurrent policies

REPEAT = make_ppo_env("popgym/RepeatPreviousEasy")
BACKBONE_OPTIONS = {"s5": {"num_layers": 1, "state_size": 8}}


def recurrent_config(name: str, separate_critic: bool = False) -> PPOConfig:
    spec = BackboneSpec.from_dict(name, 8, BACKBONE_OPTIONS.get(name, {}))
    return dataclasses.replace(
        TINY, backbone=spec, encoder_sizes=(8,), head_sizes=(8,), num_steps=24, separate_critic=separate_critic
    )


# The recurrent checks run each core with the shared torso, and the GRU also with a critic torso of its own.
SHARED_AND_SEPARATE = [("gru", False), ("s5", False), pytest.param("gru", True, id="gru-separate-critic")]


class Clock(ConstantReward):
    """:class:`ConstantReward` whose observation is the time step over the limit: 0.2, 0.4, ..., 1.0 at truncation.

    The pre-reset observation after step t is therefore ``inputs[t] + 0.2``,
    and the next episode's first observation (0.0) differs from it.
    """

    def step_env(self, key, state, action, params):
        obs, state, reward, terminated, info = super().step_env(key, state, action, params)
        return jnp.full(1, state.time / params.max_steps_in_episode, jnp.float32), state, reward, terminated, info


@pytest.mark.parametrize("name, separate_critic", SHARED_AND_SEPARATE)
def test_recurrent_bootstrap_values_the_truncated_episodes_own_last_observation(name, separate_critic):
    """At a time limit, the bootstrap value is V(final observation) from the carry that episode built.

    popjaxrl's rollout instead values the next episode's first observation with
    a reset carry; that equals ``traj.values[t + 1]`` and differs from the value
    recomputed here step by step.
    """
    config = recurrent_config(name, separate_critic)
    env, params = Clock(), ClockParams()
    trainer, rollout = make_trainer(config, env, params), make_rollout(config, env, params)
    network = make_network(config, 2, True)

    def check(key):
        state = trainer.init(key)
        start = state.carry
        state, traj, next_values = rollout(state, jax.random.key(1))

        def step(carry, step_inputs):  # [B, 1], [B], [B, 1]
            inputs, starts, final_inputs = step_inputs
            carry, _ = network.apply(state.params, carry, inputs[None], starts[None])
            _, (_, value) = network.apply(state.params, carry, final_inputs[None], jnp.zeros_like(starts)[None])
            return carry, value[0]

        final_inputs = traj.inputs + 1.0 / params.max_steps_in_episode
        _, expected = jax.lax.scan(step, start, (traj.inputs, traj.starts, final_inputs))
        return traj, next_values, expected, final_inputs

    traj, next_values, expected, final_inputs = jax.jit(check)(jax.random.key(0))
    truncated = np.asarray(traj.dones & ~traj.terminated)
    assert truncated.sum() >= config.num_envs * 4  # every env hits the limit every 5 steps
    np.testing.assert_allclose(np.asarray(final_inputs)[truncated], 1.0, atol=1e-6)  # acted on 0.8, ended at 1.0
    np.testing.assert_allclose(next_values, expected, atol=1e-5)
    following = np.asarray(traj.values[1:])[truncated[:-1]]
    assert np.min(np.abs(np.asarray(next_values[:-1])[truncated[:-1]] - following)) > 1e-4


SLOW_BACKBONES = [pytest.param(name, False, marks=pytest.mark.slow) for name in ("lstm", "lru", "s4d", "transformer")]


@pytest.mark.parametrize("name, separate_critic", [*SHARED_AND_SEPARATE, *SLOW_BACKBONES])
def test_sequence_mode_reproduces_acting_values_and_log_probs(name, separate_critic):
    """Re-running the rollout in sequence mode from its start carry must give what acting saw."""
    config = recurrent_config(name, separate_critic)  # on CartPole, whose random-policy episodes end within the rollout
    trainer = make_trainer(config, *CARTPOLE)
    rollout = make_rollout(config, *CARTPOLE)
    network = make_network(config, 2, True)

    def check(key):
        state = trainer.init(key)
        start = state.carry
        state, traj, next_values = rollout(state, jax.random.key(1))
        _, (logits, values) = network.apply(state.params, start, traj.inputs, traj.starts)
        log_probs = policy_distribution(True, logits).log_prob(traj.actions)
        return traj, next_values, log_probs, values

    traj, next_values, log_probs, values = jax.jit(check)(jax.random.key(0))
    assert bool(traj.dones.any()) and bool(traj.starts[1:].any())
    np.testing.assert_allclose(log_probs, traj.log_probs, atol=1e-5)
    np.testing.assert_allclose(values, traj.values, atol=1e-5)
    # Where no episode ended, the bootstrap value is the next step's value.
    same = ~np.asarray(traj.dones[:-1])
    np.testing.assert_allclose(np.asarray(next_values[:-1])[same], np.asarray(traj.values[1:])[same], atol=1e-5)


def test_separate_critic_has_a_torso_of_its_own():
    """With ``separate_critic`` the value depends on the critic's encoder and backbone only, the policy on the actor's."""
    config = recurrent_config("gru", separate_critic=True)
    network = make_network(config, 2, True)
    carry = network.initialize_carry(3)
    inputs, starts = jax.random.normal(jax.random.key(1), (5, 3, 4)), jnp.zeros((5, 3), bool).at[0].set(True)
    params = network.init(jax.random.key(0), carry, inputs, starts)["params"]
    assert {"encoder", "backbone", "critic_encoder", "critic_backbone"} <= set(params)
    assert len(carry) == 2 and all(leaf.shape[0] == 3 for leaf in jax.tree.leaves(carry))

    def outputs(p):
        _, (logits, values) = network.apply({"params": p}, carry, inputs, starts)
        return jnp.sum(logits), jnp.sum(values)

    policy_grads = jax.grad(lambda p: outputs(p)[0])(params)
    value_grads = jax.grad(lambda p: outputs(p)[1])(params)
    norm = lambda tree: float(sum(jnp.sum(jnp.abs(x)) for x in jax.tree.leaves(tree)))  # noqa: E731
    assert norm(policy_grads["critic_backbone"]) == 0.0 and norm(policy_grads["critic_encoder"]) == 0.0
    assert norm(value_grads["backbone"]) == 0.0 and norm(value_grads["encoder"]) == 0.0
    assert norm(value_grads["critic_backbone"]) > 0.0 and norm(policy_grads["backbone"]) > 0.0


@pytest.mark.parametrize("name", ["gru", "s5"])
def test_recurrent_training_vmapped_over_seeds(name):
    config = dataclasses.replace(recurrent_config(name), total_steps=4 * 24 * 2)
    keys = jax.random.split(jax.random.key(0), 2)
    state, metrics = jax.block_until_ready(jax.jit(jax.vmap(make_train(config, *REPEAT)))(keys))
    assert metrics["policy_loss"].shape == (2, 2)
    for metric in ("policy_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(metrics[metric])), metric
    assert not np.array_equal(metrics["value_loss"][0], metrics["value_loss"][1])
    assert jax.tree.leaves(state.carry)[0].shape[:2] == (2, config.num_envs)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm", "lru", "s4d", "transformer"])
def test_every_other_backbone_trains(name):
    """Finite metrics, and the updates change the policy: its log-probs of one rollout move after training."""
    from mnemax.backbones import names

    assert name in names()
    config = dataclasses.replace(recurrent_config(name), total_steps=4 * 24 * 2)
    state, metrics = jax.jit(make_train(config, *REPEAT))(jax.random.key(0))
    for metric in ("policy_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(metrics[metric])), metric
    assert np.all(metrics["grad_norm"] > 0.0) and np.all(metrics["approx_kl"] > 0.0)
    initial = make_trainer(config, *REPEAT).init(jax.random.key(0))
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), initial.params, state.params)
    assert max(jax.tree.leaves(moved)) > 1e-4
