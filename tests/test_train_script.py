"""scripts/train.py end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train.py"
# The default command (PPO + S5 on a POPGym task) at a tiny size.
TINY = [
    "total_steps=256",
    "agent.num_envs=4",
    "agent.num_steps=16",
    "agent.update_epochs=1",
    "agent.num_minibatches=2",
    "agent.encoder_sizes=[]",
    "agent.head_sizes=[16]",
    "backbone.features=16",
    "backbone.options.num_layers=1",
    "backbone.options.state_size=8",
    "checkpoint_every=2",
    "progress=false",
]


def train(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("train")
    result = train(cwd, *TINY, "run_dir=run", "seeds=2")
    return cwd, result


def test_default_command_trains_and_fills_the_run_folder(finished_run):
    cwd, result = finished_run
    assert result.returncode == 0, result.stderr
    assert "run folder: run" in result.stdout and "final return" in result.stdout
    folder = cwd / "run"
    assert {p.name for p in folder.iterdir()} >= {"config.yaml", "metrics.csv", "summary.json", "curves.png", "checkpoint"}
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["agent"], summary["backbone"], summary["seeds"]) == ("ppo", "s5", 2)
    assert summary["env"].startswith("popgym/Repeat") and summary["env_steps"] == 256
    assert sorted(p.name for p in cwd.iterdir()) == ["run"]  # no outputs/, .hydra/ or log files from Hydra


def test_a_misspelt_key_is_one_sentence_and_exit_code_2(tmp_path):
    result = train(tmp_path, "agent.lerning_rate=1e-3")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()
    ] and result.stderr.startswith("error: Unknown key 'agent.lerning_rate'; did you mean 'learning_rate'?")
    assert list(tmp_path.iterdir()) == []


def test_a_wrong_type_is_one_sentence_and_exit_code_2(tmp_path):
    result = train(tmp_path, "agent.learning_rate=fast", "progress=false")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == "error: Key 'agent.learning_rate' expects a number, got 'fast' (str)."


def test_resume_under_another_config_is_refused(finished_run):
    cwd, _ = finished_run
    result = train(cwd, *TINY, "run_dir=run", "seeds=2", "agent.learning_rate=0.5", "--resume")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "was written under another config (changed: agent.learning_rate" in result.stderr
