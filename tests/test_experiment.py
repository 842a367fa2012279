"""The runner: run folder, NaN stop, checkpoints and bit-exact resume, loggers, one compile per run.

Most tests drive a probe trainer defined here (noisy linear regression that
honours the ``Trainer`` interface and compiles in well under a second); the
end-to-end ones drive the real PPO.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mnemax.backbones import BackboneSpec
from mnemax.agents import Trainer, register_agent
from mnemax.experiment.config import ConfigError, run_config_from_dict
from mnemax.experiment.run_folder import TIMING_COLUMNS, final_return
from mnemax.experiment.runner import DivergenceError, RunFailed, RunInterrupted, chunk_length, run

# ------------------------------------------------------------------ a probe agent honouring the Trainer interface


@dataclasses.dataclass(frozen=True)
class ProbeConfig:
    total_steps: int = 80
    steps_per_update: int = 8
    learning_rate: float = 0.1
    backbone: BackboneSpec | None = None

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.steps_per_update


class ProbeState(NamedTuple):
    weight: jax.Array  # [4]
    rng: jax.Array
    update_count: jax.Array


TRACES = {"update": 0}


def no_env(name: str, **kwargs: Any) -> tuple[None, None]:
    """The probe agents need no environment."""
    return None, None


@register_agent("probe", ProbeConfig, make_env=no_env)
def make_probe_trainer(config: ProbeConfig, env: Any, env_params: Any) -> Trainer:
    """Gradient descent on ``|w - target|^2`` with a fresh noisy target per update; diverges for lr > 1."""

    def init(key):
        return ProbeState(jax.random.normal(key, (4,)), key, jnp.zeros((), jnp.int32))

    def update(state):
        TRACES["update"] += 1
        rng, key = jax.random.split(state.rng)
        target = 1.0 + 0.1 * jax.random.normal(key, (4,))
        loss = jnp.mean((state.weight - target) ** 2)
        weight = state.weight - config.learning_rate * 2.0 * (state.weight - target)
        count = state.update_count + 1
        ended = count % 2 == 0  # an "episode" ends every other update; NaN return otherwise
        metrics = {
            "env_steps": (count * config.steps_per_update).astype(jnp.float32),
            "episode_return": jnp.where(ended, -loss, jnp.nan),
            "episode_length": jnp.where(ended, 2.0 * config.steps_per_update, jnp.nan),
            "episodes": ended.astype(jnp.float32),
            "policy_loss": loss,
            "value_loss": 0.5 * loss,
            "learning_rate": jnp.float32(config.learning_rate),
        }
        return ProbeState(weight, rng, count), metrics

    return Trainer(init=init, update=update, num_updates=config.num_updates)


def probe_config(tmp_path: Path, folder: str = "run", **top: Any):
    agent = {"name": "probe", **top.pop("agent", {})}
    values = {
        "name": "probe",
        "seed": 0,
        "seeds": 3,
        "total_steps": 80,
        "run_dir": str(tmp_path / folder),
        "checkpoint_every": 4,
        "log_every": 3,
        "progress": False,
        "agent": agent,
        "backbone": {"name": "none"},
        "env": {"name": "probe"},
        **top,
    }
    return run_config_from_dict(values)


def read_rows(run_dir: Path, drop_timing: bool = True) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    if drop_timing:
        for row in rows:
            for column in TIMING_COLUMNS:
                row.pop(column)
    return rows


def assert_states_equal(a: Any, b: Any) -> None:
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ------------------------------------------------------------------ run folder


def test_run_folder_holds_config_metrics_summary_curves_checkpoints(tmp_path):
    result = run(probe_config(tmp_path))
    folder = result.run_dir
    assert {p.name for p in folder.iterdir()} >= {"config.yaml", "metrics.csv", "summary.json", "curves.png", "checkpoint"}
    rows = read_rows(folder, drop_timing=False)
    assert len(rows) == 10 * 3  # one row per update per seed
    assert [int(r["update"]) for r in rows[:6]] == [1, 1, 1, 2, 2, 2]
    assert rows[0]["episode_return"] == "nan" and math.isfinite(float(rows[3]["episode_return"]))
    summary = json.loads((folder / "summary.json").read_text())
    returns = np.array([[float(r["episode_return"]) for r in rows[i : i + 3]] for i in range(0, 30, 3)])
    mean, std = final_return(returns)
    assert summary["final_return_mean"] == pytest.approx(mean) and summary["final_return_std"] == pytest.approx(std)
    assert summary["env_steps"] == 80 and summary["status"] == "finished" and summary["compile_seconds"] > 0
    assert summary["steps_per_second"] > 0 and summary["wall_seconds"] > 0
    assert sorted(int(p.name) for p in (folder / "checkpoint").iterdir() if p.name.isdigit()) == [4, 8, 10]
    assert "learning_rate: 0.1" in (folder / "config.yaml").read_text()


def test_same_config_and_seed_give_the_same_numbers(tmp_path):
    first = run(probe_config(tmp_path, "a"))
    second = run(probe_config(tmp_path, "b"))
    other_seed = run(probe_config(tmp_path, "c", seed=1))
    assert read_rows(first.run_dir) == read_rows(second.run_dir)
    assert read_rows(first.run_dir) != read_rows(other_seed.run_dir)
    assert_states_equal(first.states, second.states)


def test_final_return_averages_the_last_tenth_per_seed():
    returns = np.array([[0.0, 0.0]] * 18 + [[1.0, np.nan], [3.0, 5.0]])
    mean, std = final_return(returns)  # last 2 updates: seed means 2 and 5
    assert mean == pytest.approx(3.5) and std == pytest.approx(1.5)


def test_curves_carry_the_last_finished_return_across_updates_without_episodes():
    from mnemax.experiment.plots import carry_forward

    returns = np.asarray([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [4.0, 5.0]])
    np.testing.assert_array_equal(carry_forward(returns), [[np.nan, 1.0], [2.0, 1.0], [2.0, 1.0], [4.0, 5.0]])


def test_new_run_folders_are_timestamped_under_runs_root(tmp_path):
    config = probe_config(tmp_path, run_dir=None, name="probe/x", total_steps=16)
    result = run(config, runs_root=tmp_path / "runs")
    assert result.run_dir.parent == tmp_path / "runs" and result.run_dir.name.endswith("-probe-x")


@given(st.integers(1, 10_000), st.one_of(st.none(), st.integers(1, 500)))
def test_chunk_length_stays_within_the_run(num_updates, log_every):
    length = chunk_length(num_updates, log_every)
    assert 1 <= length <= num_updates
    if log_every is None:
        assert math.ceil(num_updates / length) <= 100


def test_one_compile_per_run_whatever_the_chunking(tmp_path):
    counts = []
    for steps, folder in ((24, "short"), (200, "long")):  # 3 updates in 1 chunk; 25 updates in uneven chunks
        TRACES["update"] = 0
        run(probe_config(tmp_path, folder, total_steps=steps, log_every=4, checkpoint_every=3))
        counts.append(TRACES["update"])
    assert counts[0] == counts[1] <= 2  # eval_shape + the one chunk; remainders reuse it


# ------------------------------------------------------------------ NaN / inf


def test_divergence_stops_with_the_update_and_quantity_and_keeps_metrics(tmp_path):
    config = probe_config(tmp_path, agent={"learning_rate": 1e6}, total_steps=800, checkpoint_every=0)
    with pytest.raises(DivergenceError) as info:
        run(config)
    message = str(info.value)
    assert message.startswith("Update ") and "non-finite policy_loss" in message and "metrics.csv" in message
    bad_update = int(message.split()[1])
    rows = read_rows(tmp_path / "run")
    assert int(rows[-1]["update"]) == bad_update  # kept up to and including the bad update
    assert all(math.isfinite(float(r["policy_loss"])) for r in rows if int(r["update"]) < bad_update)
    assert not all(math.isfinite(float(r["policy_loss"])) for r in rows if int(r["update"]) == bad_update)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["updates_done"] == bad_update < 100


# ------------------------------------------------------------------ checkpoints and resume


class Crash(RuntimeError):
    pass


def stop_at(update_to_stop: int, error: BaseException):
    def on_chunk(update, block):
        if update >= update_to_stop:
            raise error

    return on_chunk


@pytest.mark.parametrize("error", [Crash("power cut"), KeyboardInterrupt()])
def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(tmp_path, error):
    whole = run(probe_config(tmp_path, "whole", total_steps=200))
    with pytest.raises(RunInterrupted if isinstance(error, KeyboardInterrupt) else RunFailed) as info:
        run(probe_config(tmp_path, "cut", total_steps=200), on_chunk=stop_at(14, error))
    if isinstance(error, Crash):
        assert info.value.__cause__ is error and info.value.log_path == tmp_path / "cut" / "error.log"
        assert "Crash: power cut" in info.value.log_path.read_text()
    stopped = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert stopped["status"] == ("interrupted" if isinstance(error, KeyboardInterrupt) else "failed")
    resumed = run(probe_config(tmp_path, "cut", total_steps=200, resume=True))
    # chunks end at 3, 4, 7, 8, 11, 12, 15: Ctrl-C saves update 15; a crash leaves the checkpoint of update 12
    assert resumed.summary["resumed_from_update"] == (15 if isinstance(error, KeyboardInterrupt) else 12)
    assert read_rows(resumed.run_dir) == read_rows(whole.run_dir)
    assert_states_equal(resumed.states, whole.states)
    assert resumed.summary["final_return_mean"] == whole.summary["final_return_mean"]


SIGINT_AT = {"update": None}


def _interrupt_during_update(count):
    """Host side of the probe's callback: SIGINT to this process while update ``SIGINT_AT`` computes."""
    import os
    import signal

    if SIGINT_AT["update"] is not None and int(np.max(count)) == SIGINT_AT["update"]:
        SIGINT_AT["update"] = None
        os.kill(os.getpid(), signal.SIGINT)


def make_interruptible_trainer(config: ProbeConfig, env: Any, env_params: Any) -> Trainer:
    """The probe trainer with a callback that can send SIGINT in the middle of a compiled chunk."""
    probe = make_probe_trainer(config, env, env_params)

    def update(state):
        state, metrics = probe.update(state)
        jax.debug.callback(_interrupt_during_update, state.update_count)
        return state, metrics

    return probe._replace(update=update)


register_agent("probe-sigint", ProbeConfig, make_env=no_env)(make_interruptible_trainer)


def test_sigint_inside_a_chunk_resumes_to_the_uninterrupted_run(tmp_path):
    # Chunks of 3 updates and no checkpoint before the end: SIGINT lands while update 5 computes, in the
    # host wait for chunk 4-6. The state saved must be the one after update 6 and be labelled 6.
    settings = {"agent": {"name": "probe-sigint"}, "total_steps": 160, "checkpoint_every": 0}
    whole = run(probe_config(tmp_path, "whole", **settings))
    SIGINT_AT["update"] = 5
    with pytest.raises(RunInterrupted, match=r"^Interrupted after update 6; continue with: python scripts/train\.py --resume run_dir="):
        run(probe_config(tmp_path, "cut", **settings))
    assert [int(r["update"]) for r in read_rows(tmp_path / "cut")][-1] == 6
    resumed = run(probe_config(tmp_path, "cut", resume=True, **settings))
    assert resumed.summary["resumed_from_update"] == 6
    assert read_rows(resumed.run_dir) == read_rows(whole.run_dir)
    assert_states_equal(resumed.states, whole.states)


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    run(probe_config(tmp_path, total_steps=16))
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    result = run(probe_config(tmp_path, total_steps=16, resume=True))
    assert result.already_finished and result.states is None and result.summary["status"] == "finished"
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()} == before


def test_resume_in_a_folder_without_a_checkpoint_starts_from_update_0(tmp_path):
    whole = run(probe_config(tmp_path, "whole", total_steps=80))
    with pytest.raises(RunFailed):  # dies before its first checkpoint (update 4)
        run(probe_config(tmp_path, total_steps=80), on_chunk=stop_at(3, Crash()))
    with pytest.raises(ConfigError, match="already holds a run; set resume=true"):
        run(probe_config(tmp_path, total_steps=80))
    resumed = run(probe_config(tmp_path, total_steps=80, resume=True))
    assert resumed.summary["resumed_from_update"] == 0 and resumed.summary["status"] == "finished"
    assert read_rows(resumed.run_dir) == read_rows(whole.run_dir)


def test_a_run_that_fails_before_training_leaves_no_folder(tmp_path):
    def broken(config, env, env_params):
        raise ZeroDivisionError("division by zero")

    def interrupted_while_compiling(config, env, env_params):
        probe = make_probe_trainer(config, env, env_params)

        def update(state):  # traced only while the chunk compiles
            if isinstance(state.update_count, jax.core.Tracer) and TRACES.get("compiling"):
                raise KeyboardInterrupt
            TRACES["compiling"] = True
            return probe.update(state)

        return probe._replace(update=update)

    register_agent("probe-broken", ProbeConfig, make_env=no_env)(broken)
    register_agent("probe-ctrl-c", ProbeConfig, make_env=no_env)(interrupted_while_compiling)
    TRACES["compiling"] = False  # the first trace (eval_shape) passes, the chunk's trace is interrupted
    with pytest.raises(RunInterrupted, match="^Interrupted before the first update; nothing was kept, so the same command"):
        run(probe_config(tmp_path, "ctrl-c", agent={"name": "probe-ctrl-c"}))
    assert not (tmp_path / "ctrl-c").exists()
    with pytest.raises(RunFailed, match=r"unexpected ZeroDivisionError: division by zero; the traceback is in .*\.log\.$") as info:
        run(probe_config(tmp_path, "broken", agent={"name": "probe-broken"}))
    assert not (tmp_path / "broken").exists() and "ZeroDivisionError" in info.value.log_path.read_text()
    info.value.log_path.unlink()


def test_a_second_run_in_a_locked_folder_is_refused(tmp_path):
    from mnemax.experiment.run_folder import RunLock

    (tmp_path / "run").mkdir()
    holder = RunLock(tmp_path / "run")
    assert holder.acquire() is None
    try:
        with pytest.raises(ConfigError, match=r"^run_dir .*run is in use by another run \(pid \d+\); wait for it to end"):
            run(probe_config(tmp_path, total_steps=16))
    finally:
        holder.release()
    assert run(probe_config(tmp_path, total_steps=16)).summary["status"] == "finished"  # released, not stuck


def test_a_run_dir_that_is_a_file_is_one_sentence(tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(ConfigError, match=r"run_dir .* is a file, not a folder; point run_dir at a folder"):
        run(probe_config(tmp_path, total_steps=16))


def test_resume_with_metrics_csv_missing_is_one_sentence(tmp_path):
    with pytest.raises(RunInterrupted):
        run(probe_config(tmp_path, total_steps=200), on_chunk=stop_at(4, KeyboardInterrupt()))
    (tmp_path / "run" / "metrics.csv").unlink()
    with pytest.raises(ConfigError, match=r"metrics\.csv is missing, so the run cannot resume with its history"):
        run(probe_config(tmp_path, total_steps=200, resume=True))


def test_resume_takes_the_stored_config_and_compares_only_repeated_keys(tmp_path):
    from mnemax.experiment.resume import stored_config

    started = probe_config(tmp_path, total_steps=200, agent={"learning_rate": 0.2})
    with pytest.raises(RunInterrupted):
        run(started, on_chunk=stop_at(4, KeyboardInterrupt()))
    plain = probe_config(tmp_path, resume=True)  # what `--resume run_dir=...` composes: the defaults
    folder = ["run_dir=" + str(tmp_path / "run"), "resume=true"]
    resumed = stored_config(tmp_path / "run", plain, folder)
    assert resumed.agent == started.agent and resumed.experiment.total_steps == 200 and resumed.experiment.resume
    watched = stored_config(tmp_path / "run", probe_config(tmp_path, resume=True, progress=True), [*folder, "progress=true"])
    assert watched.experiment.progress and watched.agent == started.agent  # how a run is watched may change
    with pytest.raises(ConfigError, match=r"written under another config \(changed: total_steps \(200 -> 80\)\); --resume takes"):
        stored_config(tmp_path / "run", plain, [*folder, "total_steps=80"])
    assert run(resumed).summary["resumed_from_update"] == 4


def test_resume_refuses_a_checkpoint_from_another_config(tmp_path):
    run(probe_config(tmp_path))
    with pytest.raises(ConfigError, match=r"written under another config \(changed: agent\.learning_rate \(0\.1 -> 0\.2\)\)"):
        run(probe_config(tmp_path, agent={"learning_rate": 0.2}, resume=True))


def test_a_finished_run_kept_without_checkpoints_is_still_checked_against_the_config(tmp_path):
    """A comparison keeps only a finished cell's small files; resuming it under another config must not reuse it."""
    import shutil

    run(probe_config(tmp_path, total_steps=16))
    shutil.rmtree(tmp_path / "run" / "checkpoint")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(ConfigError, match=r"written under another config \(changed: agent\.learning_rate \(0\.1 -> 0\.2\)\)"):
        run(probe_config(tmp_path, total_steps=16, agent={"learning_rate": 0.2}, resume=True))
    with pytest.raises(ConfigError, match=r"changed: env\.kwargs\.size \(None -> 3\)"):  # an env option the run did not have
        run(probe_config(tmp_path, total_steps=16, env={"name": "probe", "kwargs": {"size": 3}}, resume=True))
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    assert run(probe_config(tmp_path, total_steps=16, resume=True)).already_finished


def test_a_run_stored_before_a_config_field_existed_still_resumes(tmp_path):
    """A field added to an agent's config since the run was written (absent from its config.yaml) keeps its default."""
    from omegaconf import OmegaConf

    run(probe_config(tmp_path, total_steps=16))
    path = tmp_path / "run" / "config.yaml"
    stored = OmegaConf.to_container(OmegaConf.load(path))
    del stored["agent"]["steps_per_update"]
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(stored)))
    assert run(probe_config(tmp_path, total_steps=16, resume=True)).already_finished


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    run(probe_config(tmp_path, total_steps=16))
    with pytest.raises(ConfigError, match="already holds a run; set resume=true"):
        run(probe_config(tmp_path, total_steps=16))


def test_resume_without_run_dir_finds_the_newest_run_of_that_name(tmp_path):
    root = tmp_path / "runs"
    with pytest.raises(RunFailed):
        run(probe_config(tmp_path, run_dir=None, total_steps=200), runs_root=root, on_chunk=stop_at(8, Crash()))
    with pytest.raises(ConfigError, match="resume=true but no run named 'other'"):
        run(probe_config(tmp_path, run_dir=None, name="other", resume=True), runs_root=root)
    resumed = run(probe_config(tmp_path, run_dir=None, total_steps=200, resume=True), runs_root=root)
    assert resumed.summary["resumed_from_update"] == 8 and resumed.run_dir.parent == root


# ------------------------------------------------------------------ loggers


def test_tensorboard_logger_writes_event_files(tmp_path):
    result = run(probe_config(tmp_path, loggers=["tensorboard"], total_steps=32))
    events = list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_missing_wandb_is_one_sentence_before_compiling(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    TRACES["update"] = 0
    with pytest.raises(ConfigError, match=r"loggers includes 'wandb' but the wandb package is not installed; run `pip install \"mnemax\[wandb\]\"`"):
        run(probe_config(tmp_path, loggers=["wandb"]))
    assert TRACES["update"] == 0 and not (tmp_path / "run").exists()


# ------------------------------------------------------------------ the real PPO


def ppo_config(tmp_path: Path, folder: str, env: str, backbone: dict, **top: Any):
    values = {
        "name": "ppo-test",
        "seeds": 2,
        "total_steps": 6 * 64,
        "run_dir": str(tmp_path / folder),
        "checkpoint_every": 2,
        "log_every": 2,
        "progress": False,
        "agent": {"name": "ppo", "num_envs": 4, "num_steps": 16, "update_epochs": 1, "num_minibatches": 2,
                  "encoder_sizes": [], "head_sizes": [16]},
        "backbone": backbone,
        "env": {"name": env},
        **top,
    }
    return run_config_from_dict(values)


def test_ppo_with_memory_resumes_bit_for_bit(tmp_path):
    gru = {"name": "gru", "features": 8}
    whole = run(ppo_config(tmp_path, "whole", "popgym/RepeatFirstEasy", gru))
    with pytest.raises(RunFailed):
        run(ppo_config(tmp_path, "cut", "popgym/RepeatFirstEasy", gru), on_chunk=stop_at(3, Crash()))
    resumed = run(ppo_config(tmp_path, "cut", "popgym/RepeatFirstEasy", gru, resume=True))
    assert resumed.summary["resumed_from_update"] == 4  # the crash came after the checkpoint of update 4
    assert read_rows(resumed.run_dir) == read_rows(whole.run_dir)
    assert_states_equal(resumed.states, whole.states)


def _nan_reward_cartpole():
    """CartPole whose reward is NaN: a broken env that PPO's losses must expose."""
    import gymnax

    env, params = gymnax.make("CartPole-v1")

    class NaNReward(type(env)):
        def step_env(self, key, state, action, params):
            obs, state, reward, done, info = super().step_env(key, state, action, params)
            return obs, state, reward * jnp.nan, done, info

    return NaNReward(), params


def _register_nan_reward_cartpole() -> str:
    from mnemax.envs import names, register

    if "test/NaNRewardCartPole" not in names():
        register("test/NaNRewardCartPole", _nan_reward_cartpole)
    return "test/NaNRewardCartPole"


def test_ppo_on_an_env_with_nan_rewards_stops_and_names_the_reward(tmp_path):
    config = ppo_config(tmp_path, "nan", _register_nan_reward_cartpole(), {"name": "none"})
    with pytest.raises(DivergenceError, match=r"^Update 1 \(seed 0, 64 env steps\) produced a non-finite \w+ \(nan\) "
                       r"because the env returns a non-finite reward .*fix the env's reward\.$"):
        run(config, check_env=False)
    rows = read_rows(tmp_path / "nan")
    assert len(rows) == 2 and {r["update"] for r in rows} == {"1"}


def test_a_user_env_with_nan_rewards_is_stopped_before_compiling(tmp_path):
    config = ppo_config(tmp_path, "nan", _register_nan_reward_cartpole(), {"name": "none"})
    with pytest.raises(ConfigError, match=r"(?s)The env 'test/NaNRewardCartPole' has 1 problem\(s\) .*\n- Rewards contain NaN.*--skip-env-check"):
        run(config)
    assert not (tmp_path / "nan").exists()


def test_compare_writes_a_table_and_a_figure(tmp_path):
    from mnemax.experiment.compare import Variant, compare, write_report

    tiny = ["agent.num_envs=4", "agent.num_steps=16", "agent.update_epochs=1", "agent.num_minibatches=2",
            "agent.encoder_sizes=[]", "agent.head_sizes=[16]", "progress=false", "checkpoint_every=0"]
    # Variants that differ in a traced hyper-parameter share one compiled program.
    variants = [Variant("lr-1e-3", ("agent.learning_rate=1e-3",)), Variant("lr-3e-4", ("agent.learning_rate=3e-4",))]
    rows = compare(variants, ["CartPole-v1"], seeds=2, total_steps=128, overrides=["backbone=none", *tiny],
                   runs_root=tmp_path / "runs")
    assert [r.variant for r in rows] == ["lr-1e-3", "lr-3e-4"] and rows[0].returns.shape == (2, 2)
    assert len({r.run_dir for r in rows}) == 2 and rows[0].summary["status"] == "finished"
    doc, figure = tmp_path / "docs" / "BACKBONES.md", tmp_path / "docs" / "backbones.png"
    write_report(rows, doc, figure, "Backbones", "python scripts/compare_backbones.py", 2, 128)
    text = doc.read_text()
    assert "| CartPole-v1 | lr-1e-3 |" in text and "| CartPole-v1 | lr-3e-4 |" in text
    assert "![Backbones](backbones.png)" in text and figure.stat().st_size > 0


def test_wandb_logger_runs_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")  # the optional extra mnemax[wandb]
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    result = run(probe_config(tmp_path, loggers=["wandb"], total_steps=32))
    assert list((result.run_dir / "wandb").glob("offline-run-*"))


def test_seed_i_starts_the_same_whatever_the_number_of_seeds():
    from mnemax.experiment.runner import seed_keys

    np.testing.assert_array_equal(seed_keys(7, 1)[0], seed_keys(7, 4)[0])
    np.testing.assert_array_equal(seed_keys(7, 2)[1], seed_keys(7, 4)[1])
    assert len({tuple(np.asarray(k)) for k in seed_keys(7, 4)}) == 4
