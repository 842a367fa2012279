"""The resumable comparisons (scripts/grounded.py, scripts/leaderboard.py): cells are run folders, reruns skip them.

Tiny budgets: what is checked is the bookkeeping (a rerun trains nothing and
gives the same figures, evaluations are stored and reused, the report has
one row per cell) and the scores' arithmetic, not learning.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnemax.experiment import grounded, leaderboard
from mnemax.experiment.compare import Variant, user_errors_exit
from mnemax.experiment.config import ConfigError
from mnemax.experiment.runner import DivergenceError, RunInterrupted

TINY = ("agent.num_envs=4", "agent.num_steps=16", "agent.num_minibatches=2", "agent.update_epochs=1",
        "agent.encoder_sizes=[8]", "agent.head_sizes=[8]", "checkpoint_every=0")


def test_mmer_is_the_best_update_per_seed_and_skips_updates_without_episodes():
    returns = np.asarray([[np.nan, 0.1], [0.5, np.nan], [0.2, 0.3]])
    np.testing.assert_allclose(leaderboard.mmer(returns), [0.5, 0.3])
    np.testing.assert_allclose(leaderboard.final_returns(returns, fraction=0.34), [0.35, 0.3])


def test_mean_rank_averages_ties_and_tasks():
    def cell(task, core, final):
        return leaderboard.LeaderboardCell(task, core, None, {}, np.zeros(2), np.asarray(final), 1)

    cells = [cell("a", "x", [1.0, 1.0]), cell("a", "y", [0.0, 0.0]), cell("a", "z", [0.0, 0.0]),
             cell("b", "x", [0.0, 0.0]), cell("b", "y", [2.0, 2.0]), cell("b", "z", [np.nan, np.nan])]
    assert leaderboard.mean_ranks(cells) == {"x": 1.5, "y": 1.75, "z": 2.75}
    unfinished = cells + [cell("c", "x", [0.0, 0.0])]  # y and z have not run task c: it is not ranked yet
    assert leaderboard.complete_tasks(unfinished) == ["a", "b"]
    assert leaderboard.mean_ranks(unfinished) == leaderboard.mean_ranks(cells)


def test_leaderboard_rerun_skips_finished_cells(tmp_path):
    logged = []
    tasks, cores = ["popgym/RepeatPreviousEasy"], ["none", "gru"]
    first = leaderboard.run_grid(tasks, cores, tmp_path, 128, 2, TINY, log=logged.append)
    again = leaderboard.run_grid(tasks, cores, tmp_path, 128, 2, TINY, log=logged.append)
    assert [line.split(":")[1].split(";")[0].strip() for line in logged] == ["trained"] * 2 + ["already done"] * 2
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.final, b.final)
        assert a.parameters == b.parameters > 0
    assert first[1].parameters > first[0].parameters  # the GRU adds parameters to the feed-forward floor
    leaderboard.write_report(first, tmp_path / "LB.md", tmp_path / "lb.png", "cmd", "machine", 128, 2)
    text = (tmp_path / "LB.md").read_text()
    assert "| popgym/RepeatPreviousEasy | gru |" in text and (tmp_path / "lb.png").exists()
    assert "cells are finished" not in text  # the whole grid is there

    # Reporting part of a bigger grid trains nothing: finished cells are read back, the missing one is named.
    logged.clear()
    partial = leaderboard.run_grid(tasks, [*cores, "lstm"], tmp_path, 128, 2, TINY, log=logged.append, train=False)
    assert [c.core for c in partial] == cores and logged[-1] == "popgym/RepeatPreviousEasy lstm: not run yet"
    for a, b in zip(first, partial):
        np.testing.assert_array_equal(a.final, b.final)
    assert not (tmp_path / "popgym-RepeatPreviousEasy" / "lstm").exists()
    leaderboard.write_report(partial, tmp_path / "LB.md", tmp_path / "lb.png", "cmd", "machine", 128, 2, planned=3)
    assert "**2 of 3 cells are finished**" in (tmp_path / "LB.md").read_text()


def test_leaderboard_cores_are_within_the_parameter_band_and_runs_keep_the_yaml_defaults():
    from mnemax.experiment.compare import parameter_count
    from mnemax.experiment.composition import load_run_config

    # The task with the smallest observation: the shared encoder and heads weigh least, so the ratio is largest.
    task = "popgym/NoisyPositionOnlyPendulumEasy"
    counts = {core: parameter_count(load_run_config(leaderboard.cell_overrides(task, core, 4096, 1, ())))
              for core in leaderboard.CORES}
    memory = [n for core, n in counts.items() if core != "none"]
    assert max(memory) / min(memory) <= leaderboard.PARAMETER_BAND
    assert min(memory) > 2 * counts["none"]  # every core adds a memory of its own to the floor
    cells = [leaderboard.LeaderboardCell(task, core, None, {}, np.zeros(1), np.zeros(1), n) for core, n in counts.items()]
    assert leaderboard.parameter_spread(cells) == pytest.approx(max(memory) / min(memory))

    # The leaderboard's changes stay out of train.py's runs.
    assert leaderboard.core_overrides("gru") == ["backbone.features=80"]
    assert load_run_config(["backbone=gru"]).agent.backbone.features == 64


def test_grounded_cell_is_evaluated_once_and_reused(tmp_path):
    variant = Variant("gru", ("backbone=gru",))
    evaluations = grounded.EVALUATIONS[:2]
    logged = []
    common = (*TINY, "backbone.features=8", "progress=false")
    cell = grounded.run_cell(variant, tmp_path, 128, 2, 8, common=common, evaluations=evaluations, log=logged.append)
    assert set(cell.evaluation) == {"N=3", "N=5"} and all(0.0 <= v <= 1.0 for v in cell.evaluation["N=3"])
    stored = json.loads((tmp_path / "gru" / "evaluation.json").read_text())
    again = grounded.run_cell(variant, tmp_path, 128, 2, 8, common=common, evaluations=evaluations, log=logged.append)
    assert again.evaluation == stored == cell.evaluation
    assert sum("evaluating" in line for line in logged) == 1
    grounded.write_report([cell], tmp_path / "G.md", tmp_path / "g.png", "cmd", "machine", evaluations)
    assert "| gru |" in (tmp_path / "G.md").read_text()


def test_a_grounded_task_trains_and_evaluates_on_its_own_env_and_writes_its_own_block(tmp_path):
    from mnemax.experiment.composition import load_run_config

    fixed = grounded.TASKS["fixed-names"]
    evaluations = grounded.task_evaluations(fixed)
    assert "N=3, held-out names" not in [e.label for e in evaluations]  # one name per type: nothing is held out
    assert all(dict(e.kwargs)["naming"] == "fixed" for e in evaluations)
    config = load_run_config(grounded.cell_overrides(Variant("gru", ("backbone=gru",)), 4096, 1, (), fixed))
    assert dict(config.env.kwargs) == {"discovery": "shown", "view": "egocentric", "naming": "fixed"}
    assert config.experiment.name == "grounded-fixed-names-gru"
    assert [t.results_name for t in grounded.TASKS.values()] == ["grounded", "grounded-shown", "grounded-fixed-names"]
    dcem = Variant("dcem", ("backbone=dcem",))
    assert "backbone.options.capacity=32" in grounded.cell_overrides(dcem, 4096, 1, (), fixed)  # its core's settings
    assert not any("capacity" in o for o in grounded.cell_overrides(dcem, 4096, 1, (), grounded.TASKS["explore"]))

    shown = grounded.TASKS["shown"]
    common = (*TINY, "backbone.features=8", "progress=false")
    first = grounded.task_evaluations(shown)[:1]
    dcem = Variant("dcem", ("backbone=dcem", "backbone.options.key_size=4"))
    cell = grounded.run_cell(dcem, tmp_path, 128, 1, 8, common=common, evaluations=first, log=lambda _: None, task=shown)
    assert "discovery: shown" in (tmp_path / "dcem" / "config.yaml").read_text()
    looked = cell.evaluation[grounded.RETRIEVAL]  # where DCEM's read looked, one value per seed
    assert len(looked) == 1 and 0.0 < looked[0] < 1.0
    with pytest.raises(ValueError, match="needs a task with shown discovery"):
        grounded.retrieval_weight(None, None, grounded.TASKS["explore"], 8, None)
    doc = tmp_path / "G.md"
    doc.write_text("# Grounded\n\n<!-- results -->\nthe paper's task\n<!-- /results -->\n")
    grounded.write_report([cell], doc, tmp_path / "g.png", "cmd", "machine", first, task=shown)
    text = doc.read_text()
    assert "the paper's task" in text and "<!-- results-shown -->" in text and "shown one per step" in text
    assert f"| dcem | {grounded.RETRIEVAL} |" in text


def test_success_rate_counts_finished_episodes_only():
    import jax.numpy as jnp

    rewards = jnp.asarray([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    terminated = jnp.asarray([[False, False], [True, True], [False, False]])
    truncated = jnp.asarray([[False, False], [False, False], [True, False]])
    assert float(grounded.success_rate(rewards, terminated, truncated)) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "error, code",
    [(ConfigError("Unknown key 'agent.foo'."), 2), (DivergenceError("NaN loss at update 3."), 1),
     (RunInterrupted("Interrupted at update 3."), 130)],
)
def test_comparison_scripts_exit_with_train_py_codes_and_one_line(error, code, capsys):
    with pytest.raises(SystemExit) as exit_info:
        with user_errors_exit():
            raise error
    assert exit_info.value.code == code
    message = capsys.readouterr().err
    assert str(error) in message
    assert ("Rerun the same command" in message) == (code == 130)
