"""Benchmarks: ``python scripts/benchmark.py [backbones|envs|suites|ppo|worldmodels|ebwm ...] [--quick]``.

Each section prints its tables and replaces its own part of
``docs/BENCHMARKS.md``, headed by the machine it ran on, so that figures from
different machines are never mixed in one table.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mnemax.experiment.markdown import replace_section  # noqa: E402
from mnemax.experiment.runtime import configure_jax, machine_description  # noqa: E402

SECTIONS = ("backbones", "envs", "suites", "ppo", "worldmodels", "ebwm")
DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def write_section(name: str, body: str) -> None:
    """Replace the ``<!-- section -->`` block of docs/BENCHMARKS.md, keeping the others."""
    replace_section(DOC, name, body, "# Benchmarks\n\nWritten by `python scripts/benchmark.py SECTION`.\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=f"any of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="small shapes, for checking that the script runs")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    args = parser.parse_args()
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    # A fresh, empty compilation cache: compile seconds are real compilations, not cache reads.
    with tempfile.TemporaryDirectory(prefix="mnemax-benchmark-cache-") as cache:
        configure_jax(cache)
        run_sections(args.sections or SECTIONS, quick=args.quick, write=not (args.no_write or args.quick))


def run_sections(sections: list[str], quick: bool, write: bool) -> None:
    """Run each section, print its tables and (with ``write``) put them into docs/BENCHMARKS.md."""
    machine = machine_description()
    stamp = datetime.date.today().isoformat()
    for name in sections:
        module = importlib.import_module(f"benchmarks.{name}")
        tables = module.run(quick=quick)
        body = f"## {name}\n\nMachine: {machine}. Measured {stamp} with `python scripts/benchmark.py {name}`.\n\n"
        body += "\n".join(table.markdown() for table in tables)
        print(body)
        if write:
            write_section(name, body)


if __name__ == "__main__":
    main()
