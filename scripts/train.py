"""Train an agent and write its run folder.

usage: python scripts/train.py [--resume] [--skip-env-check] [KEY=VALUE ...]

    python scripts/train.py                                   # PPO + S5 on popgym/RepeatPreviousEasy
    python scripts/train.py backbone=gru env=popgym/RepeatFirstEasy seeds=4 total_steps=2e6
    python scripts/train.py agent.learning_rate=3e-4 backbone.options.num_layers=4 loggers=[tensorboard]
    python scripts/train.py env.name=my_pkg.my_mod:MyEnv      # your own gymnax env, imported as package.module:Class
    python scripts/train.py --resume run_dir=runs/<folder>    # continue from its latest checkpoint

Hydra's override syntax applies (``key=value``, ``group=option``, ``+key=value``,
``--cfg job`` to print the composed config, ``--hydra-help`` for Hydra's own
help); the configs are the package's own (``mnemax.configs``).

flags:
  --resume          continue run_dir (or the newest runs/*-<name>) from its latest
                    checkpoint, with the config stored in its config.yaml: only the
                    keys you repeat are compared, and those that change the numbers
                    are refused. A folder with no checkpoint yet starts from update 0;
                    a finished run is left as it is.
  --skip-env-check  skip the checks a user env (package.module:Class or registered
                    with mnemax.envs.register) gets before the agent is compiled.
  -h, --help        print this text.

exit codes:
  0    the run finished (or had already finished)
  1    the run diverged (a NaN/inf metric); metrics.csv keeps every update up to it
  2    bad input: a wrong key or value, a run folder that cannot be used (a file, not
       writable, in use by another run, under another config), or a user env that
       fails its checks; one sentence, and no run folder is left behind
  3    an unexpected error; the sentence names the log file holding the traceback
  130  interrupted (Ctrl-C); the state of the last finished update is checkpointed
       and --resume continues it
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from mnemax.experiment.runtime import configure_jax

EXIT_DIVERGED = 1
EXIT_BAD_INPUT = 2
EXIT_CRASHED = 3
EXIT_INTERRUPTED = 130
FLAGS = ("--resume", "--skip-env-check")


def _fail(message: str, code: int) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def _train(cfg: DictConfig, check_env: bool) -> None:
    """Compose, run, report; every way a run ends maps to one exit code (see the module docstring)."""
    from hydra.core.hydra_config import HydraConfig

    from mnemax.experiment.composition import to_run_config
    from mnemax.experiment.resume import stored_config
    from mnemax.experiment.run_folder import write_error_log
    from mnemax.experiment.runner import DivergenceError, RunFailed, run

    try:
        config = to_run_config(cfg)
        if config.experiment.resume and config.experiment.run_dir is not None:
            config = stored_config(config.experiment.run_dir, config, HydraConfig.get().overrides.task)
        result = run(config, check_env=check_env)
    except ValueError as error:  # ConfigError and the config pass's value checks
        _fail(str(error), EXIT_BAD_INPUT)
    except DivergenceError as error:
        _fail(str(error), EXIT_DIVERGED)
    except RunFailed as error:
        _fail(str(error), EXIT_CRASHED)
    except KeyboardInterrupt as error:
        _fail(str(error) or "Interrupted before the run started; nothing was written.", EXIT_INTERRUPTED)
    except Exception as error:  # noqa: BLE001 - anything else is a crash with its traceback in a log file
        log = write_error_log(error, None)
        _fail(f"The run stopped on an unexpected {type(error).__name__}: {str(error)[:300]}; the traceback is in {log}.", EXIT_CRASHED)
    s = result.summary
    if result.already_finished:
        print(f"run folder {result.run_dir} already finished ({s['updates_done']} updates); nothing to do.")
        return
    print(f"run folder: {result.run_dir}")
    print(
        f"final return {s['final_return_mean']:.3f} +- {s['final_return_std']:.3f} over {s['seeds']} seed(s) "
        f"after {s['env_steps']:,.0f} env steps; {s['steps_per_second']:,.0f} steps/s, "
        f"compile {s['compile_seconds']:.1f} s, wall {s['wall_seconds']:.1f} s"
    )


def main() -> None:
    """Check the overrides (one sentence and exit 2 on a mistake), then hand over to Hydra."""
    arguments = sys.argv[1:]
    if "-h" in arguments or "--help" in arguments:
        print(__doc__.strip())
        return
    configure_jax()
    from mnemax.experiment.composition import check_overrides, register_configs
    from mnemax.experiment.config import ConfigError

    def is_override(arg: str) -> bool:  # key=value, +key=value, ~key; the rest are Hydra flags and their values
        return not arg.startswith("-") and ("=" in arg or arg.startswith("~"))

    flags = [a for a in arguments if not is_override(a) and a not in FLAGS]
    overrides = [a for a in arguments if is_override(a)]
    if "--resume" in arguments:
        overrides.append("resume=true")
    check_env = "--skip-env-check" not in arguments
    try:
        overrides = check_overrides(overrides)
    except ConfigError as error:
        _fail(str(error), EXIT_BAD_INPUT)
    register_configs()
    sys.argv = [sys.argv[0], *flags, *overrides]

    @hydra.main(config_path="pkg://mnemax.configs", config_name="config", version_base=None)
    def train(cfg: DictConfig) -> None:
        _train(cfg, check_env)

    try:
        train()
    except KeyboardInterrupt:
        _fail("Interrupted before the run started; nothing was written.", EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
