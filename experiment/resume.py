"""The config a resumed run continues with: the one stored in its run folder.

``python scripts/train.py --resume run_dir=R`` must continue R as it was
started, whatever overrides started it, without the user typing them again.
So the run takes ``R/config.yaml``; only the keys the user repeats on the
command line are compared with it. A repeated key that changes what the run
computes (``agent.learning_rate=...``) is refused by name; one that changes
only how it is watched or stored (``progress``, ``log_every``, ``loggers``,
``checkpoint_every``) is taken, since it leaves the numbers as they were.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping

from mnemax.experiment.config import ConfigError, RunConfig, config_hash, run_config_from_dict, run_config_to_dict
from mnemax.experiment.run_folder import read_stored_config

SECTIONS = ("agent", "backbone", "env")
"""Config groups: ``backbone=gru`` on the command line names ``backbone.name``."""


def override_keys(overrides: Iterable[str]) -> list[str]:
    """The dotted keys a list of Hydra overrides sets (``+a.b=1`` -> ``a.b``; ``backbone=gru`` -> ``backbone.name``)."""
    keys = []
    for text in overrides:
        key = text.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra.") or key in ("run_dir", "resume"):
            continue
        keys.append(f"{key}.name" if key in SECTIONS else key)
    return keys


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _set(values: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        values = values.setdefault(part, {})
    values[last] = value


def stored_config(run_dir: str | Path, composed: RunConfig, overrides: Iterable[str]) -> RunConfig:
    """``run_dir``'s stored config, with the watch-only keys the user repeated taken from ``composed``.

    Returns ``composed`` unchanged when the folder has no ``config.yaml`` (a
    run that never started). Raises :class:`ConfigError` naming each repeated
    key whose value would change the run's numbers.
    """
    stored = read_stored_config(Path(run_dir))
    if stored is None:
        return composed
    stored_flat, composed_flat = _flatten(stored), _flatten(run_config_to_dict(composed))
    keys = override_keys(overrides)
    repeated = sorted({k for k in composed_flat for key in keys if k == key or k.startswith(key + ".")})
    differing = [k for k in repeated if stored_flat.get(k) != composed_flat[k]]

    base_hash = config_hash(run_config_from_dict(stored))
    changed = []
    for key in differing:
        trial = copy.deepcopy(stored)
        _set(trial, key, composed_flat[key])
        if config_hash(run_config_from_dict(trial)) != base_hash:
            changed.append(f"{key} ({stored_flat.get(key)!r} -> {composed_flat[key]!r})")
    if changed:
        raise ConfigError(
            f"The run in {run_dir} was written under another config (changed: {', '.join(changed)}); --resume takes "
            "the run's own config.yaml, so drop those overrides, or start a new run_dir."
        )
    merged = copy.deepcopy(stored)
    for key in differing:
        _set(merged, key, composed_flat[key])
    merged.update(run_dir=str(run_dir), resume=True)
    return run_config_from_dict(merged)
