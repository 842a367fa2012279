"""JAX environment suites' throughput: random-policy steps per second, as in the envs section.

One or two environments per suite of ``mnemax.envs.registry.SUITES``
(Craftax, Navix, XLand-MiniGrid, POPGym Arcade) at their default options,
vmapped copies under ``lax.scan`` from a reset done beforehand (Craftax's
first reset of 1024 copies alone takes a minute), auto-reset included; a suite that is not
installed gets a row saying so. Craftax's reset generates a world, which
costs far more than a step: its adapter resets optimistically
(``mnemax.envs.auto_reset``, ``reset_ratio=16``), and two more rows of
Craftax-Classic show what that saves: ``reset_ratio=1`` (a world of its own
for every copy, the cost of gymnax's auto-reset) and the suite's own
``step_env`` with no auto-reset at all. Its own section, so that measuring
the suites does not rerun the envs section's forty environments.
"""

from __future__ import annotations

from typing import Any

from mnemax.envs import make, registry

from .envs import throughput_row
from .timing import Table

# (id, copies, make() options, label suffix, auto-reset): 1024 copies except where a 32-step call would take minutes.
SUITE_ENVS = [
    ("craftax/Craftax-Classic-Symbolic-v1", 1024, {}, "", True),
    ("craftax/Craftax-Classic-Symbolic-v1", 64, {"reset_ratio": 1}, " (reset_ratio=1)", True),
    ("craftax/Craftax-Classic-Symbolic-v1", 1024, {}, " (no auto-reset)", False),
    ("craftax/Craftax-Symbolic-v1", 256, {}, "", True),
    ("navix/Navix-DoorKey-8x8-v0", 1024, {}, "", True),
    ("xminigrid/XLand-MiniGrid-R1-9x9", 1024, {}, "", True),
    ("popgym_arcade/CountRecallEasy", 1024, {}, "", True),
]


class WithoutAutoReset:
    """``env`` whose ``step`` is its ``step_env``: episodes run on past their end and nothing is reset."""

    def __init__(self, env: Any):
        self.env = env

    def reset(self, key, params):
        return self.env.reset(key, params)

    def action_space(self, params):
        return self.env.action_space(params)

    def step(self, key, state, action, params):
        obs, state, reward, terminated, info = self.env.step_env(key, state, action, params)
        return obs, state, reward, terminated, terminated, info


def run(quick: bool) -> list[Table]:
    num_steps = 4 if quick else 32
    table = Table(
        title=f"JAX suites (craftax/, navix/, xminigrid/, popgym_arcade/), vmapped copies x {num_steps} scanned steps",
        columns=["env", "copies", "steps/s", "compile s", "peak MB"],
        note=(
            "Random actions from freshly reset copies (the first reset is not timed), auto-reset included, each suite's own observation (POPGym Arcade: 128 x 128 x 3 uint8 "
            "pixels). Craftax resets optimistically (one fresh world per 16 copies per step, mnemax.envs.auto_reset); "
            "'reset_ratio=1' gives every copy that ended a world of its own, as gymnax's auto-reset does, and "
            "'no auto-reset' steps with Craftax's step_env only."
        ),
    )
    installed = {suite.prefix: suite.env_ids() for suite in registry.SUITES}
    for name, copies, options, suffix, auto_reset in SUITE_ENVS:
        copies = min(copies, 8) if quick else copies
        prefix, _, env_id = name.partition("/")
        if env_id not in installed[prefix + "/"]:
            table.rows.append([name + suffix, copies, "not installed", "", ""])
            continue
        env, params = make(name, **options)
        env = env if auto_reset else WithoutAutoReset(env)
        row = throughput_row(name + suffix, copies, num_steps, repeats=3, env=env, params=params, time_reset=False)
        table.rows.append([row[0], copies, *row[1:]])
        print(table.rows[-1], flush=True)
    return [table]
