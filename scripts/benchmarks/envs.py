"""Environment throughput: random-policy steps per second of vmapped copies under ``lax.scan``.

Each env runs ``num_envs`` copies (``jax.vmap``) for ``num_steps`` steps
(``lax.scan``) with actions sampled from its action space, auto-reset
included, inside one jitted function; steps/s counts env transitions
(``num_envs * num_steps`` per call).
"""

from __future__ import annotations

from typing import Any

import jax

from mnemax.envs import make
from mnemax.envs.memory import MEMORY_ENVS, scripted_policy
from mnemax.envs.popgym import POPGYM_ENVS

from .timing import Table, measure, megabytes

# Cheap gymnax envs, one or two per family (MinAtar and MNIST are the costly ones).
GYMNAX = ["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "MountainCar-v0", "Catch-bsuite", "MemoryChain-bsuite", "DeepSea-bsuite", "FourRooms-misc", "Breakout-MinAtar"]
BRAX = ["brax/inverted_pendulum"]
QUICK = ["CartPole-v1", "popgym/RepeatPreviousEasy", "brax/inverted_pendulum"]


def random_rollout(env: Any, params: Any, num_envs: int, num_steps: int, policy: Any = None):
    """``key -> (total reward [num_envs], last observations)``: ``num_envs`` copies reset, then stepped ``num_steps`` times.

    The observations are returned so that XLA cannot drop the dynamics when the
    reward does not depend on them (inverted_pendulum pays 1 every step).
    ``policy(key, state) -> action`` replaces the uniform random actions (the
    memory suite's scripted data policy).
    """
    steps = random_steps(env, params, num_envs, num_steps, policy)

    def run(key: jax.Array) -> jax.Array:
        first_obs, state = reset_copies(env, params, num_envs)(key)
        return steps(key, state, first_obs)

    return run


def reset_copies(env: Any, params: Any, num_envs: int):
    """``key -> (observations, states)`` of ``num_envs`` freshly reset copies."""
    return lambda key: jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, num_envs), params)


def random_steps(env: Any, params: Any, num_envs: int, num_steps: int, policy: Any = None):
    """``(key, states, observations) -> (total reward, last observations)``: the stepping half of :func:`random_rollout`."""

    def run(key: jax.Array, state: Any, first_obs: Any) -> jax.Array:
        def body(carry, step_key):
            state, total, _ = carry
            action_keys, step_keys = jax.random.split(step_key, (2, num_envs))
            if policy is None:
                actions = jax.vmap(env.action_space(params).sample)(action_keys)
            else:
                actions = jax.vmap(policy)(action_keys, state)
            obs, state, reward, _, _, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(step_keys, state, actions, params)
            return (state, total + reward, obs), None

        carry = (state, jax.numpy.zeros(num_envs), first_obs)
        (_, total, last_obs), _ = jax.lax.scan(body, carry, jax.random.split(key, num_steps))
        return total, last_obs

    return run


def throughput_row(
    name: str, num_envs: int, num_steps: int, repeats: int, env: Any = None, params: Any = None, time_reset: bool = True
) -> list[Any]:
    """``[name, steps/s, compile s, peak MB]`` of :func:`random_rollout` on ``make(name)`` (or on ``env``).

    With ``time_reset=False`` the copies are reset once beforehand and only the
    steps are timed (Craftax's first reset of 1024 copies alone takes a minute).
    """
    if env is None:
        env, params = make(name)
    if time_reset:
        result = measure(random_rollout(env, params, num_envs, num_steps), jax.random.PRNGKey(0), repeats=repeats)
    else:
        obs, state = jax.jit(reset_copies(env, params, num_envs))(jax.random.PRNGKey(1))
        result = measure(random_steps(env, params, num_envs, num_steps), jax.random.PRNGKey(0), state, obs, repeats=repeats)
    return [name, num_envs * num_steps / result.median_seconds, result.compile_seconds, megabytes(result.peak_bytes)]


def run(quick: bool) -> list[Table]:
    num_envs, num_steps = (8, 16) if quick else (1024, 128)
    names = QUICK if quick else [*GYMNAX, *(f"popgym/{name}" for name in POPGYM_ENVS), *BRAX]
    table = Table(
        title=f"Random-policy throughput, {num_envs} vmapped copies x {num_steps} scanned steps",
        columns=["env", "steps/s", "compile s", "peak MB"],
        note="Auto-reset included (gymnax resets every copy on every step and selects). Brax uses its default backend.",
    )
    for name in names:
        table.rows.append(throughput_row(name, num_envs, num_steps, repeats=3 if quick else 5))
        print(table.rows[-1], flush=True)
    return [table, memory_suite(quick)]


def memory_suite(quick: bool) -> Table:
    """The memory suite (32 x 32 x 3 pixel frames) at its default sizes, random and scripted actions."""
    num_envs, num_steps = (8, 16) if quick else (256, 128)
    table = Table(
        title=f"Memory suite (memory/*), {num_envs} vmapped copies x {num_steps} scanned steps",
        columns=["env", "random steps/s", "scripted steps/s", "compile s"],
        note="Pixel observations rendered every step; auto-reset included; scripted = the data policy of make_dataset.py.",
    )
    for name in ["TwoRooms"] if quick else MEMORY_ENVS:
        env, params = make(f"memory/{name}")
        random = measure(random_rollout(env, params, num_envs, num_steps), jax.random.PRNGKey(0), repeats=3)
        scripted = measure(random_rollout(env, params, num_envs, num_steps, scripted_policy), jax.random.PRNGKey(0), repeats=3)
        steps = num_envs * num_steps
        table.rows.append([f"memory/{name}", steps / random.median_seconds, steps / scripted.median_seconds, random.compile_seconds])
        print(table.rows[-1], flush=True)
    return table

