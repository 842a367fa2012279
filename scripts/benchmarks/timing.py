"""Timing and memory measurement shared by every benchmark section."""

from __future__ import annotations

import dataclasses
import statistics
import time
from typing import Any, Callable, Sequence

import jax


@dataclasses.dataclass
class Measurement:
    """One jitted function measured: compile time, run time and XLA's peak-memory estimate."""

    compile_seconds: float
    median_seconds: float
    peak_bytes: int | None
    best_seconds: float  # the fastest repeat: the machine's unloaded speed, for rate bounds
    seconds: list[float] = dataclasses.field(default_factory=list)  # every timed call, in order


def _compile(fn: Callable, *args: Any) -> tuple[Callable, float, int | None]:
    """``jax.jit(fn)`` compiled ahead of time for ``args``: ``(compiled, compile seconds, peak bytes)``.

    Compile time is lowering plus XLA compilation (no run is mixed in). Peak
    memory is XLA's buffer assignment for the program (arguments + outputs +
    temporaries), which holds on every backend; CPU devices report no runtime
    allocator statistics.
    """
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_seconds = time.perf_counter() - start
    peak = None
    analysis = compiled.memory_analysis()
    if analysis is not None:
        peak = int(
            analysis.argument_size_in_bytes
            + analysis.output_size_in_bytes
            + analysis.temp_size_in_bytes
            - analysis.alias_size_in_bytes
        )
    return compiled, compile_seconds, peak


def _timed_call(compiled: Callable, args: tuple) -> float:
    start = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    return time.perf_counter() - start


def _measurement(compile_seconds: float, peak: int | None, times: list[float]) -> Measurement:
    return Measurement(compile_seconds, statistics.median(times), peak, min(times), times)


def measure(fn: Callable, *args: Any, repeats: int = 5, min_seconds: float = 0.0, warmup: bool = True) -> Measurement:
    """Compile ``jax.jit(fn)`` for ``args``, warm it up once (unless ``warmup`` is false: for
    calls that take minutes), then time ``repeats`` calls.

    With ``min_seconds`` the repeats continue until that much time has been
    spent, so fast functions get enough samples for a stable median.
    """
    compiled, compile_seconds, peak = _compile(fn, *args)
    if warmup:
        jax.block_until_ready(compiled(*args))
    times: list[float] = []
    while len(times) < repeats or sum(times) < min_seconds:
        times.append(_timed_call(compiled, args))
    return _measurement(compile_seconds, peak, times)


def measure_interleaved(cases: Sequence[tuple[Callable, tuple]], rounds: int = 5, min_seconds: float = 0.0) -> list[Measurement]:
    """Time several jitted functions call after call: one call of each per round, for at least ``rounds``
    rounds and until every function has run ``min_seconds``.

    Round ``i`` of every returned ``Measurement.seconds`` was measured at
    nearly the same moment, so the per-round ratio of two cases rides out a
    machine whose speed drifts; that ratio's spread is the honest error bar of
    a comparison between libraries.
    """
    compiled = [_compile(fn, *args) for fn, args in cases]
    for (program, _, _), (_, args) in zip(compiled, cases):
        jax.block_until_ready(program(*args))  # warm-up
    times: list[list[float]] = [[] for _ in cases]
    while len(times[0]) < rounds or min(sum(t) for t in times) < min_seconds:
        for (program, _, _), (_, args), record in zip(compiled, cases, times):
            record.append(_timed_call(program, args))
    return [_measurement(seconds, peak, record) for (_, seconds, peak), record in zip(compiled, times)]


@dataclasses.dataclass
class Table:
    """A titled markdown table; ``note`` is printed under it (settings, ratios)."""

    title: str
    columns: Sequence[str]
    rows: list[Sequence[Any]] = dataclasses.field(default_factory=list)
    note: str = ""

    def markdown(self) -> str:
        def cell(value: Any) -> str:
            if isinstance(value, float):
                return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
            return str(value)

        lines = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |"]
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines) + "\n"


def megabytes(num_bytes: int | None) -> str:
    return "n/a" if num_bytes is None else f"{num_bytes / 2**20:,.1f}"


def gigaflops(fn: Callable, *args: Any) -> float:
    """XLA's count of floating-point operations in one call of ``jax.jit(fn)(*args)``, in GFLOP."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax returns one dict per device
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan"))) / 1e9
