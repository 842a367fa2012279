"""Slow learning checks for the Dreamer agent (``pytest -m slow tests/test_dreamer_learning.py``).

Budgets: CartPole-v1 within 100k env steps (the issue's target: mean return
>= 400); popgym/RepeatPreviousEasy with an S5 world model within 100k env steps
(target: mean return > 0.9; trained at train ratio 64, model lr 1e-3 on
64-step windows, with one-hot cards, entropy bonus 3e-3, two-hot bins over
[-1, 1] in symlog space, 2 free nats, and actor and critic reading the S5
state besides its output). Both use a small model (GRU/S5 of 128,
8 x 8 latents, MLPs of 2 x 128) on one seed. CartPole trains at 64 replayed steps
per env step: at DreamerV3's default of 32 the same agent reached 341 at 100k
steps (still climbing), at 64 it holds about 500 from 65k steps on.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from mnemax.agents.dreamer import DreamerConfig, make_dreamer_env, make_train
from mnemax.backbones import BackboneSpec
from mnemax.worldmodels.sequence_model import WorldModelConfig

SMALL = dict(
    num_envs=4,
    steps_per_update=16,
    train_ratio=32,
    batch_size=16,
    sequence_length=32,
    replay_capacity=200_000,
    train_start=256,
    actor_critic_hidden=128,
    actor_critic_layers=2,
    model_lr=3e-4,
    actor_lr=1e-4,
    critic_lr=1e-4,
)
SMALL_MODEL = dict(latent_groups=8, latent_classes=8, hidden=128, layers=2)


def final_return(env_name: str, config: DreamerConfig, last_updates: int) -> float:
    """Mean episode return over the last ``last_updates`` updates of one seed."""
    env, params = make_dreamer_env(env_name)
    _, metrics = jax.jit(make_train(config, env, params))(jax.random.PRNGKey(0))
    returns = np.asarray(metrics["episode_return"])[-last_updates:]
    return float(np.nanmean(returns))


@pytest.mark.slow
def test_dreamer_solves_cartpole_within_100k_steps():
    world_model = WorldModelConfig(backbone=BackboneSpec("gru", 128), **SMALL_MODEL)
    # Tuned and passed with the returns bootstrapped from the slow critic and no pull towards it (the defaults then).
    options = {**SMALL, "train_ratio": 64, "slow_target": True, "slow_regularizer": 0.0}
    config = DreamerConfig(total_steps=100_000, world_model=world_model, **options)
    assert final_return("CartPole-v1", config, last_updates=50) >= 400.0


@pytest.mark.slow
def test_dreamer_with_s5_solves_repeat_previous_easy_within_100k_steps():
    backbone = BackboneSpec("s5", 128, (("num_layers", 2), ("state_size", 64)))
    # The world model alone leaves its reward plateau after 5.5k-7k updates at lr 1e-3 on 64-step windows
    # (docs/WORLDMODELS.md); train ratio 64 gives it 12.5k updates within the budget. Cards are one-hot
    # (make_dreamer_env's default for card games).
    # DreamerV3's entropy bonus of 3e-4 lets the policy collapse onto one suit before the reward head has
    # separated right from wrong guesses; 3e-3 keeps it uniform until then. Two-hot bins over [-1, 1] in
    # symlog space resolve the +-1/48 rewards, and 2 free nats let the posterior carry the whole suit
    # (1.39 nats) without a KL penalty (docs/WORLDMODELS.md, "the agent" and "the KL budget").
    # The actor and critic read the S5 state as well as its output: the output is trained for the reward of
    # the previous action, the state holds the card the next action must name (docs/WORLDMODELS.md, "the
    # policy reads the SSM state").
    # lambda 0.5 instead of 0.95: a guess here pays only its own reward, so the later rewards a long
    # lambda-return adds to its advantage are noise; with 0.95 the return plateaued or fell back below 0.9
    # (docs/WORLDMODELS.md, "the advantage's horizon").
    # Tuned with the returns bootstrapped from the slow critic and no pull towards it (the defaults then).
    options = {
        **SMALL,
        "slow_target": True,
        "slow_regularizer": 0.0,
        "train_ratio": 64,
        "sequence_length": 64,
        "model_lr": 1e-3,
        "entropy_coef": 3e-3,
        "critic_twohot_limit": 1.0,
        "lam": 0.5,
    }
    world_model = WorldModelConfig(backbone=backbone, twohot_limit=1.0, free_nats=2.0, policy_inputs="full", **SMALL_MODEL)
    config = DreamerConfig(total_steps=100_000, world_model=world_model, **options)
    assert final_return("popgym/RepeatPreviousEasy", config, last_updates=50) > 0.9
