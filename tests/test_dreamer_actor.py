"""Dreamer's actor learns the right action: one-step tasks whose best action is known, and the clipped-action likelihood.

The update test in ``test_dreamer.py`` checks that losses are finite; these
check their direction. A two-armed bandit (``pytest`` fast suite) fails when
the actor's policy gradient has the wrong sign; a continuous task with reward
``-(a - 0.7)^2`` (slow) fails when the actor does not converge to 0.7.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import struct
from gymnax.environments import environment, spaces

from mnemax.agents.actor_critic import Actor, action_distribution, taken_log_prob
from mnemax.agents.dreamer import DreamerConfig, make_train
from mnemax.backbones import BackboneSpec
from mnemax.worldmodels.registry import make_world_model
from mnemax.worldmodels.sequence_model import WorldModelConfig

BEST_ACTION = 0.7
BANDIT_STEPS = 1_000


@struct.dataclass
class OneStepState(environment.EnvState):
    pass


class OneStep(environment.Environment):
    """Observation ``[1]``, one action, then the episode terminates (observation ``[-1]``).

    Discrete: two actions, reward 1 for action 1 and 0 for action 0.
    Continuous: ``a`` in ``[-1, 1]``, reward ``-(a - 0.7)^2``.
    """

    def __init__(self, discrete: bool):
        super().__init__()
        self.discrete = discrete

    @property
    def default_params(self) -> environment.EnvParams:
        return environment.EnvParams(max_steps_in_episode=10)

    def step_env(self, key, state, action, params):
        reward = (action == 1).astype(jnp.float32) if self.discrete else -jnp.square(action[0] - BEST_ACTION)
        return -jnp.ones(1), OneStepState(time=state.time + 1), reward, jnp.array(True), {}

    def reset_env(self, key, params):
        return jnp.ones(1), OneStepState(time=0)

    def action_space(self, params=None):
        return spaces.Discrete(2) if self.discrete else spaces.Box(-1.0, 1.0, (1,))

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


def small_config(total_steps: int) -> DreamerConfig:
    """A small Dreamer with fast actor and critic learning rates (the defaults are DreamerV3's 3e-5)."""
    return DreamerConfig(
        total_steps=total_steps, num_envs=4, steps_per_update=8, train_ratio=16, batch_size=8, sequence_length=8,
        replay_capacity=4000, train_start=16, actor_critic_hidden=32, actor_critic_layers=1, critic_bins=31,
        critic_twohot_limit=1.0, horizon=2, actor_lr=3e-3, critic_lr=3e-3, model_lr=1e-3,
        world_model=WorldModelConfig(
            backbone=BackboneSpec("gru", 16), latent_groups=4, latent_classes=4, hidden=32, layers=1, num_bins=31,
            twohot_limit=1.0,
        ),
    )


def policy_at_start(config: DreamerConfig, discrete: bool, keys: jax.Array):
    """Train one vmapped seed per key on :class:`OneStep`; the actor's outputs at the first observation, ``[seeds, ...]``."""
    env = OneStep(discrete)
    state, metrics = jax.jit(jax.vmap(make_train(config, env, env.default_params)))(keys)
    action_size = 2 if discrete else 1
    world_model = make_world_model(config.world_model, (1,), action_size)
    actor = Actor(action_size, discrete, config.actor_critic_hidden, config.actor_critic_layers)

    def outputs(params):
        start = world_model.observe_step(params.model, world_model.initial_state(1), jnp.ones((1, 1)),
                                         jnp.zeros((1, action_size)), jnp.ones((1,), bool), jax.random.key(0))
        return actor.apply(params.actor, world_model.features(start))

    return jax.vmap(outputs)(state.params), metrics


def test_actor_learns_the_better_arm_of_a_bandit():
    """A sign error anywhere in the actor's gradient (advantage, log-prob, loss) sends it to the worse arm."""
    config = small_config(BANDIT_STEPS)
    logits, _ = policy_at_start(config, discrete=True, keys=jax.random.split(jax.random.key(0), 2))
    probability = np.asarray(action_distribution(True, logits, config.actor_unimix).probs)[:, 0, 1]
    assert np.all(probability > 0.9), f"probability of the rewarded arm per seed: {probability}"


@pytest.mark.slow
def test_continuous_actor_mean_converges_to_the_best_action():
    """4000 env steps; settings chosen on keys split from 0 (first three), checked on keys 3, 4 and 5.

    Measured actor means: 0.665, 0.681, 0.734 | 0.800, 0.552, 0.999, with the
    std at its floor of 0.1 on all six; the mean returns of the last 3 updates
    were -0.008 to -0.078 against -0.4 to -2.0 in the first 3. Two of the six
    miss 0.7 by more than 0.1: one seed's mean drifted to the bound while the
    std was large (where the optimum lies beyond 1) and the tanh that bounds the
    mean saturates there. The check asserts what held on all six.
    """
    keys = jnp.stack([*jax.random.split(jax.random.key(0), 3), *(jax.random.key(s) for s in (3, 4, 5))])
    (mean, _), metrics = policy_at_start(small_config(4_000), discrete=False, keys=keys)
    mean = np.asarray(mean)[:, 0, 0]
    returns = np.asarray(metrics["episode_return"])
    first, last = np.nanmean(returns[:, :3], axis=1), np.nanmean(returns[:, -3:], axis=1)
    assert np.all(np.abs(mean - BEST_ACTION) < 0.35) and abs(np.mean(mean) - BEST_ACTION) < 0.1, f"actor means {mean}"
    assert np.all(last > -0.1) and np.all(first < -0.3), f"returns first {first}, last {last}"


def test_clipped_action_likelihood_is_the_censored_normal():
    """Clipped coordinates carry the probability of their tail: the likelihood integrates to one over [-1, 1]."""
    mean, std = jnp.array([[0.8, -0.3]]), jnp.array([[0.5, 0.9]])
    dist = distrax.MultivariateNormalDiag(mean, std)
    inner = jnp.linspace(-1.0, 1.0, 20_001)[1:-1]
    for axis in range(2):
        other = jnp.zeros_like(inner)  # the other coordinate inside the box, so its density factors out
        points = jnp.stack([inner, other] if axis == 0 else [other, inner], -1)[:, None, :]
        edges = jnp.array([[-1.0, 0.0], [1.0, 0.0]] if axis == 0 else [[0.0, -1.0], [0.0, 1.0]])[:, None, :]
        other_density = jnp.exp(distrax.Normal(mean[0, 1 - axis], std[0, 1 - axis]).log_prob(0.0))
        density = jnp.exp(taken_log_prob(False, dist, points))[:, 0] / other_density
        masses = jnp.exp(taken_log_prob(False, dist, edges))[:, 0] / other_density
        total = jnp.sum(density) * (inner[1] - inner[0]) + jnp.sum(masses)
        assert float(total) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("censored", [True, False])
def test_policy_gradient_with_clipped_actions_finds_the_true_optimum(censored):
    """REINFORCE on ``E[-(clip(a) - 0.7)^2]``, ``a ~ N(mu, 0.5)``: the best ``mu`` is about 1.33 (clipping caps the loss above).

    Actions are drawn outside the differentiated loss, as in Dreamer's
    imagination. The censored likelihood's gradient is unbiased and settles at
    the optimum; the Normal's density taken at the clipped action settles
    near 1.6 (its expected gradient vanishes there).
    """
    std, target, batch = 0.5, BEST_ACTION, 4096
    noise = np.random.default_rng(0).normal(size=200_000)
    grid = np.linspace(0.5, 3.0, 251)
    best = grid[np.argmax([-np.mean((np.clip(m + std * noise, -1, 1) - target) ** 2) for m in grid])]
    optimizer = optax.adam(0.02)

    def step(carry, key):
        mu, opt_state = carry
        action = jnp.clip(mu + std * jax.random.normal(key, (batch, 1)), -1.0, 1.0)
        advantage = -jnp.square(action[:, 0] - target)
        advantage = advantage - jnp.mean(advantage)

        def loss(mu):
            dist = distrax.MultivariateNormalDiag(jnp.broadcast_to(mu, (batch, 1)), jnp.full((batch, 1), std))
            log_prob = taken_log_prob(False, dist, action) if censored else dist.log_prob(action)
            return -jnp.mean(log_prob * advantage)

        updates, opt_state = optimizer.update(jax.grad(loss)(mu), opt_state)
        mu = optax.apply_updates(mu, updates)
        return (mu, opt_state), mu[0]

    mu = jnp.zeros(1)
    _, path = jax.jit(lambda keys: jax.lax.scan(step, (mu, optimizer.init(mu)), keys))(
        jax.random.split(jax.random.key(0), 1500)
    )
    settled = float(jnp.mean(path[-500:]))
    if censored:
        assert abs(settled - best) < 0.1, f"mu settled at {settled:.3f}, optimum {best:.3f}"
    else:
        assert settled - best > 0.15, f"mu settled at {settled:.3f}, optimum {best:.3f}"
