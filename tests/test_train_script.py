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


def test_help_lists_resume_the_exit_codes_and_user_envs(tmp_path):
    result = train(tmp_path, "--help")
    assert result.returncode == 0 and list(tmp_path.iterdir()) == []
    text = result.stdout
    assert "--resume" in text and "--skip-env-check" in text and "env.name=my_pkg.my_mod:MyEnv" in text
    codes = text[text.index("exit codes:"):]
    for code, meaning in (("0", "finished"), ("1", "diverged"), ("2", "bad input"), ("3", "unexpected error"), ("130", "interrupted")):
        assert f"  {code} " in codes and meaning in codes


USER_ENVS = '''
import jax
import jax.numpy as jnp
from gymnax.environments import environment, spaces


class Counter(environment.Environment):
    """Two actions, a counter observed as float32 in [0, 1]."""

    @property
    def default_params(self):
        return environment.EnvParams(max_steps_in_episode=8)

    def reset_env(self, key, params):
        state = environment.EnvState(time=jnp.int32(0))
        return self.get_obs(state), state

    def step_env(self, key, state, action, params):
        state = environment.EnvState(time=state.time + 1)
        return self.get_obs(state), state, jnp.float32(1.0), self.terminated(action), {}

    def terminated(self, action):
        return action == 1

    def get_obs(self, state, params=None, key=None):
        return jnp.full((3,), state.time / 8, jnp.float32)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params=None):
        return spaces.Box(0.0, 1.0, (3,), jnp.float32)


class FloatTerminated(Counter):
    def terminated(self, action):
        return (action == 1).astype(jnp.float32)


class BrokenStep(Counter):
    def terminated(self, action):
        raise RuntimeError("the physics engine is not initialised")
'''


def train_in_process(cwd: Path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``main()`` of scripts/train.py in this process (no interpreter start-up): ``(exit code, stderr)``."""
    import importlib.util

    (cwd / "planted_envs.py").write_text(USER_ENVS)
    monkeypatch.syspath_prepend(str(cwd))
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    spec = importlib.util.spec_from_file_location("train_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exited:
        script.main()
    return exited.value.code, capsys.readouterr().err


def test_a_user_env_that_fails_its_checks_stops_with_exit_code_2_before_compiling(tmp_path, monkeypatch, capsys):
    code, stderr = train_in_process(tmp_path, monkeypatch, capsys, "env.name=planted_envs:FloatTerminated", "backbone=none",
                                    "run_dir=run", "progress=false")
    assert code == 2 and "Traceback" not in stderr, stderr
    assert stderr.startswith("error: The env 'planted_envs:FloatTerminated' has 1 problem(s) that training would hit")
    assert "step's terminated has dtype float32" in stderr and "--skip-env-check" in stderr
    assert not (tmp_path / "run").exists()


def test_an_unexpected_error_is_exit_code_3_with_the_log_file_named(tmp_path, monkeypatch, capsys):
    code, stderr = train_in_process(tmp_path, monkeypatch, capsys, "env.name=planted_envs:BrokenStep", "backbone=none",
                                    "run_dir=run", "progress=false", "--skip-env-check")
    assert code == 3, stderr
    message = stderr.strip()
    assert message.startswith("error: The run stopped on an unexpected RuntimeError: the physics engine is not initialised")
    log = Path(message.rsplit("the traceback is in ", 1)[1].rstrip("."))
    assert "RuntimeError: the physics engine is not initialised" in log.read_text()
    assert not (tmp_path / "run").exists()  # it never trained, so it left no folder
    log.unlink()


def test_a_value_error_from_the_config_pass_is_exit_code_2_with_its_sentence(tmp_path, monkeypatch, capsys):
    import mnemax.experiment.composition as composition

    def refuse(cfg):
        raise ValueError("Key 'agent.clip_eps' must be positive, got -0.2.")

    monkeypatch.setattr(composition, "to_run_config", refuse)
    code, stderr = train_in_process(tmp_path, monkeypatch, capsys, "agent.clip_eps=-0.2", "run_dir=run")
    assert (code, stderr) == (2, "error: Key 'agent.clip_eps' must be positive, got -0.2.\n")
    assert not (tmp_path / "run").exists()
