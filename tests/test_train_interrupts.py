"""scripts/train.py stopped the ways runs really stop: a second run in the same folder, Ctrl-C, SIGKILL.

The scripts run in subprocesses. The lock test is fast (nothing compiles);
the resume tests (``-m slow``: each starts the script twice and trains) compare
every metrics.csv row with one uninterrupted run of the same config, made once
in this process, whose compiled program the subprocesses read from the
persistent cache. The fast suite covers the same resume logic in-process
(``tests/test_experiment.py``).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnemax.experiment.composition import load_run_config
from mnemax.experiment.run_folder import TIMING_COLUMNS, RunLock
from mnemax.experiment.runner import run

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
# 4000 PPO updates on CartPole in chunks of 10: a couple of seconds of training, so a signal lands mid-run.
CARTPOLE = (
    "backbone=none env=CartPole-v1 agent.num_envs=2 agent.num_steps=8 agent.update_epochs=1 agent.num_minibatches=1 "
    "agent.encoder_sizes=[16] agent.head_sizes=[16] total_steps=64000 log_every=10 progress=false"
).split()


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as f:
        table = list(csv.DictReader(f))
    for row in table:
        for column in TIMING_COLUMNS:
            row.pop(column)
    return table


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[dict[str, str]]:
    folder = tmp_path_factory.mktemp("reference") / "run"
    run(load_run_config([*CARTPOLE, f"run_dir={folder}"]))
    return rows(folder)


def start(cwd: Path, *args: str) -> subprocess.Popen:
    """The script in the background, stdout and stderr to ``<cwd>/<n>.out`` (read with :func:`output`)."""
    log = cwd / f"{len(list(cwd.glob('*.out')))}.out"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, str(SCRIPT), *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    process.log = log
    return process


def output(process: subprocess.Popen) -> str:
    return process.log.read_text()


def wait_for_rows(process: subprocess.Popen, metrics: Path, count: int, timeout: float = 300) -> None:
    """Block until ``metrics`` holds more than ``count`` data rows (the run is mid-training)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended (rc {process.returncode}) before it could be stopped:\n{output(process)}")
        if metrics.exists() and sum(1 for _ in metrics.open()) > count + 1:
            return
        time.sleep(0.02)
    pytest.fail("the run wrote no metrics in time")


def finish(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def wait_for_lock(process: subprocess.Popen, folder: Path, timeout: float = 300) -> None:
    """Block until ``process`` holds the run folder's lock (its pid is in ``run.lock``)."""
    lock = folder / "run.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the run ended (rc {process.returncode}) before it took the lock:\n{output(process)}")
        if lock.exists() and lock.read_text().strip() == str(process.pid):
            return
        time.sleep(0.02)
    pytest.fail("the run took no lock in time")


def test_a_second_run_in_a_folder_in_use_is_refused_and_a_killed_run_leaves_no_stuck_lock(tmp_path):
    first = start(tmp_path, *CARTPOLE, "run_dir=shared")
    wait_for_lock(first, tmp_path / "shared")
    first.send_signal(signal.SIGSTOP)  # hold it there, lock taken
    try:
        second = finish(tmp_path, *CARTPOLE, "run_dir=shared", "--resume")
    finally:
        first.send_signal(signal.SIGKILL)  # then it dies without cleaning up
        first.wait(timeout=60)
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip() == (
        f"error: run_dir shared is in use by another run (pid {first.pid}); wait for it to end, or choose another run_dir."
    )
    assert RunLock(tmp_path / "shared").acquire() is None  # the dead run's lock went with it


@pytest.mark.slow
def test_ctrl_c_then_resume_equals_the_uninterrupted_run(tmp_path, reference):
    cut = start(tmp_path, *CARTPOLE, "run_dir=cut")
    wait_for_rows(cut, tmp_path / "cut" / "metrics.csv", 20)
    cut.send_signal(signal.SIGINT)
    assert cut.wait(timeout=300) == 130, output(cut)
    message = output(cut).strip().splitlines()[-1]
    assert message.startswith("error: Interrupted after update ") and message.endswith("--resume run_dir=cut")
    stopped_at = int(message.split()[4].rstrip(";"))
    assert int(rows(tmp_path / "cut")[-1]["update"]) == stopped_at < 4000

    resumed = finish(tmp_path, "--resume", "run_dir=cut")  # the stored config; no overrides repeated
    assert resumed.returncode == 0, resumed.stderr
    assert rows(tmp_path / "cut") == reference
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["env_steps"] == 64000 and summary["resumed_from_update"] == stopped_at


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_equals_the_uninterrupted_run(tmp_path, reference):
    killed = start(tmp_path, *CARTPOLE, "run_dir=killed")
    wait_for_rows(killed, tmp_path / "killed" / "metrics.csv", 20)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=60)
    resumed = finish(tmp_path, *CARTPOLE, "run_dir=killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert rows(tmp_path / "killed") == reference  # every update once, as if never stopped
