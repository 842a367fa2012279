"""scripts/compare_backbones.py --worldmodel end to end at tiny sizes, and its input checks."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from mnemax.experiment import memory_benchmark as bench

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_backbones.py"
TINY_TWO_ROOMS = [
    "--task-option", "TwoRooms.room_size=3",
    "--task-option", "TwoRooms.points_per_room=1",
    "--task-option", "TwoRooms.episode_length=20",
    "--task-option", "TwoRooms.context_length=14",
]


def load_script():
    spec = importlib.util.spec_from_file_location("compare_backbones", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Run the flag once: TwoRooms, gru and s5, 2 seeds, a few updates; returns (doc text, figure path, data dir)."""
    out = tmp_path_factory.mktemp("memory_benchmark")
    doc, figure, data = out / "MEMORY_BENCHMARK.md", out / "memory_benchmark.png", out / "data"
    argv = [
        "--worldmodel", "--envs", "memory/TwoRooms", "--backbones", "gru", "s5", "--seeds", "2",
        "--episodes", "6", "--eval-episodes", "2", "--updates", "2", "--batch-size", "2", "--features", "16",
        *TINY_TWO_ROOMS, "--data-dir", str(data), "--doc", str(doc), "--figure", str(figure),
    ]
    load_script().main(argv)
    return doc.read_text(), figure, data


def table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("| TwoRooms")]


def test_worldmodel_flag_writes_one_row_per_backbone(report):
    text, figure, _ = report
    rows = table_rows(text)
    assert [r[1] for r in rows] == ["gru (RSSM)", "s5"]
    for row in rows:
        mse, oracle, mean_frame, throughput = float(row[4].split("±")[0]), float(row[5]), float(row[6]), float(row[8].replace(",", ""))
        assert mse > oracle and throughput > 0  # two updates do not make a perfect memory
        assert oracle < 1e-6 < mean_frame  # the static rooms: perfect memory scores zero, the mean frame does not
        assert row[7] == "-"  # reward accuracy is reported for DistractingMemory only
    assert "--worldmodel" in text and "context 14" in text
    assert figure.stat().st_size > 1000 and figure.read_bytes()[:4] == b"\x89PNG"


def test_rerun_keeps_text_outside_the_results_and_reuses_the_dataset(report, tmp_path):
    text, _, data = report
    (written,) = data.glob("TwoRooms-6-seed0-*.npz")
    doc = tmp_path / "doc.md"
    doc.write_text("# Title\n\nreading before\n\n<!-- results -->\nold\n<!-- /results -->\n\nreading after\n")
    rows = bench.compare_world_models(
        ["memory/TwoRooms"], ["gru"], 1,
        bench.WorldModelBudget(episodes=6, eval_episodes=2, updates=2, batch_size=2, features=16),
        [bench.parse_task_option(t) for t in TINY_TWO_ROOMS[1::2]], data_dir=data, log=lambda line: None,
    )
    assert list(data.glob("*.npz")) == [written]
    errors = rows[0]["errors"]  # [seeds, query steps]
    assert errors.shape == (1, 6) and np.isfinite(errors).all()
    bench.write_report(rows, doc, tmp_path / "f.png", "cmd", 1, bench.WorldModelBudget(), "here")
    new = doc.read_text()
    (row,) = table_rows(new)
    # The table states what was measured: first and last quarter (one step of six here) and the whole horizon.
    reported = [float(cell.split("±")[0]) for cell in row[2:5]]
    np.testing.assert_allclose(reported, [errors[0, 0], errors[0, -1], errors[0].mean()], atol=5e-5)
    assert "reading before" in new and "reading after" in new and "old" not in new
    assert len(re.findall(r"^\| TwoRooms", new, re.M)) == 1


@pytest.mark.parametrize(
    "text, problem",
    [("TwoRooms.episode_length", "Task.name=value"), ("Nowhere.x=1", "Task.name=value"), ("episode_length=3", "Task.name=value")],
)
def test_bad_task_option_is_one_clear_error(text, problem):
    with pytest.raises(ValueError, match=problem):
        bench.parse_task_option(text)


def test_task_option_values_are_literals():
    assert bench.parse_task_option("memory/TwoRooms.rooms=(1, 3)") == ("TwoRooms", "rooms", (1, 3))


def test_non_memory_env_and_bad_budget_exit_with_a_message(capsys):
    script = load_script()
    with pytest.raises(SystemExit) as exit_info:
        script.main(["--worldmodel", "--envs", "popgym/RepeatFirstEasy", "--backbones", "gru", "--seeds", "1"])
    assert exit_info.value.code == 2 and "is not a memory task" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--worldmodel", "--episodes", "4", "--eval-episodes", "4"])
    assert "leaves no training episodes" in capsys.readouterr().err
