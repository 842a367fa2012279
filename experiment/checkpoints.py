"""Orbax checkpoints of the vmapped runner state, tagged with the config hash.

``<run_dir>/checkpoint/<update>/`` holds ``state`` (the runner states of all
seeds, every leaf ``[S, ...]``) and ``meta`` (JSON: the update count, the
config hash and the config itself). :meth:`CheckpointStore.restore_latest`
refuses a checkpoint whose hash differs from the running config's, naming the
keys that differ, so a resumed run always continues the run it claims to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mnemax.experiment.config import ConfigError, stored_config_changes


def match_weak_types(restored: Any, like: Any) -> Any:
    """``restored`` with each leaf's weak type set as in ``like``.

    Orbax gives back every array strongly typed, but a state built by ``init``
    holds weakly typed leaves (an env's step counter made from a Python ``0``).
    The compiled chunk's cache key includes weak types, so without this a
    resumed run would compile its program again instead of reusing the
    persistent cache.
    """
    import jax
    import numpy as np

    try:
        from jax._src.lax.lax import _convert_element_type
    except ImportError:  # pragma: no cover - a JAX without it only recompiles
        return restored

    def match(value: Any, reference: Any) -> Any:
        if getattr(reference, "weak_type", False) and not getattr(value, "weak_type", True):
            return _convert_element_type(value, np.dtype(reference.dtype), weak_type=True)
        return value

    return jax.tree.map(match, restored, like)


class CheckpointStore:
    """Save and restore ``(update, states)`` under ``directory``, keeping the last ``keep``."""

    def __init__(self, directory: str | Path, config_hash: str, config_dict: dict[str, Any], keep: int = 3):
        import orbax.checkpoint as ocp

        self.directory = Path(directory).absolute()
        self.config_hash = config_hash
        self.config_dict = config_dict
        self.enabled = keep > 0
        self.keep = max(keep, 1)
        self._ocp = ocp
        self._manager = None

    def _open(self, create: bool = False):
        """The orbax manager, opened on first use so that nothing is written before the first save."""
        if self._manager is None and (create or self.directory.is_dir()):
            options = self._ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=create)
            self._manager = self._ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))
        return self._manager

    def latest_update(self) -> int | None:
        """The update count of the newest checkpoint, or ``None`` when there is none."""
        manager = self._open()
        return None if manager is None else manager.latest_step()

    def save(self, update: int, states: Any, extra: dict[str, Any] | None = None) -> None:
        """Write ``states`` (all seeds) as the checkpoint of ``update`` and wait until it is on disk."""
        if not self.enabled:
            return
        ocp = self._ocp
        meta = {"update": int(update), "config_hash": self.config_hash, "config": self.config_dict, **(extra or {})}
        self._open(create=True).save(
            int(update), args=ocp.args.Composite(state=ocp.args.StandardSave(states), meta=ocp.args.JsonSave(meta))
        )
        self._manager.wait_until_finished()

    def check_latest(self) -> int:
        """The newest checkpoint's update count, after checking it was written under this config.

        Raises :class:`ConfigError` when there is no checkpoint or its config
        hash differs; reads only the small JSON part, so it runs before anything compiles.
        """
        update = self.latest_update()
        if update is None:
            raise ConfigError(f"resume=true but {self.directory} holds no checkpoint; start without resume or point run_dir at a run that has one.")
        ocp = self._ocp
        meta = self._manager.restore(update, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        changed = []
        if meta.get("config_hash") != self.config_hash:  # a field added since it was written keeps its default
            changed = stored_config_changes(meta["config"], self.config_dict) if "config" in meta else ["the whole config"]
        if changed:
            detail = f" (changed: {', '.join(changed[:6])})"
            raise ConfigError(
                f"The checkpoint in {self.directory} was written under another config{detail}; "
                "resume with the run's own config (its config.yaml) or start a new run_dir."
            )
        return int(update)

    def restore_latest(self, like: Any) -> tuple[int, Any, dict[str, Any]]:
        """``(update, states, meta)`` of the newest checkpoint, shaped like ``like`` (checked as in :meth:`check_latest`)."""
        update = self.check_latest()
        ocp = self._ocp
        restored = self._manager.restore(
            update, args=ocp.args.Composite(state=ocp.args.StandardRestore(like), meta=ocp.args.JsonRestore())
        )
        return int(update), match_weak_types(restored.state, like), dict(restored.meta)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
