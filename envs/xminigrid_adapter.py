"""XLand-MiniGrid behind gymnax's 1.x interface, with its rulesets as a meta-RL task source.

    make("xminigrid/MiniGrid-DoorKey-5x5")
    make("xminigrid/XLand-MiniGrid-R1-9x9", benchmark="trivial-local", trials=4, split="train")

XLand-MiniGrid (Nikulin et al., 2024) returns a ``TimeStep`` whose
``step_type`` is LAST when an episode ends and whose ``discount`` is 0 only
when the goal was reached; ``discount == 0`` becomes ``terminated``, a LAST
step with ``discount == 1`` (``max_steps`` reached) becomes ``truncated``.
The observation is XLand's own egocentric ``[view, view, 2]`` uint8 grid of
(tile, colour) ids.

**Rulesets.** An XLand task is a ruleset: a goal, production rules and the
objects placed at reset. With ``benchmark`` set, a ruleset is drawn from the
benchmark's ``split`` at the start of each meta-episode of ``trials``
episodes; the episodes of a meta-episode share the ruleset (the grid is
regenerated between them) and only the last one's ending is the env's
``terminated``/``truncated``. ``info["trial"]`` is the index of the episode
a step belongs to, ``info["trial_end"]`` says that episode ended. The
benchmark's rulesets are shuffled with ``split_seed`` and cut into a
training part and a held-out part of ``held_out_fraction``, so training and
evaluation never share a ruleset. This is the in-context RL setting of the
XLand-MiniGrid paper.

Benchmarks: xminigrid's registered ones (``"trivial-21k"``, ``"small-1m"``,
...) are downloaded from the Hugging Face Hub into ``~/.xland_minigrid`` on
first use. ``"trivial-local"`` needs no download: ``num_rulesets`` rulesets
generated here, each with one goal (pick up, or stand next to, one object)
among ``num_objects`` distinct objects and no production rules, the kind of
task xminigrid's own ``trivial`` benchmark holds. XLand ids without a
benchmark use ``"trivial-local"`` with one trial (XLand's default ruleset has
no goal at all).

Install with ``pip install "mnemax[xminigrid]"``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from mnemax.envs.suite_adapter import SuiteEnv, SuiteParams, require_suite

LOCAL_BENCHMARK = "trivial-local"
SPLITS = ("train", "held_out")

# Objects a trivial ruleset may use (xminigrid.core.constants.Tiles) and their colours (Colors).
_OBJECT_TILES = (3, 4, 5, 7, 11, 12)  # BALL, SQUARE, PYRAMID, KEY, HEX, STAR
_OBJECT_COLORS = tuple(range(1, 11))  # RED ... BROWN
_AGENT_HOLD_GOAL, _AGENT_NEAR_GOAL = 1, 3  # xminigrid.core.goals encoding ids


# The ids of the pinned release (tests/test_env_suites.py checks them against the installed registry),
# listed here so that mnemax.envs.names() need not import the suite.
XMINIGRID_ENV_IDS = (
    "XLand-MiniGrid-R1-9x9",
    "XLand-MiniGrid-R1-11x11",
    "XLand-MiniGrid-R1-13x13",
    "XLand-MiniGrid-R1-15x15",
    "XLand-MiniGrid-R1-17x17",
    "XLand-MiniGrid-R2-9x9",
    "XLand-MiniGrid-R2-11x11",
    "XLand-MiniGrid-R2-13x13",
    "XLand-MiniGrid-R2-15x15",
    "XLand-MiniGrid-R2-17x17",
    "XLand-MiniGrid-R4-9x9",
    "XLand-MiniGrid-R4-11x11",
    "XLand-MiniGrid-R4-13x13",
    "XLand-MiniGrid-R4-15x15",
    "XLand-MiniGrid-R4-17x17",
    "XLand-MiniGrid-R6-13x13",
    "XLand-MiniGrid-R6-17x17",
    "XLand-MiniGrid-R6-19x19",
    "XLand-MiniGrid-R9-16x16",
    "XLand-MiniGrid-R9-19x19",
    "XLand-MiniGrid-R9-25x25",
    "MiniGrid-BlockedUnlockPickUp",
    "MiniGrid-DoorKey-5x5",
    "MiniGrid-DoorKey-6x6",
    "MiniGrid-DoorKey-8x8",
    "MiniGrid-DoorKey-16x16",
    "MiniGrid-Empty-5x5",
    "MiniGrid-Empty-6x6",
    "MiniGrid-Empty-8x8",
    "MiniGrid-Empty-16x16",
    "MiniGrid-EmptyRandom-5x5",
    "MiniGrid-EmptyRandom-6x6",
    "MiniGrid-EmptyRandom-8x8",
    "MiniGrid-EmptyRandom-16x16",
    "MiniGrid-FourRooms",
    "MiniGrid-LockedRoom",
    "MiniGrid-MemoryS8",
    "MiniGrid-MemoryS16",
    "MiniGrid-MemoryS32",
    "MiniGrid-MemoryS64",
    "MiniGrid-MemoryS128",
    "MiniGrid-Playground",
    "MiniGrid-Unlock",
    "MiniGrid-UnlockPickUp",
)



def trivial_rulesets(seed: int, num_rulesets: int, num_objects: int = 3) -> Any:
    """Up to ``num_rulesets`` distinct goal-only rulesets as an ``xminigrid.benchmarks.Benchmark``, drawn from ``seed``.

    Each ruleset places ``num_objects`` distinct (tile, colour) objects and asks
    the agent to pick up one of them or stand next to it (``AgentHoldGoal`` or
    ``AgentNearGoal``). Arrays: goals ``[N, 5]``, rules ``[N, 1, 7]`` (no rule),
    init_tiles ``[N, num_objects, 2]``, all uint8.
    """
    from xminigrid.benchmarks import Benchmark
    from xminigrid.core.goals import MAX_GOAL_ENCODING_LEN
    from xminigrid.core.rules import MAX_RULE_ENCODING_LEN

    objects = np.array([(t, c) for t in _OBJECT_TILES for c in _OBJECT_COLORS], np.uint8)  # [O, 2]
    if not 1 <= num_objects <= len(objects):
        raise ValueError(f"num_objects must be between 1 and {len(objects)}, got {num_objects}.")
    if num_rulesets < 2:
        raise ValueError(f"num_rulesets must be at least 2 (a training and a held-out part), got {num_rulesets}.")
    rng = np.random.default_rng(seed)
    picks = np.argsort(rng.random((num_rulesets, len(objects))), axis=1)[:, :num_objects]  # distinct per row
    init_tiles = objects[picks]  # [N, K, 2]; the first object is the goal's
    goals = np.zeros((num_rulesets, MAX_GOAL_ENCODING_LEN), np.uint8)
    goals[:, 0] = np.where(rng.random(num_rulesets) < 0.5, _AGENT_HOLD_GOAL, _AGENT_NEAR_GOAL)
    goals[:, 1:3] = init_tiles[:, 0]
    # Drop repeated rulesets, so that a split never puts one ruleset on both sides.
    _, first = np.unique(np.concatenate([goals, init_tiles.reshape(num_rulesets, -1)], axis=1), axis=0, return_index=True)
    keep = np.sort(first)
    return Benchmark(
        goals=jnp.asarray(goals[keep]),
        rules=jnp.zeros((len(keep), 1, MAX_RULE_ENCODING_LEN), jnp.uint8),
        init_tiles=jnp.asarray(init_tiles[keep]),
        num_rules=jnp.zeros(len(keep), jnp.int32),
    )


def split_rulesets(rulesets: Any, held_out_fraction: float, seed: int) -> tuple[Any, Any]:
    """``(train, held_out)``: the rulesets shuffled with ``seed`` (numpy) and cut, ``held_out_fraction`` held out."""
    count = rulesets.num_rulesets()
    order = np.random.default_rng(seed).permutation(count)
    cut = count - max(1, round(count * held_out_fraction))
    def part(index: np.ndarray) -> Any:
        return jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[index]), rulesets)

    return part(order[:cut]), part(order[cut:])


def load_rulesets(benchmark: str, num_rulesets: int, num_objects: int) -> Any:
    """The named benchmark: generated for ``"trivial-local"``, else xminigrid's (downloaded once)."""
    if benchmark == LOCAL_BENCHMARK:
        return trivial_rulesets(0, num_rulesets, num_objects)
    from xminigrid import benchmarks

    if benchmark not in benchmarks.registered_benchmarks():
        known = ", ".join((LOCAL_BENCHMARK, *benchmarks.registered_benchmarks()))
        raise ValueError(f"XLand-MiniGrid has no benchmark {benchmark!r}; choose one of {known}.")
    try:
        return benchmarks.load_benchmark(benchmark)
    except OSError as error:  # urllib's URLError is an OSError
        raise ValueError(
            f"Could not download XLand-MiniGrid benchmark {benchmark!r} from the Hugging Face Hub ({error}); "
            f"put its file in {benchmarks.DATA_PATH} or use benchmark={LOCAL_BENCHMARK!r}, which is generated locally."
        ) from error


class XMiniGridEnv(SuiteEnv):
    """One XLand-MiniGrid environment with gymnax 1.x ``reset``/``step`` (see the module docstring).

    Args:
      env_id: one of :data:`XMINIGRID_ENV_IDS` (``xminigrid.registered_environments()``).
      benchmark: rulesets to draw from (XLand ids only); ``"trivial-local"`` by default for XLand ids.
      trials: episodes per meta-episode that share one ruleset.
      split: ``"train"`` or ``"held_out"``, the part of the benchmark to draw from.
      held_out_fraction: share of the benchmark's rulesets kept for ``"held_out"``.
      split_seed: seed of the shuffle before the split (same seed, same split).
      num_rulesets, num_objects: size of the ``"trivial-local"`` benchmark.
      **xminigrid_kwargs: XLand-MiniGrid params (``max_steps``, ``view_size``, ...).
    """

    prefix = "xminigrid/"

    def __init__(
        self,
        env_id: str,
        benchmark: str | None = None,
        trials: int = 1,
        split: str = "train",
        held_out_fraction: float = 0.2,
        split_seed: int = 0,
        num_rulesets: int = 4096,
        num_objects: int = 3,
        **xminigrid_kwargs: Any,
    ):
        require_suite("xminigrid", "XLand-MiniGrid", "xminigrid")
        if env_id not in XMINIGRID_ENV_IDS:
            raise ValueError(f"XLand-MiniGrid has no environment {env_id!r}; mnemax.envs.names() lists the xminigrid/ ids.")
        if int(trials) < 1:
            raise ValueError(f"trials must be at least 1, got {trials}.")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}.")
        if not 0.0 < float(held_out_fraction) < 1.0:
            raise ValueError(f"held_out_fraction must be strictly between 0 and 1, got {held_out_fraction}.")
        import xminigrid

        self.env_id = env_id
        self.xland_env, self.xland_params = xminigrid.make(env_id, **xminigrid_kwargs)
        is_xland = hasattr(self.xland_params, "ruleset")
        if benchmark is not None and not is_xland:
            raise ValueError(f"{env_id} has a fixed task; benchmark applies to the XLand-MiniGrid-* ids only.")
        if benchmark is None and is_xland:
            benchmark = LOCAL_BENCHMARK
        self.benchmark = benchmark
        self.trials = int(trials)
        self.split = split
        self.rulesets = None
        if benchmark is not None:
            # Concrete arrays even when the env is built inside a jitted function (an evaluation that makes its env).
            with jax.ensure_compile_time_eval():
                rulesets = load_rulesets(benchmark, int(num_rulesets), int(num_objects))
                train, held_out = split_rulesets(rulesets, float(held_out_fraction), int(split_seed))
            self.rulesets = train if split == "train" else held_out
            if self.rulesets.num_rulesets() == 0:
                raise ValueError(f"The {split} part of {benchmark!r} is empty; change held_out_fraction.")
        elif self.trials != 1:
            raise ValueError("trials > 1 needs a benchmark of rulesets to draw meta-episodes from.")

    @property
    def default_params(self) -> SuiteParams:
        limit = self.trials * int(self.xland_params.max_steps)
        return SuiteParams(max_steps_in_episode=limit, inner=self.xland_params)

    def _with_ruleset(self, inner_params: Any, ruleset: Any) -> Any:
        return inner_params if ruleset is None else inner_params.replace(ruleset=ruleset)

    def suite_reset(self, key: jax.Array, inner_params: Any) -> tuple[jax.Array, Any]:
        ruleset_key, reset_key = jax.random.split(key)
        ruleset = None if self.rulesets is None else self.rulesets.sample_ruleset(ruleset_key)
        timestep = self.xland_env.reset(self._with_ruleset(inner_params, ruleset), reset_key)
        return timestep.observation, {"timestep": timestep, "ruleset": ruleset, "trial": jnp.zeros((), jnp.int32)}

    def suite_step(self, key: jax.Array, inner_state: Any, action: jax.Array, inner_params: Any):
        params = self._with_ruleset(inner_params, inner_state["ruleset"])
        stepped = self.xland_env.step(params, inner_state["timestep"], action)
        trial_end = stepped.step_type == 2  # StepType.LAST
        last_trial = inner_state["trial"] == self.trials - 1
        continues = jnp.logical_and(trial_end, jnp.logical_not(last_trial))
        meta_end = jnp.logical_and(trial_end, last_trial)
        # A trial that ends before the last one regenerates the grid under the same ruleset.
        restart = self.xland_env.reset(params, key)
        timestep = jax.tree.map(lambda a, b: jnp.where(continues, a, b), restart, stepped)
        terminated = jnp.logical_and(meta_end, stepped.discount == 0.0)
        time_limit_hit = jnp.logical_and(meta_end, stepped.discount > 0.0)
        next_state = {**inner_state, "timestep": timestep, "trial": inner_state["trial"] + continues.astype(jnp.int32)}
        info = {"trial": inner_state["trial"], "trial_end": trial_end}
        return timestep.observation, next_state, stepped.reward, terminated, time_limit_hit, info

    def action_space(self, params: SuiteParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(int(self.xland_env.num_actions(self.xland_params)))

    def observation_space(self, params: SuiteParams | None = None) -> spaces.Box:
        from xminigrid.core.constants import NUM_COLORS, NUM_TILES

        shape = tuple(self.xland_env.observation_shape(self.xland_params))
        high = np.broadcast_to(np.array([NUM_TILES - 1, NUM_COLORS - 1], np.uint8), shape)
        return spaces.Box(np.zeros(shape, np.uint8), high, shape, jnp.uint8)
