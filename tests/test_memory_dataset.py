"""Memory-task datasets: collection, the file round trip, clear errors for bad files, batches, the script."""

from __future__ import annotations

import functools
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemax.envs.memory import TwoRooms
from mnemax.envs.memory import dataset as memory_dataset

OPTIONS = {"room_size": 3, "points_per_room": 2, "episode_length": 48, "context_length": 24}
EPISODES = 4
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_dataset.py"


@functools.lru_cache(maxsize=None)
def tiny_env():
    env = TwoRooms(**OPTIONS)
    return env, env.default_params


@functools.lru_cache(maxsize=None)
def tiny_dataset() -> memory_dataset.MemoryDataset:
    env, params = tiny_env()
    arrays = memory_dataset.collect(env, params, EPISODES, seed=7, batch_size=EPISODES)
    return memory_dataset.MemoryDataset(arrays, memory_dataset.make_header("memory/TwoRooms", OPTIONS, env, 7, arrays))


def saved(tmp_path: Path) -> Path:
    path = tmp_path / "two.npz"
    memory_dataset.save(path, tiny_dataset())
    return path


def test_collected_arrays_follow_the_documented_layout():
    env, _ = tiny_env()
    arrays = tiny_dataset().arrays
    t, n = env.episode_length, EPISODES
    assert arrays["obs"].shape == (t, n, 32, 32, 3) and arrays["obs"].dtype == np.uint8
    assert arrays["action"].shape == (t, n) and arrays["action"].dtype == np.int32
    assert arrays["reward"].shape == (t, n) and arrays["reward"].dtype == np.float32
    assert arrays["position"].shape == (t, n, 2)
    np.testing.assert_array_equal(arrays["reset"], np.arange(t)[:, None].repeat(n, 1) == 0)
    # action[t] is taken at obs[t] and leads to position[t + 1] (the scripted walk never hits a wall).
    moves = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])
    np.testing.assert_array_equal(arrays["position"][1:], arrays["position"][:-1] + moves[arrays["action"][:-1]])


def test_collection_is_reproducible_whatever_the_batch_size():
    env, params = tiny_env()
    in_halves = memory_dataset.collect(env, params, 3, seed=7, batch_size=2)  # a padded last batch
    for field, array in tiny_dataset().arrays.items():
        np.testing.assert_array_equal(in_halves[field], array[:, :3])


def test_round_trip_gives_identical_arrays(tmp_path):
    loaded = memory_dataset.load(saved(tmp_path))
    original = tiny_dataset()
    assert loaded.arrays.keys() == original.arrays.keys()
    for field in original.arrays:
        assert loaded.arrays[field].dtype == original.arrays[field].dtype
        np.testing.assert_array_equal(loaded.arrays[field], original.arrays[field])
    assert loaded.header == json.loads(json.dumps(original.header))
    assert loaded.header["env"] == "memory/TwoRooms" and loaded.header["env_kwargs"] == OPTIONS
    assert (loaded.num_episodes, loaded.episode_length, loaded.context_length) == (EPISODES, 48, 24)


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_file_gets_one_clear_error(tmp_path, keep):
    path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="truncated or not an .npz archive") as error:
        memory_dataset.load(path)
    assert "make_dataset.py" in str(error.value) and "\n" not in str(error.value)


def test_foreign_files_get_one_clear_error(tmp_path):
    cases = {}
    cases["other.npz"] = lambda p: np.savez(p, obs=np.zeros((2, 2)))
    cases["array.npy"] = lambda p: np.save(p, np.zeros(3))
    cases["text.npz"] = lambda p: p.write_text("not a dataset")
    cases["wrong_format.npz"] = lambda p: np.savez(p, header=np.asarray(json.dumps({"format": "something-else"})))
    messages = {}
    for name, write in cases.items():
        path = tmp_path / name
        write(path)
        with pytest.raises(ValueError) as error:
            memory_dataset.load(path)
        messages[name] = str(error.value)
        assert "\n" not in messages[name] and name in messages[name]
    assert "not a mnemax memory dataset" in messages["other.npz"]
    assert "not a mnemax memory dataset" in messages["wrong_format.npz"]
    assert "single array" in messages["array.npy"]
    assert "truncated or not an .npz archive" in messages["text.npz"]
    with pytest.raises(FileNotFoundError, match="make_dataset.py"):
        memory_dataset.load(tmp_path / "missing.npz")


def test_a_file_missing_a_field_or_from_a_newer_version_is_refused(tmp_path):
    path = saved(tmp_path)
    with np.load(path) as archive:
        contents = {name: archive[name] for name in archive.files}
    fewer = dict(contents)
    del fewer["reward"]
    np.savez(tmp_path / "fewer.npz", **fewer)
    with pytest.raises(ValueError, match="incomplete memory dataset .*lacks reward"):
        memory_dataset.load(tmp_path / "fewer.npz")
    header = json.loads(str(contents["header"]))
    newer = {**contents, "header": np.asarray(json.dumps({**header, "version": memory_dataset.VERSION + 1}))}
    np.savez(tmp_path / "newer.npz", **newer)
    with pytest.raises(ValueError, match="newer than the version"):
        memory_dataset.load(tmp_path / "newer.npz")
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == sorted(f"{f}.npy" for f in ("header", *memory_dataset.FIELDS))


def test_batches_cover_each_episode_once_per_epoch():
    data = tiny_dataset()
    seen = []
    for batch in memory_dataset.batches(data, 2, seed=1, epochs=2):
        assert batch["obs"].shape == (48, 2, 32, 32, 3)
        for b in range(2):
            column = np.flatnonzero((data.arrays["obs"] == batch["obs"][:, b : b + 1]).all(axis=(0, 2, 3, 4)))
            seen.append(int(column[0]))
    assert sorted(seen) == sorted(list(range(EPISODES)) * 2)


@settings(max_examples=10)
@given(batch_size=st.integers(1, EPISODES), length=st.integers(1, 48), seed=st.integers(0, 1000))
def test_windows_are_contiguous_slices_that_start_fresh(batch_size, length, seed):
    data = tiny_dataset()
    batch = next(memory_dataset.batches(data, batch_size, sequence_length=length, seed=seed))
    assert batch["obs"].shape[:2] == (length, batch_size)
    assert batch["reset"][0].all() and not batch["reset"][1:].any()
    action = data.arrays["action"]
    for b in range(batch_size):
        matches = [
            (e, s)
            for e in range(EPISODES)
            for s in range(48 - length + 1)
            if np.array_equal(action[s : s + length, e], batch["action"][:, b])
            and np.array_equal(data.arrays["obs"][s : s + length, e], batch["obs"][:, b])
        ]
        assert matches, "a window is not a contiguous slice of an episode"


def test_previous_actions_shift_the_actions_and_start_episodes_at_zero():
    action = np.array([[1, 3], [2, 0], [0, 2]])
    reset = np.array([[True, True], [False, True], [False, False]])
    previous = memory_dataset.previous_actions(action, reset, 4)
    assert previous.shape == (3, 2, 4) and previous.dtype == np.float32
    np.testing.assert_array_equal(previous[:, 0], np.eye(4)[[0, 1, 2]] * [[0], [1], [1]])
    np.testing.assert_array_equal(previous[:, 1], [np.zeros(4), np.zeros(4), np.eye(4)[0]])


def test_bad_batch_arguments_get_one_clear_sentence():
    data = tiny_dataset()
    with pytest.raises(ValueError, match="batch_size must be in"):
        next(memory_dataset.batches(data, EPISODES + 1))
    with pytest.raises(ValueError, match="sequence_length must be in"):
        next(memory_dataset.batches(data, 1, sequence_length=49))


def load_script():
    spec = importlib.util.spec_from_file_location("make_dataset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_dataset_script_writes_a_loadable_file(tmp_path, capsys):
    script = load_script()
    out = tmp_path / "two.npz"
    options = [f"--set={name}={value}" for name, value in OPTIONS.items()]
    script.main(["memory/TwoRooms", "--episodes", "3", "--seed", "7", "--out", str(out), *options])
    loaded = memory_dataset.load(out)
    assert loaded.header["env"] == "memory/TwoRooms" and loaded.header["seed"] == 7
    assert loaded.header["env_kwargs"] == OPTIONS
    np.testing.assert_array_equal(loaded.arrays["obs"], tiny_dataset().arrays["obs"][:, :3])
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["popgym/RepeatPreviousEasy", "--episodes", "2"], "not a memory task"),
        (["memory/TwoRooms", "--episodes", "2", "--set", "context_length=5"], "raise context_length"),
        (["memory/TwoRooms", "--episodes", "2", "--set", "colour=3"], "takes no option"),
    ],
)
def test_make_dataset_script_reports_bad_requests_in_one_sentence(argv, message):
    with pytest.raises(SystemExit, match=message) as error:
        load_script().main(argv)
    assert "\n" not in str(error.value)
