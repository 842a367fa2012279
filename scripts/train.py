"""Train an agent and write its run folder.

    python scripts/train.py                                   # PPO + S5 on popgym/RepeatPreviousEasy
    python scripts/train.py backbone=gru env=popgym/RepeatFirstEasy seeds=4 total_steps=2e6
    python scripts/train.py agent.learning_rate=3e-4 backbone.options.num_layers=4 loggers=[tensorboard]
    python scripts/train.py --resume run_dir=runs/<folder>    # continue from its latest checkpoint

Hydra's override syntax applies (``key=value``, ``group=option``, ``+key=value``,
``--cfg job`` to print the composed config); the configs are the package's own
(``mnemax.configs``). A wrong key or value is one sentence and exit code 2; a run
that diverges (NaN/inf) stops with exit code 1 and keeps its metrics.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from mnemax.experiment.config import ConfigError
from mnemax.experiment.runtime import configure_jax

EXIT_CONFIG_ERROR = 2
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


@hydra.main(config_path="pkg://mnemax.configs", config_name="config", version_base=None)
def train(cfg: DictConfig) -> None:
    from mnemax.experiment.composition import to_run_config
    from mnemax.experiment.runner import DivergenceError, run

    try:
        result = run(to_run_config(cfg))
    except ConfigError as error:
        _fail(str(error), EXIT_CONFIG_ERROR)
    except DivergenceError as error:
        _fail(str(error), EXIT_DIVERGED)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    s = result.summary
    print(f"run folder: {result.run_dir}")
    print(
        f"final return {s['final_return_mean']:.3f} +- {s['final_return_std']:.3f} over {s['seeds']} seed(s) "
        f"after {s['env_steps']:,.0f} env steps; {s['steps_per_second']:,.0f} steps/s, "
        f"compile {s['compile_seconds']:.1f} s, wall {s['wall_seconds']:.1f} s"
    )


def main() -> None:
    """Check the overrides (one sentence and exit 2 on a mistake), then hand over to Hydra."""
    configure_jax()
    from mnemax.experiment.composition import check_overrides, register_configs

    def is_override(arg: str) -> bool:  # key=value, +key=value, ~key; the rest are Hydra flags and their values
        return not arg.startswith("-") and ("=" in arg or arg.startswith("~"))

    flags = [a for a in sys.argv[1:] if not is_override(a) and a != "--resume"]
    overrides = [a for a in sys.argv[1:] if is_override(a)]
    if "--resume" in sys.argv[1:]:
        overrides.append("resume=true")
    try:
        overrides = check_overrides(overrides)
    except ConfigError as error:
        _fail(str(error), EXIT_CONFIG_ERROR)
    register_configs()
    sys.argv = [sys.argv[0], *flags, *overrides]
    train()


if __name__ == "__main__":
    main()
