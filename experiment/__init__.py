"""Experiment runner: config -> train -> run folder.

Modules (imported on demand, so that ``mnemax.experiment.runtime.configure_jax``
can run before anything touches an XLA backend):

* :mod:`~mnemax.experiment.config` — typed configs (``RunConfig``, ``ExperimentConfig``,
  ``EnvSpec``) and the checked conversion from a composed Hydra config;
* :mod:`~mnemax.experiment.composition` — Hydra composition of ``mnemax.configs``
  (``load_run_config(overrides)``), every env name as a config option, overrides checked first
  (agents and world models are looked up by name in :mod:`mnemax.agents.registry` and
  :mod:`mnemax.worldmodels.registry`);
* :mod:`~mnemax.experiment.runner` — ``run(config)``: chunks of vmapped updates compiled once,
  metrics, NaN stop, checkpoints and exact resume;
* :mod:`~mnemax.experiment.resume` — the stored config a ``--resume`` continues with;
* :mod:`~mnemax.experiment.interrupts` — Ctrl-C held to the next chunk boundary;
* :mod:`~mnemax.experiment.env_preflight` — a user env's checks before compiling, and the
  env's part in a divergence;
* :mod:`~mnemax.experiment.run_folder`, :mod:`~mnemax.experiment.checkpoints`,
  :mod:`~mnemax.experiment.loggers`, :mod:`~mnemax.experiment.progress`,
  :mod:`~mnemax.experiment.plots` — what a run leaves behind and shows;
* :mod:`~mnemax.experiment.compare` — many runs, one table and one figure.

Typical use::

    from mnemax.experiment.composition import load_run_config
    from mnemax.experiment.runner import run

    result = run(load_run_config(["backbone=gru", "env=popgym/RepeatFirstEasy", "seeds=4"]))
    print(result.run_dir, result.summary["final_return_mean"])
"""
