"""Optional loggers beside the run folder's own files: TensorBoard and Weights & Biases.

Each receives, per update, the mean over seeds of every metric, at step =
env steps per seed. TensorBoard event files go to ``<run_dir>/tensorboard/``
(``tensorboard --logdir runs`` shows every run); W&B writes under
``<run_dir>/wandb/`` and works offline with ``WANDB_MODE=offline``. Both
packages are imported only when chosen; a missing one is reported, with the
install command, before anything compiles.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path
from typing import Any, Protocol, Sequence

from mnemax.experiment.config import ConfigError

_PACKAGES = {"tensorboard": ("tensorboardX", "pip install tensorboardX"), "wandb": ("wandb", 'pip install "mnemax[wandb]"')}


class Logger(Protocol):
    def log(self, step: int, values: dict[str, float]) -> None: ...

    def close(self) -> None: ...


def check_loggers_available(names: Sequence[str]) -> None:
    """Raise :class:`ConfigError` if a chosen logger's package is not installed."""
    for name in names:
        module, command = _PACKAGES[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"loggers includes {name!r} but the {module} package is not installed; run `{command}` or remove it from loggers."
            )


class TensorBoardLogger:
    """Scalars ``<metric>`` at step env steps, written with ``tensorboardX``."""

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        from tensorboardX import SummaryWriter

        self._writer = SummaryWriter(logdir=str(run_dir / "tensorboard"))
        self._writer.add_text("config", "```\n" + _yaml(config) + "\n```")

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            if math.isfinite(value):
                self._writer.add_scalar(key, value, global_step=step)

    def close(self) -> None:
        self._writer.close()


class WandbLogger:
    """A W&B run named like the run folder; ``WANDB_PROJECT`` (default ``mnemax``), ``WANDB_MODE`` honoured."""

    def __init__(self, run_dir: Path, config: dict[str, Any]):
        import wandb

        self._run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "mnemax"),
            name=run_dir.name,
            dir=str(run_dir),
            config=config,
            reinit=True,
        )

    def log(self, step: int, values: dict[str, float]) -> None:
        self._run.log({k: v for k, v in values.items() if math.isfinite(v)}, step=step)

    def close(self) -> None:
        self._run.finish()


def _yaml(config: dict[str, Any]) -> str:
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.create(config))


def make_loggers(names: Sequence[str], run_dir: Path, config: dict[str, Any]) -> list[Logger]:
    """The loggers ``names`` for ``run_dir`` (checked with :func:`check_loggers_available` first)."""
    check_loggers_available(names)
    makers = {"tensorboard": TensorBoardLogger, "wandb": WandbLogger}
    return [makers[name](run_dir, config) for name in names]
