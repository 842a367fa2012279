"""Process-wide JAX settings that mnemax's entry points and tests share.

XLA reads ``XLA_FLAGS`` once, when the first backend starts, so
:func:`configure_jax` must run before the first array is created; importing
jax itself is harmless.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

# A vmapped recurrent PPO can deadlock inside ``block_until_ready`` on small
# CPUs with XLA's concurrency-optimised scheduler; turning it off avoids it.
_CPU_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"

DEFAULT_CACHE_DIR = Path(os.environ.get("MNEMAX_CACHE_DIR", Path.home() / ".cache" / "mnemax" / "jax"))


def configure_jax(cache_dir: str | os.PathLike | None = None, *, min_compile_seconds: float = 0.0) -> Path:
    """Turn on JAX's persistent compilation cache and the CPU scheduler workaround.

    Args:
      cache_dir: where compiled executables are kept between processes
        (default ``~/.cache/mnemax/jax``, or ``$MNEMAX_CACHE_DIR``).
      min_compile_seconds: programs that compile faster than this are not cached.

    Returns:
      The cache directory in use.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if "concurrency_optimized_scheduler" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_CPU_SCHEDULER_FLAG}".strip()
        if _backend_started():
            warnings.warn(
                "configure_jax() ran after JAX's backend started (importing gymnax or mnemax.envs starts it), so "
                "its XLA flag has no effect and vmapped recurrent training may hang on a CPU; call it first.",
                stacklevel=2,
            )

    import jax

    path = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_seconds)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path


def _backend_started() -> bool:
    """Whether JAX has created its backends already (then XLA_FLAGS changes come too late)."""
    import sys

    bridge = sys.modules.get("jax._src.xla_bridge")
    started = getattr(bridge, "backends_are_initialized", None)
    return bool(started()) if callable(started) else False


def machine_description() -> str:
    """One line naming the machine figures were measured on: CPU model and cores, JAX version, device."""
    import platform

    import jax

    device = jax.devices()[0]
    kind = getattr(device, "device_kind", device.platform)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPU cores ({cpu}), JAX {jax.__version__} on {device.platform} "
        f"({kind}, {jax.device_count()} device(s))"
    )
