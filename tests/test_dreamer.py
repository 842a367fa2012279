"""The Dreamer agent: lambda-returns, return normalisation, the delayed-reset env, one jitted vmapped update, the runner."""

from __future__ import annotations

import json

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given

from mnemax.agents.actor_critic import (
    ReturnScale,
    imagination_weights,
    lambda_returns,
    return_divisor,
    update_return_scale,
)
from mnemax.agents.dreamer import (
    DreamerConfig,
    Params,
    bootstrap_critic,
    critic_objective,
    make_dreamer_env,
    make_trainer,
    model_learning_rate,
)
from mnemax.agents.dreamer_env import DelayedReset
from mnemax.backbones import BackboneSpec
from mnemax.experiment.config import ConfigError, run_config_from_dict
from mnemax.experiment.runner import run
from mnemax.worldmodels.distributions import symlog, twohot, twohot_log_prob, twohot_mean
from mnemax.worldmodels.sequence_model import LatentState, ModelCarry, WorldModelConfig, policy_features

H, N = 5, 3


def reference_lambda_returns(rewards, discounts, values, lam):
    returns = np.zeros_like(rewards)
    following = values[-1]
    for t in reversed(range(len(rewards))):
        following = rewards[t] + discounts[t] * ((1 - lam) * values[t + 1] + lam * following)
        returns[t] = following
    return returns


@given(
    hnp.arrays(np.float32, (H, N), elements=st.floats(-10, 10, width=32)),
    hnp.arrays(np.float32, (H, N), elements=st.floats(0, 1, width=32)),
    hnp.arrays(np.float32, (H + 1, N), elements=st.floats(-10, 10, width=32)),
    st.floats(0.0, 1.0),
)
def test_lambda_returns_match_the_recursion(rewards, discounts, values, lam):
    expected = reference_lambda_returns(rewards, discounts, values, lam)
    np.testing.assert_allclose(lambda_returns(rewards, discounts, values, lam), expected, rtol=1e-4, atol=1e-4)


def test_lambda_one_is_the_discounted_sum_and_lambda_zero_is_one_step():
    rewards = jnp.ones((H, 1))
    discounts = jnp.full((H, 1), 0.5)
    values = jnp.full((H + 1, 1), 2.0)
    monte_carlo = sum(0.5**k for k in range(H)) + 0.5**H * 2.0
    assert float(lambda_returns(rewards, discounts, values, 1.0)[0, 0]) == pytest.approx(monte_carlo)
    np.testing.assert_allclose(lambda_returns(rewards, discounts, values, 0.0), 1.0 + 0.5 * 2.0)
    with pytest.raises(ValueError, match=r"values \[H \+ 1, N\]"):
        lambda_returns(rewards, discounts, values[:-1], 0.9)


def test_return_scale_tracks_the_percentile_range_with_a_floor_of_one():
    scale = ReturnScale.zeros()
    returns = jnp.linspace(0.0, 100.0, 1001)
    for _ in range(600):
        scale = update_return_scale(scale, returns, 0.01)
    assert float(scale.low) == pytest.approx(5.0, rel=1e-2) and float(scale.high) == pytest.approx(95.0, rel=1e-2)
    assert float(return_divisor(scale)) == pytest.approx(90.0, rel=1e-2)
    small = update_return_scale(ReturnScale.zeros(), returns * 1e-3, 1.0)
    assert float(return_divisor(small)) == 1.0  # small returns are not scaled up


def test_imagination_weights_stop_after_termination():
    discounts = jnp.array([[0.9], [0.0], [0.9]])
    weights = imagination_weights(jnp.array([1.0]), discounts)
    np.testing.assert_allclose(weights[:, 0], [1.0, 0.9, 0.0, 0.0])
    np.testing.assert_allclose(imagination_weights(jnp.array([0.0]), discounts), 0.0)


def test_delayed_reset_shows_final_and_first_observation_as_separate_steps():
    env, params = make_dreamer_env("CartPole-v1")
    wrapped = DelayedReset(env)
    step, state = wrapped.reset(jax.random.key(0), params)
    assert bool(step.first) and not bool(step.last)
    step_fn = jax.jit(lambda key, state: wrapped.step(key, state, 0, params))
    steps = []
    for i in range(40):
        step, state = step_fn(jax.random.key(i), state)
        steps.append(step)
    last = [i for i, s in enumerate(steps) if bool(s.last)]
    assert last, "CartPole pushed left every step must fall within 40 steps"
    end = last[0]
    assert bool(steps[end].terminal) and float(steps[end].reward) == 1.0
    assert abs(float(steps[end].obs[2])) > 0.2  # the pole's final angle, beyond CartPole's 12 degrees
    after = steps[end + 1]
    assert bool(after.first) and float(after.reward) == 0.0 and not bool(after.last)
    assert abs(float(after.obs[2])) < 0.05  # a fresh pole
    assert not bool(steps[end + 2].first)


TINY_MODEL = dict(latent_groups=4, latent_classes=4, hidden=16, layers=1, num_bins=31, backbone=BackboneSpec("gru", 16))
TINY = dict(
    total_steps=160,
    num_envs=2,
    steps_per_update=8,
    train_ratio=4,
    batch_size=4,
    sequence_length=8,
    replay_capacity=200,
    train_start=16,
    actor_critic_hidden=16,
    actor_critic_layers=1,
    critic_bins=31,
    horizon=4,
    world_model=WorldModelConfig(**TINY_MODEL),
)


def tiny_model(**fields):
    """The tiny world model with ``fields`` changed."""
    return WorldModelConfig(**{**TINY_MODEL, **fields})


def test_delayed_reset_keeps_uint8_frames_for_the_world_model_to_scale():
    env, params = make_dreamer_env("memory/DistractingMemory", episode_length=6, cue_steps=2, reward_steps=2, room_size=3, tile_pixels=1)
    wrapped = DelayedReset(env)
    step, state = wrapped.reset(jax.random.key(0), params)
    assert step.obs.dtype == jnp.uint8
    for t in range(7):  # through the end of an episode and the delayed first step
        step, state = wrapped.step(jax.random.key(t + 1), state, jnp.asarray(0), params)
        assert step.obs.dtype == jnp.uint8 and state.next_obs.dtype == jnp.uint8


def test_card_games_reach_the_world_model_one_hot_unless_asked_otherwise():
    env, params = make_dreamer_env("popgym/RepeatPreviousEasy")
    obs, _ = env.reset(jax.random.key(0), params)
    assert obs.shape == (4,) and float(obs.sum()) == 1.0 and set(np.unique(np.asarray(obs))) == {0.0, 1.0}
    env, params = make_dreamer_env("popgym/RepeatPreviousEasy", one_hot=False)
    assert env.reset(jax.random.key(0), params)[0].shape == (1,)


def test_returns_bootstrap_from_the_critic_the_config_names():
    params = Params(model=None, actor=None, critic="trained", slow_critic="slow")
    assert bootstrap_critic(DreamerConfig(**TINY), params) == "trained"  # DreamerV3's, the default
    assert bootstrap_critic(DreamerConfig(**TINY, slow_target=True), params) == "slow"


def test_critic_objective_is_the_return_log_loss_plus_the_slow_critic_pull():
    bins, limit = 41, 5.0
    returns, slow = jnp.full((H, N), 2.0), jnp.full((H, N), -1.0)
    weights = jnp.linspace(0.2, 1.0, H)[:, None] * jnp.ones((H, N))
    logits = jnp.log(twohot(returns, bins, limit) + 1e-6)  # a critic that predicts the returns exactly
    plain = critic_objective(logits, returns, weights, limit)
    np.testing.assert_allclose(plain, -jnp.mean(weights * twohot_log_prob(logits, returns, limit)), rtol=1e-6)
    pulled = critic_objective(logits, returns, weights, limit, slow, slow_regularizer=0.5)
    pull = -jnp.mean(weights * twohot_log_prob(logits, slow, limit))
    np.testing.assert_allclose(pulled, plain + 0.5 * pull, rtol=1e-6)
    # The regularised loss is least where the critic predicts the mixture (returns + 0.5 slow) / 1.5 of both
    # two-hot codes, so the critic settles between the returns and the slow critic's value.
    mixture = jnp.log((twohot(returns, bins, limit) + 0.5 * twohot(slow, bins, limit)) / 1.5 + 1e-9)
    gradient = lambda loss, at: jnp.abs(jax.grad(loss)(at)).max()  # noqa: E731
    regularised = lambda l: critic_objective(l, returns, weights, limit, slow, slow_regularizer=0.5)  # noqa: E731
    assert gradient(regularised, mixture) < 1e-6 < gradient(regularised, logits)
    assert gradient(lambda l: critic_objective(l, returns, weights, limit), mixture) > 1e-3
    assert bool(jnp.all((twohot_mean(mixture, limit) < 2.0) & (twohot_mean(mixture, limit) > -1.0)))
    with pytest.raises(ValueError, match="slow_regularizer must be 0 or more"):
        DreamerConfig(**TINY, slow_regularizer=-1.0)


@pytest.fixture(scope="module")
def cartpole_run():
    """Two seeds (the same key, so they must agree) of 4 vmapped updates on CartPole-v1."""
    env, params = make_dreamer_env("CartPole-v1")
    config = DreamerConfig(**TINY)
    trainer = make_trainer(config, env, params)
    keys = jnp.stack([jax.random.PRNGKey(3)] * 2)
    state = jax.jit(jax.vmap(trainer.init))(keys)
    update = jax.jit(jax.vmap(trainer.update))
    history = []
    for _ in range(4):
        state, metrics = update(state)
        history.append(jax.device_get(metrics))
    return config, trainer, update, state, history


def test_update_trains_after_train_start_and_reports_the_runner_metrics(cartpole_run):
    config, trainer, update, state, history = cartpole_run
    assert config.train_steps == 2  # ratio 4 x 16 env steps / (4 x 8) replayed per gradient step
    for name in ("env_steps", "episode_return", "episode_length", "episodes", "wm_loss", "actor_loss", "critic_loss"):
        assert name in history[0]
    np.testing.assert_allclose([h["env_steps"][0] for h in history], [16, 32, 48, 64])
    assert float(history[0]["wm_loss"][0]) == 0.0  # 8 steps per env: replay not warm yet
    for h in history[1:]:
        for name in ("wm_loss", "obs_loss", "critic_loss", "entropy", "kl"):
            assert np.all(np.isfinite(h[name])) and np.all(h[name] != 0.0), name
    assert int(state.update_count[0]) == 4
    assert int(state.replay.current_index[0]) == 32  # 4 updates x 8 steps per env written


def test_seeds_under_vmap_with_the_same_key_agree_and_update_compiles_once(cartpole_run):
    _, _, update, state, history = cartpole_run
    for leaf in jax.tree.leaves(state.params):
        np.testing.assert_array_equal(leaf[0], leaf[1])
    np.testing.assert_array_equal(history[-1]["wm_loss"][0], history[-1]["wm_loss"][1])
    assert update._cache_size() == 1


def test_model_lr_decays_over_exactly_the_gradient_steps_a_run_takes(cartpole_run):
    config, _, _, state, _ = cartpole_run
    # 10 updates of 16 env steps; the first trains at 16 collected steps per env (update 1), 2 steps each
    assert config.num_updates == 10 and config.model_gradient_steps == 9 * 2
    is_adam = lambda x: isinstance(x, optax.ScaleByAdamState)  # noqa: E731
    adam = [s for s in jax.tree.leaves(state.opt_states.model, is_leaf=is_adam) if is_adam(s)]
    assert int(adam[0].count[0]) == 3 * 2  # after 4 updates: the schedule's clock is the model's gradient steps

    assert model_learning_rate(config) == config.model_lr
    decaying = DreamerConfig(**{**TINY, "model_lr": 1e-3, "model_lr_end": 1e-4})
    schedule = model_learning_rate(decaying)
    np.testing.assert_allclose(
        [schedule(0), schedule(9), schedule(18), schedule(30)], [1e-3, 5.5e-4, 1e-4, 1e-4], rtol=1e-5
    )
    with pytest.raises(ValueError, match="model_lr_end=0.01 must lie in"):
        DreamerConfig(**{**TINY, "model_lr": 1e-3, "model_lr_end": 1e-2}).validate()


def test_continuous_actions_trace():
    env, params = make_dreamer_env("Pendulum-v1")
    trainer = make_trainer(DreamerConfig(**TINY), env, params)
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    _, metrics = jax.eval_shape(trainer.update, state)
    assert metrics["actor_loss"].shape == ()
    assert state.acting.prev_action.shape == (2, 1)


def test_bad_config_gets_one_sentence():
    env, params = make_dreamer_env("CartPole-v1")
    with pytest.raises(ValueError, match="train_start"):
        make_trainer(DreamerConfig(**{**TINY, "train_start": 4}), env, params)
    with pytest.raises(ValueError, match="less than one update"):
        make_trainer(DreamerConfig(**{**TINY, "total_steps": 4}), env, params)
    with pytest.raises(TypeError, match="BackboneSpec"):
        make_trainer(DreamerConfig(**{**TINY, "world_model": tiny_model(backbone="gru")}), env, params)
    with pytest.raises(ValueError, match="twohot_limit"):
        make_trainer(DreamerConfig(**{**TINY, "world_model": tiny_model(twohot_limit=-1.0)}), env, params)
    with pytest.raises(ValueError, match="critic_twohot_limit"):
        make_trainer(DreamerConfig(**{**TINY, "critic_twohot_limit": 0.0}), env, params)
    with pytest.raises(ValueError, match="policy_inputs='hidden' is not one of"):
        make_trainer(DreamerConfig(**{**TINY, "world_model": tiny_model(policy_inputs="hidden")}), env, params)
    with pytest.raises(ValueError, match="KV cache"):
        tiny_model(policy_inputs="state", backbone=BackboneSpec("transformer", 16))
    with pytest.raises(TypeError, match="not a registered world-model config"):
        DreamerConfig(**{**TINY, "world_model": {"name": "rssm"}})
    for name in ("model_lr", "actor_lr", "critic_lr"):
        with pytest.raises(ValueError, match=f"{name} must be a positive number"):
            DreamerConfig(**{**TINY, name: float("nan")})


def test_policy_inputs_choose_what_the_actor_reads():
    """``state`` and ``full`` hand the actor the SSM's complex state as symlog real and imaginary parts."""
    n, width, layers, size, latent = 3, 8, 2, 4, 16
    states = jax.random.normal(jax.random.key(0), (layers, 2, n, size))
    carry = ModelCarry(tuple(jax.lax.complex(states[i, 0], 10.0 * states[i, 1]) for i in range(layers)), jnp.ones((n, latent)))
    state = LatentState(jnp.full((n, width), 2.0), carry.latent)
    memory = jnp.concatenate([symlog(p) for i in range(layers) for p in (states[i, 0], 10.0 * states[i, 1])], axis=-1)
    np.testing.assert_array_equal(policy_features("output")(state, carry), state.features())
    np.testing.assert_allclose(policy_features("state")(state, carry), jnp.concatenate([memory, state.z], -1), rtol=1e-6)
    full = policy_features("full")(state, carry)
    np.testing.assert_allclose(full, jnp.concatenate([state.h, memory, state.z], -1), rtol=1e-6)

    env, params = make_dreamer_env("CartPole-v1")
    s5 = BackboneSpec("s5", width, (("num_layers", layers), ("state_size", size)))
    config = DreamerConfig(**{**TINY, "world_model": tiny_model(backbone=s5, policy_inputs="full")})
    trainer = make_trainer(config, env, params)
    runner_state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    first_layer = jax.tree.leaves(runner_state.params.actor)
    # S5 keeps size // 2 complex modes per layer (conjugate symmetry), each as a real and an imaginary feature
    inputs = width + layers * 2 * (size // 2) + config.world_model.latent_groups * config.world_model.latent_classes
    assert any(leaf.shape == (inputs, config.actor_critic_hidden) for leaf in first_layer)
    _, metrics = jax.eval_shape(trainer.update, runner_state)
    assert metrics["actor_loss"].shape == ()


def run_values(tmp_path, **agent):
    return {
        "name": "dreamer-test",
        "total_steps": 64,
        "seeds": 1,
        "run_dir": str(tmp_path / "run"),
        "progress": False,
        "checkpoint_every": 0,
        "agent": {"name": "dreamer", **agent},
        "backbone": {"name": "gru", "features": 16},
        "world_model": {"name": "rssm", **{k: v for k, v in TINY_MODEL.items() if k != "backbone"}},
        "env": {"name": "CartPole-v1"},
    }


def test_the_runner_trains_dreamer_into_a_run_folder(tmp_path):
    agent = {k: v for k, v in TINY.items() if k not in ("total_steps", "world_model")}
    config = run_config_from_dict(run_values(tmp_path, **agent))
    assert config.agent.world_model == TINY["world_model"] and config.backbone == BackboneSpec("gru", 16)
    result = run(config)
    for name in ("config.yaml", "metrics.csv", "summary.json", "curves.png", "checkpoint"):
        assert (result.run_dir / name).exists(), name
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["agent"] == "dreamer" and summary["status"] == "finished" and "final_return_mean" in summary
    assert summary["env_steps"] == 64.0
    with pytest.raises(ConfigError, match="sequence_length"):
        run_config_from_dict(run_values(tmp_path, **{**agent, "train_start": 2}))
