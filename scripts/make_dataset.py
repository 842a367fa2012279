"""Roll out a memory task's scripted data policy into a dataset file for world-model training.

    python scripts/make_dataset.py memory/FourRooms --episodes 512
    python scripts/make_dataset.py memory/TenRooms --episodes 64 --out data/ten.npz --set episode_length=1000 --set context_length=500

Episodes are rolled out under jit + vmap, ``--batch-size`` at a time, and
written time-major (``obs [T, N, 32, 32, 3]`` uint8, ``action``, ``reward``,
``reset``, ``position``; see :mod:`mnemax.envs.memory.dataset`) to an
``.npz`` whose header records the env name, its options, the seed and the
format version. Read it back with ``mnemax.envs.memory.dataset.load``.
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
import time
from typing import Any


def parse_option(text: str) -> tuple[str, Any]:
    """``"name=value"`` -> ``(name, value)``, the value read as a Python literal when it is one."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"--set expects name=value (e.g. episode_length=1000), got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env", help="a memory task, memory/<Name> (mnemax.envs.memory.MEMORY_ENVS)")
    parser.add_argument("--episodes", type=int, required=True, help="number of episodes to write")
    parser.add_argument("--out", default=None, help="output .npz (default: data/<Name>-<episodes>-seed<seed>.npz)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64, help="episodes rolled out per jitted call")
    parser.add_argument("--set", dest="options", action="append", default=[], type=parse_option, metavar="NAME=VALUE",
                        help="an environment option (repeatable), e.g. --set episode_length=1000")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes must be a positive integer, got {args.episodes}")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be a positive integer, got {args.batch_size}")
    return args


def main(argv: list[str] | None = None) -> str:
    """Write the dataset and return its path."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from mnemax.experiment.runtime import configure_jax

    configure_jax()
    from mnemax.envs import make
    from mnemax.envs.memory import MEMORY_ENVS
    from mnemax.envs.memory import dataset as memory_dataset

    prefix = "memory/"
    task = args.env[len(prefix) :] if args.env.startswith(prefix) else None
    if task not in MEMORY_ENVS:
        names = ", ".join(prefix + name for name in MEMORY_ENVS)
        raise SystemExit(f"make_dataset.py: {args.env!r} is not a memory task with a scripted data policy; choose one of {names}.")
    options = dict(args.options)
    try:
        env, params = make(args.env, **options)
    except (TypeError, ValueError) as error:
        raise SystemExit(f"make_dataset.py: {error}") from None
    out = args.out or os.path.join("data", f"{task}-{args.episodes}-seed{args.seed}.npz")
    start = time.perf_counter()
    arrays = memory_dataset.collect(env, params, args.episodes, seed=args.seed, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    header = memory_dataset.make_header(args.env, options, env, args.seed, arrays)
    memory_dataset.save(out, memory_dataset.MemoryDataset(arrays, header))
    steps = args.episodes * env.episode_length
    print(
        f"{out}: {args.episodes} episodes x {env.episode_length} steps of {args.env} "
        f"(context {env.context_length}) in {seconds:.1f} s including compilation ({steps / seconds:,.0f} steps/s), "
        f"{os.path.getsize(out) / 2**20:.1f} MiB"
    )
    return out


if __name__ == "__main__":
    main()
