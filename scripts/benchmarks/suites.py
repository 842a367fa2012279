"""JAX environment suites' throughput: random-policy steps per second, as in the envs section.

One environment per suite of ``mnemax.envs.registry.SUITES`` (Craftax,
Navix, XLand-MiniGrid, POPGym Arcade) at its default options, ``num_envs``
vmapped copies under ``lax.scan``, auto-reset included; a suite that is not
installed gets a row saying so. Its own section, so that measuring the suites
does not rerun the envs section's forty environments.
"""

from __future__ import annotations

from mnemax.envs import registry

from .envs import throughput_row
from .timing import Table

# Full Craftax is left out: gymnax's auto-reset builds a fresh episode on every step, and Craftax's reset
# generates nine floors of world, so 1024 copies ran for minutes per call on two cores.
SUITE_ENVS = [
    "craftax/Craftax-Classic-Symbolic-v1",
    "navix/Navix-DoorKey-8x8-v0",
    "xminigrid/XLand-MiniGrid-R1-9x9",
    "popgym_arcade/CountRecallEasy",
]


def run(quick: bool) -> list[Table]:
    num_envs, num_steps = (8, 4) if quick else (1024, 32)
    table = Table(
        title=f"JAX suites (craftax/, navix/, xminigrid/, popgym_arcade/), {num_envs} vmapped copies x {num_steps} scanned steps",
        columns=["env", "steps/s", "compile s", "peak MB"],
        note="Random actions, auto-reset included, each suite's own observation (POPGym Arcade: 128 x 128 x 3 uint8 pixels).",
    )
    installed = {suite.prefix: suite.env_ids() for suite in registry.SUITES}
    for name in SUITE_ENVS:
        prefix, _, env_id = name.partition("/")
        if env_id not in installed[prefix + "/"]:
            table.rows.append([name, "not installed", "", ""])
            continue
        table.rows.append(throughput_row(name, num_envs, num_steps, repeats=3))
        print(table.rows[-1], flush=True)
    return [table]
