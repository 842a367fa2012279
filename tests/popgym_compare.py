"""Random-policy statistics of a POPGym env: the JAX port against the original package.

Both sides play uniformly random actions for whole episodes and report the
mean and standard deviation of the episode return and the mean length; tests
compare the two within sampling error.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mnemax.envs.popgym import POPGYM_ENVS


@dataclasses.dataclass
class EpisodeStats:
    returns: np.ndarray  # [episodes]
    lengths: np.ndarray  # [episodes]

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def mean_length(self) -> float:
        return float(self.lengths.mean())

    def return_standard_error(self) -> float:
        return float(self.returns.std(ddof=1) / np.sqrt(len(self.returns)) + 1e-12)


def original_random_stats(name: str, episodes: int, seed: int = 0) -> EpisodeStats:
    """Play ``episodes`` random episodes of ``popgym.envs.<name>`` (gymnasium API)."""
    module = pytest.importorskip("popgym.envs", reason="comparing with the original needs the popgym package")
    env = getattr(module, name)()
    env.action_space.seed(seed)
    returns, lengths = [], []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, length, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            length += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
    return EpisodeStats(np.asarray(returns), np.asarray(lengths))


def port_random_stats(name: str, episodes: int, max_steps: int, seed: int = 0) -> EpisodeStats:
    """Play the first episode of ``episodes`` parallel copies of ``popgym/<name>`` with random actions.

    ``max_steps`` bounds the scan; an episode still running then raises, so
    the bound must exceed the env's episode length.
    """
    env, params = POPGYM_ENVS[name]()

    def one_episode(key):
        reset_key, key = jax.random.split(key)
        _, state = env.reset(reset_key, params)

        def step(carry, key):
            state, total, length, done = carry
            action_key, step_key = jax.random.split(key)
            action = env.action_space(params).sample(action_key)
            _, state, reward, terminated, truncated, _ = env.step(step_key, state, action, params)
            live = ~done
            total = total + jnp.where(live, reward, 0.0)
            length = length + live.astype(jnp.int32)
            done = done | terminated | truncated
            return (state, total, length, done), None

        init = (state, jnp.float32(0.0), jnp.int32(0), jnp.bool_(False))
        (_, total, length, done), _ = jax.lax.scan(step, init, jax.random.split(key, max_steps))
        return total, length, done

    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
    totals, lengths, done = jax.jit(jax.vmap(one_episode))(keys)
    if not bool(np.all(done)):
        raise ValueError(f"Some {name} episodes ran longer than max_steps={max_steps}; raise it.")
    return EpisodeStats(np.asarray(totals), np.asarray(lengths))


def assert_same_random_stats(name: str, episodes: int, max_steps: int, z: float = 4.0) -> None:
    """The port's and the original's random-policy returns agree within ``z`` standard errors, lengths likewise."""
    ours = port_random_stats(name, episodes, max_steps)
    theirs = original_random_stats(name, episodes)
    error = np.hypot(ours.return_standard_error(), theirs.return_standard_error())
    assert abs(ours.mean_return - theirs.mean_return) <= z * error + 1e-6, (
        f"{name}: mean random return {ours.mean_return:.4f} (port) vs {theirs.mean_return:.4f} (popgym), "
        f"allowed difference {z * error:.4f}"
    )
    length_error = np.hypot(
        ours.lengths.std(ddof=1) / np.sqrt(episodes), theirs.lengths.std(ddof=1) / np.sqrt(episodes)
    )
    assert abs(ours.mean_length - theirs.mean_length) <= z * length_error + 1e-6, (
        f"{name}: mean episode length {ours.mean_length:.2f} (port) vs {theirs.mean_length:.2f} (popgym)"
    )
