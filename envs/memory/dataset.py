"""Datasets of scripted episodes for world-model training: collect, save, load, batch.

Arrays are time-major, ``[T, N, ...]``, one column per episode, ``T =
episode_length``:

==========  ====================  ====================================================
field       dtype, shape          meaning
==========  ====================  ====================================================
obs         uint8 [T, N, H, W, 3]  the frame seen at step t (divide by 255 for [0, 1])
action      int32 [T, N]           the action taken at step t, after seeing obs[t]
reward      float32 [T, N]         the reward received on arriving at obs[t] (0 at t=0)
reset       bool [T, N]            obs[t] is the first of an episode (t = 0)
position    int32 [T, N, 2]        the agent's (row, col) in the world grid at step t
==========  ====================  ====================================================

This is DreamerV3's layout (``is_first``, action taken at the observation).
Steps ``t >= context_length`` (in the file's header) are the query horizon.

A file is an ``.npz`` holding these arrays and ``header``, a JSON string with
the format name and version, the environment's registry name and keyword
arguments, the seed, and the lengths. Episodes are reproducible: episode ``i``
of seed ``s`` is rolled out from ``fold_in(PRNGKey(s), i)``, whatever the
batch size.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import zipfile
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from mnemax.envs.memory.gridworld import GridMemoryEnv, scripted_policy

FORMAT = "mnemax.memory-dataset"
VERSION = 1
FIELDS = ("obs", "action", "reward", "reset", "position")
Policy = Callable[[jax.Array, Any], jax.Array]
"""``policy(key, state) -> action``, as :func:`~mnemax.envs.memory.gridworld.scripted_policy`."""


def episode_rollout(env: GridMemoryEnv, params: Any, policy: Policy = scripted_policy) -> Callable[[jax.Array], dict]:
    """``key -> {field: [T, ...]}``: one whole episode of ``env`` under ``policy``.

    Steps with ``step_env`` (no auto-reset): an episode is exactly
    ``env.episode_length`` observations. Vmap and jit the result.
    """
    length = env.episode_length

    def run(key: jax.Array) -> dict[str, jax.Array]:
        reset_key, step_key = jax.random.split(key)
        obs, state = env.reset_env(reset_key, params)

        def step(carry, key):
            obs, state = carry
            action = jnp.asarray(policy(key, state), jnp.int32)
            next_obs, next_state, reward, _, _ = env.step_env(key, state, action, params)
            record = {"obs": obs, "action": action, "position": env.world_position(state), "next_reward": reward}
            return (next_obs, next_state), record

        _, records = jax.lax.scan(step, (obs, state), jax.random.split(step_key, length))
        reward = jnp.concatenate([jnp.zeros((1,), jnp.float32), records.pop("next_reward")[:-1]])
        return {**records, "reward": reward, "reset": jnp.arange(length) == 0}

    return run


def collect(
    env: GridMemoryEnv,
    params: Any,
    num_episodes: int,
    seed: int = 0,
    batch_size: int = 64,
    policy: Policy = scripted_policy,
) -> dict[str, np.ndarray]:
    """Roll out ``num_episodes`` episodes (``batch_size`` at a time, jit + vmap): ``{field: [T, N, ...]}`` numpy arrays."""
    if not isinstance(num_episodes, (int, np.integer)) or num_episodes < 1:
        raise ValueError(f"num_episodes must be a positive integer, got {num_episodes!r}.")
    batch_size = int(min(batch_size, num_episodes))
    rollout = _compiled_rollout(env, params, policy)
    root = jax.random.PRNGKey(seed)
    chunks = []
    for start in range(0, num_episodes, batch_size):
        indices = np.arange(start, start + batch_size)  # the last chunk is padded and cut, to keep one compile
        keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(indices)
        chunks.append(jax.device_get(rollout(keys)))
    return {field: np.concatenate([c[field] for c in chunks], axis=1)[:, :num_episodes] for field in FIELDS}


@functools.lru_cache(maxsize=32)
def _compiled_rollout(env: GridMemoryEnv, params: Any, policy: Policy) -> Callable[[jax.Array], dict]:
    """``keys [B] -> {field: [T, B, ...]}``, jitted once per (env, params, policy) and reused across calls."""
    return jax.jit(jax.vmap(episode_rollout(env, params, policy), out_axes=1))


@dataclasses.dataclass
class MemoryDataset:
    """Episodes as ``{field: [T, N, ...]}`` numpy arrays plus the header that describes them."""

    arrays: dict[str, np.ndarray]
    header: dict[str, Any]

    @property
    def num_episodes(self) -> int:
        return int(self.arrays["obs"].shape[1])

    @property
    def episode_length(self) -> int:
        return int(self.arrays["obs"].shape[0])

    @property
    def context_length(self) -> int:
        return int(self.header["context_length"])


def make_header(env_name: str, env_kwargs: dict[str, Any], env: GridMemoryEnv, seed: int, arrays: dict[str, np.ndarray]) -> dict:
    """The JSON header saved with a dataset."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "env": env_name,
        "env_kwargs": env_kwargs,
        "seed": int(seed),
        "episode_length": env.episode_length,
        "context_length": env.context_length,
        "layout": "time-major [T, N, ...]; action[t] taken at obs[t]; reward[t] received on arriving at obs[t]",
        "fields": {name: {"dtype": str(a.dtype), "shape": list(a.shape)} for name, a in arrays.items()},
    }


def save(path: str | os.PathLike, dataset: MemoryDataset) -> None:
    """Write ``dataset`` to ``path`` (an ``.npz``, compressed)."""
    missing = [f for f in FIELDS if f not in dataset.arrays]
    if missing:
        raise ValueError(f"The dataset lacks field(s) {', '.join(missing)}; build it with collect().")
    directory = os.path.dirname(os.fspath(path))
    if directory:
        os.makedirs(directory, exist_ok=True)
    np.savez_compressed(path, header=np.asarray(json.dumps(dataset.header)), **{f: dataset.arrays[f] for f in FIELDS})


def load(path: str | os.PathLike) -> MemoryDataset:
    """Read a dataset written by :func:`save`; a missing, truncated or foreign file raises one clear error."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No dataset at {path!r}; write one with scripts/make_dataset.py.")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError(f"{path!r} holds a single array, not a mnemax memory dataset; write one with scripts/make_dataset.py.")
        with archive:
            contents = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        if str(error).startswith(repr(path)):
            raise
        raise ValueError(
            f"{path!r} is truncated or not an .npz archive ({type(error).__name__}: {error}); regenerate it with scripts/make_dataset.py."
        ) from None
    header = _header(contents.get("header"))
    if header is None:
        raise ValueError(f"{path!r} is not a mnemax memory dataset (no {FORMAT!r} header); write one with scripts/make_dataset.py.")
    if int(header.get("version", -1)) > VERSION:
        raise ValueError(
            f"{path!r} is a version {header['version']} memory dataset, newer than the version {VERSION} this mnemax reads; "
            "upgrade mnemax or regenerate the file."
        )
    missing = [f for f in FIELDS if f not in contents]
    sizes = {f: contents[f].shape[:2] for f in FIELDS if f in contents}
    expected = tuple(header.get("fields", {}).get("obs", {}).get("shape", [])[:2])
    if missing or len(set(sizes.values())) != 1 or sizes["obs"] != expected:
        problem = f"lacks {', '.join(missing)}" if missing else f"holds arrays of [T, N] sizes {sizes}, header says {expected}"
        raise ValueError(f"{path!r} is an incomplete memory dataset (it {problem}); regenerate it with scripts/make_dataset.py.")
    return MemoryDataset({f: contents[f] for f in FIELDS}, header)


def _header(raw: np.ndarray | None) -> dict | None:
    """The decoded header if ``raw`` is a memory-dataset header, else None."""
    if raw is None or raw.dtype.kind != "U" or raw.shape != ():
        return None
    try:
        header = json.loads(str(raw))
    except json.JSONDecodeError:
        return None
    return header if isinstance(header, dict) and header.get("format") == FORMAT else None


def previous_actions(action: np.ndarray, reset: np.ndarray, num_actions: int) -> np.ndarray:
    """``[T, B, A]`` float32 one-hot of the action taken before each step, zero where ``reset``.

    Converts this layout (``action[t]`` taken at ``obs[t]``) to the one a
    world model's prior consumes (``a_{t-1}`` arriving with ``x_t``, as
    ``mnemax.worldmodels.losses.SequenceBatch.prev_actions``).
    """
    action, reset = np.asarray(action), np.asarray(reset)
    previous = np.concatenate([np.zeros_like(action[:1]), action[:-1]])
    one_hot = np.eye(num_actions, dtype=np.float32)[previous]
    return np.where(reset[..., None], 0.0, one_hot).astype(np.float32)


def batches(
    dataset: MemoryDataset,
    batch_size: int,
    *,
    sequence_length: int | None = None,
    seed: int = 0,
    epochs: int | None = 1,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``{field: [L, B, ...]}`` batches of episodes in a random order, ``epochs`` passes (None: forever).

    ``L`` is the episode length, or ``sequence_length`` for random windows of
    it; a window's first step is marked ``reset`` (the model starts it from a
    fresh state). The last incomplete batch of a pass is dropped.
    """
    if not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= dataset.num_episodes:
        raise ValueError(f"batch_size must be in [1, {dataset.num_episodes}] (the number of episodes), got {batch_size!r}.")
    length = dataset.episode_length
    if sequence_length is not None and not 1 <= sequence_length <= length:
        raise ValueError(f"sequence_length must be in [1, {length}] (the episode length), got {sequence_length!r}.")
    rng = np.random.default_rng(seed)
    epoch = 0
    while epochs is None or epoch < epochs:
        order = rng.permutation(dataset.num_episodes)
        for first in range(0, dataset.num_episodes - batch_size + 1, batch_size):
            episodes = order[first : first + batch_size]
            if sequence_length is None:
                yield {f: a[:, episodes] for f, a in dataset.arrays.items()}
                continue
            starts = rng.integers(0, length - sequence_length + 1, size=batch_size)
            steps = starts[None, :] + np.arange(sequence_length)[:, None]  # [L, B]
            batch = {f: a[steps, episodes[None, :]] for f, a in dataset.arrays.items()}
            batch["reset"] = batch["reset"].copy()
            batch["reset"][0] = True
            yield batch
        epoch += 1
