"""LabyrinthEscape and LabyrinthExplore against the original popgym package.

The mazes must be perfect (a spanning tree of the cells) of popgym's sizes and
of the same generator family (Hunt-and-Kill); on a maze copied from popgym
the port must give the same observations, rewards and episode ends for the
same moves; a shortest-path (Escape) or best-tour (Explore) oracle must earn
popgym's maximum return; random play must match popgym's statistics.
"""

from __future__ import annotations

import collections
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from popgym_compare import assert_same_random_stats

from mnemax.envs.popgym import LEVELS, POPGYM_ENVS
from mnemax.envs.popgym import labyrinth_escape, labyrinth_explore
from mnemax.envs.popgym.maze import GOAL, OBSTACLE, START, is_complete, local_view, start_draft

popgym_envs = pytest.importorskip("popgym.envs", reason="the original popgym[navigation] package is needed")
pytestmark = pytest.mark.filterwarnings("ignore:Maze environments have been shown:DeprecationWarning")

FAMILIES = {"LabyrinthEscape": labyrinth_escape, "LabyrinthExplore": labyrinth_explore}
BATCH = 8  # environments per compiled rollout; fixed so that each rollout compiles once
HORIZON = 1024  # steps per rollout: longer than any episode (1023 steps at most)
MOVE_OF_STEP = {(0, -1): 0, (0, 1): 1, (-1, 0): 2, (1, 0): 3}


# --- numpy references ---------------------------------------------------------
def neighbours(grid: np.ndarray, square: tuple[int, int]):
    """Passable squares next to ``square`` with the action that reaches each."""
    for (dr, dc), action in MOVE_OF_STEP.items():
        r, c = square[0] + dr, square[1] + dc
        if 0 <= r < grid.shape[0] and 0 <= c < grid.shape[1] and grid[r, c] != OBSTACLE:
            yield (r, c), action


def breadth_first(grid: np.ndarray, source: tuple[int, int]) -> dict[tuple[int, int], tuple[int, int] | None]:
    """Parent of every passable square reachable from ``source`` (the source's parent is None)."""
    parents: dict[tuple[int, int], tuple[int, int] | None] = {source: None}
    queue = collections.deque([source])
    while queue:
        square = queue.popleft()
        for nxt, _ in neighbours(grid, square):
            if nxt not in parents:
                parents[nxt] = square
                queue.append(nxt)
    return parents


def path_actions(grid: np.ndarray, source: tuple[int, int], target: tuple[int, int]) -> list[int]:
    """Actions of the shortest path from ``source`` to ``target``."""
    parents = breadth_first(grid, source)
    squares = [target]
    while parents[squares[-1]] is not None:
        squares.append(parents[squares[-1]])
    squares.reverse()
    return [MOVE_OF_STEP[(b[0] - a[0], b[1] - a[1])] for a, b in zip(squares, squares[1:])]


def best_tour_actions(grid: np.ndarray, source: tuple[int, int]) -> list[int]:
    """The shortest walk from ``source`` that visits every passable square of a tree-shaped maze.

    Depth-first, with the branch that holds the farthest square walked last
    and never walked back: 2 * edges - eccentricity(source) steps, the least
    any covering walk of a tree needs.
    """
    parents = breadth_first(grid, source)
    depth = {source: 0}
    for square in parents:  # insertion order is breadth-first order
        if parents[square] is not None:
            depth[square] = depth[parents[square]] + 1
    farthest = max(depth, key=depth.get)
    spine = {farthest}
    while parents[farthest] is not None:
        farthest = parents[farthest]
        spine.add(farthest)
    children = collections.defaultdict(list)
    for square, parent in parents.items():
        if parent is not None:
            children[parent].append(square)

    def walk(square):
        actions = []
        for child in sorted(children[square], key=lambda s: s in spine):  # the spine child last
            step = MOVE_OF_STEP[(child[0] - square[0], child[1] - square[1])]
            actions.append(step)
            actions.extend(walk(child))
            if child not in spine:
                actions.append(MOVE_OF_STEP[(square[0] - child[0], square[1] - child[1])])
        return actions

    return walk(source)


def assert_perfect_maze(grid: np.ndarray, cells_high: int, cells_wide: int) -> None:
    """Every passable square reachable from the start, and the passable squares form a tree."""
    assert grid.shape == (2 * cells_high + 1, 2 * cells_wide + 1)
    passable = grid != OBSTACLE
    assert passable[1::2, 1::2].all(), "every cell of the maze is open"
    assert not passable[::2, ::2].any(), "wall corners stay walls"
    interior = passable[1:-1, 1:-1]
    # cells + passages between them = nodes; a spanning tree of h*w cells has h*w - 1 passages
    assert interior.sum() == 2 * cells_high * cells_wide - 1
    border = passable.copy()
    border[1:-1, 1:-1] = False
    doors = list(zip(*np.nonzero(border)))
    assert len(doors) in (1, 2), "a start door and, in Escape, an exit door"
    start = tuple(int(i) for i in np.argwhere(grid == START)[0])
    reachable = breadth_first(grid, start)
    assert len(reachable) == passable.sum(), "some open square is cut off"
    edges = (passable[:, 1:] & passable[:, :-1]).sum() + (passable[1:, :] & passable[:-1, :]).sum()
    assert edges == passable.sum() - 1, "the maze has a loop"
    for door in doors:  # doors face a cell: odd coordinate along their wall
        assert (door[0] in (0, grid.shape[0] - 1) and door[1] % 2 == 1) or (
            door[1] in (0, grid.shape[1] - 1) and door[0] % 2 == 1
        )


def dead_ends_and_distance(grid: np.ndarray, start: tuple[int, int], end: tuple[int, int]) -> tuple[int, int]:
    """Dead-end cells of the maze, and the start-to-exit distance in steps."""
    open_grid = (grid != OBSTACLE).astype(int)
    open_grid[start] = open_grid[end] = 0  # count dead ends of the cells alone
    sides = open_grid[1::2, 0:-1:2] + open_grid[1::2, 2::2] + open_grid[0:-1:2, 1::2] + open_grid[2::2, 1::2]
    passable = grid.copy()
    passable[end] = GOAL
    return int((sides == 1).sum()), len(path_actions(passable, start, end))


# --- compiled port functions (one compile each) -------------------------------
@functools.cache
def _env(family: str, level: str = "Easy"):
    """One env object per name, so that jitted methods (static ``self``) compile once."""
    return POPGYM_ENVS[f"{family}{level}"]()


_RESETS: dict = {}
_ROLLOUTS: dict = {}


def reset_batch(family: str, level: str, key: jax.Array):
    """BATCH fresh states of popgym/<family><level>."""
    if (family, level) not in _RESETS:
        env, params = _env(family, level)
        _RESETS[family, level] = jax.jit(jax.vmap(lambda k: env.reset(k, params)))
    return _RESETS[family, level](jax.random.split(key, BATCH))


def rollout(family: str, states, actions: np.ndarray, params, key: jax.Array):
    """Step BATCH Easy envs through ``actions`` [HORIZON, BATCH] with auto-reset.

    Returns [HORIZON, BATCH, ...] arrays: observation before the reset
    (final_observation), reward, terminated, truncated, and the grid after the step.
    """
    if family not in _ROLLOUTS:
        env, _ = _env(family)

        def run(states, actions, params, key):
            def one(state, inputs):
                action, key = inputs
                _, state, reward, terminated, truncated, info = env.step(key, state, action, params)
                return state, (info["final_observation"], reward, terminated, truncated, state.grid)

            keys = jax.random.split(key, actions.shape[0] * BATCH).reshape(actions.shape[0], BATCH, -1)
            _, outputs = jax.lax.scan(jax.vmap(one), states, (actions, keys))
            return outputs

        _ROLLOUTS[family] = jax.jit(run)
    return jax.tree.map(np.asarray, _ROLLOUTS[family](states, jnp.asarray(actions, jnp.int32), params, key))


def state_from_popgym(family: str, original) -> object:
    """The port's state on the maze, position and visits of an original popgym env."""
    env, _ = _env(family)
    fields = dict(
        time=jnp.int32(original.curr_step),
        grid=jnp.asarray(original.maze.grid, dtype=jnp.int32),
        position=jnp.asarray(original.position, dtype=jnp.int32),
        last_action=jnp.int32(4),
        next_maze=start_draft(jax.random.PRNGKey(0), env.cells_high, env.cells_wide),
    )
    if family == "LabyrinthExplore":
        fields["explored"] = jnp.asarray(original.explored == 1)
    return FAMILIES[family].EnvState(**fields)


def stack(states):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *states)


# --- tests ----------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("level", LEVELS)
def test_difficulties_match_popgym(family, level):
    env, params = _env(family, level)
    original = getattr(popgym_envs, f"{family}{level}")()
    original.reset(seed=0)
    assert env.grid_shape() == original.maze.grid.shape
    assert params.max_steps_in_episode + 1 == original.max_episode_length
    assert env.action_space(params).n == original.action_space.n
    assert env.observation_space(params).shape == original.observation_space.shape


@given(seed=st.integers(0, 2**31 - 1), level=st.sampled_from(LEVELS))
def test_reset_mazes_are_perfect(seed, level):
    env, _ = _env("LabyrinthEscape", level)
    _, states = reset_batch("LabyrinthEscape", level, jax.random.PRNGKey(seed))
    for grid, position in zip(np.asarray(states.grid), np.asarray(states.position)):
        assert_perfect_maze(grid, env.cells_high, env.cells_wide)
        assert grid[tuple(position)] == START
        goal = tuple(np.argwhere(grid == GOAL)[0])
        # start and exit on opposite outer walls
        on_rows = position[0] in (0, grid.shape[0] - 1)
        assert (abs(goal[0] - position[0]) if on_rows else abs(goal[1] - position[1])) == grid.shape[0] - 1


@pytest.mark.parametrize("family", FAMILIES)
def test_mazes_drawn_during_steps_are_perfect_even_for_short_episodes(family):
    """The next maze is carved while stepping; an episode shorter than the carving must still get a whole maze."""
    env, _ = _env(family)
    short = env.default_params.replace(max_steps_in_episode=3)  # 3 steps: far fewer than the carving needs
    _, states = reset_batch(family, "Easy", jax.random.PRNGKey(1))
    actions = np.random.default_rng(0).integers(0, 4, (HORIZON, BATCH))
    _, _, terminated, truncated, grids = rollout(family, states, actions, short, jax.random.PRNGKey(2))
    assert truncated[2::3].all() and not truncated[0::3].any()
    for t in range(2, 60, 3):  # grids right after a reset
        for grid in grids[t]:
            assert_perfect_maze(grid, env.cells_high, env.cells_wide)


@pytest.mark.parametrize("family", FAMILIES)
def test_next_maze_is_complete_before_the_shortest_episode_ends(family):
    env, params = _env(family)
    _, state = env.reset(jax.random.PRNGKey(3), params)
    for t in range(env.min_episode_steps):  # no episode can end sooner, so no reset happens
        _, state, *_ = env.step(jax.random.PRNGKey(t), state, t % 4, params)
        assert int(state.time) == t + 1
    assert bool(is_complete(state.next_maze))


def test_mazes_come_from_the_same_generator_family_as_popgym():
    """Hunt-and-Kill mazes: few dead ends and long start-to-exit paths, as popgym's (Kruskal's would differ)."""
    mazes = 160
    ours = []
    for seed in range(mazes // BATCH):
        _, states = reset_batch("LabyrinthEscape", "Easy", jax.random.PRNGKey(1000 + seed))
        for grid, position in zip(np.asarray(states.grid), np.asarray(states.position)):
            goal = tuple(np.argwhere(grid == GOAL)[0])
            ours.append(dead_ends_and_distance(grid, tuple(position), goal))
    original = popgym_envs.LabyrinthEscapeEasy()
    theirs = []
    for seed in range(mazes):
        original.reset(seed=seed)
        theirs.append(dead_ends_and_distance(original.maze.grid.copy(), original.position, original.maze.end))
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    error = np.hypot(ours.std(0, ddof=1), theirs.std(0, ddof=1)) / np.sqrt(mazes)
    assert np.all(np.abs(ours.mean(0) - theirs.mean(0)) <= 4 * error), (ours.mean(0), theirs.mean(0), error)


@pytest.mark.parametrize("family", FAMILIES)
def test_same_observations_rewards_and_ends_as_popgym_on_popgym_mazes(family):
    """Copy BATCH popgym mazes (all four start walls among them) and replay popgym's random moves."""
    env, params = _env(family)
    rng = np.random.default_rng(7)
    originals, seeds, walls = [], [], set()
    seed = 0
    while len(originals) < BATCH:
        original = getattr(popgym_envs, family)()
        original.reset(seed=seed)
        row, col = original.position
        wall = (row == 0, col == 0, row == original.maze.grid.shape[0] - 1, col == original.maze.grid.shape[1] - 1)
        if wall not in walls or len(walls) == 4:
            walls.add(wall)
            originals.append(original)
            seeds.append(seed)
        seed += 1
    assert len(walls) == 4, "each start wall is exercised"
    states = stack([state_from_popgym(family, o) for o in originals])
    first_obs = np.asarray(jax.vmap(env.observation)(states))
    actions = rng.integers(0, 4, (HORIZON, BATCH))
    obs, rewards, terminated, truncated, _ = rollout(family, states, actions, params, jax.random.PRNGKey(0))
    for b, (original, seed) in enumerate(zip(originals, seeds)):
        expected, _ = getattr(popgym_envs, family)().reset(seed=seed)
        np.testing.assert_array_equal(first_obs[b], expected)
        for t in range(HORIZON):
            o, r, te, tr, _ = original.step(int(actions[t, b]))
            np.testing.assert_array_equal(obs[t, b], o, err_msg=f"{family} seed {seed} step {t}")
            assert rewards[t, b] == pytest.approx(r, abs=1e-6)
            assert (terminated[t, b], truncated[t, b]) == (te, tr), f"{family} seed {seed} step {t}"
            if te or tr:
                break


def test_view_matches_popgym_everywhere_on_a_non_square_grid():
    """popgym's window is anchored at max(row - 1, 0) and bounds columns by the row count; so is ours."""
    original = popgym_envs.LabyrinthExploreEasy()
    original.reset(seed=0)
    original.maze.grid = np.random.default_rng(0).integers(0, 4, (11, 15))
    squares = np.array([(r, c) for r in range(11) for c in range(15)], dtype=np.int32)
    views = np.asarray(jax.jit(jax.vmap(local_view, (None, 0)))(jnp.asarray(original.maze.grid), squares))
    for square, view in zip(squares, views):
        original.position = tuple(square)
        np.testing.assert_array_equal(view, original.local_view(original.maze.grid).reshape(9), err_msg=str(square))


def _play(family: str, states, plans: list[list[int]]):
    """Returns and lengths of the port following ``plans`` (one list of actions per env) until the first end."""
    env, params = _env(family)
    actions = np.zeros((HORIZON, BATCH), dtype=np.int32)
    for b, plan in enumerate(plans):
        actions[: len(plan), b] = plan
    _, rewards, terminated, truncated, _ = rollout(family, states, actions, params, jax.random.PRNGKey(5))
    results = []
    for b, plan in enumerate(plans):
        ends = np.flatnonzero(terminated[:, b] | truncated[:, b])
        length = int(ends[0]) + 1
        results.append((float(rewards[:length, b].sum()), length, bool(terminated[length - 1, b])))
    return results


def _play_original(original, plan: list[int]) -> tuple[float, int, bool]:
    total, terminated = 0.0, False
    for t, action in enumerate(plan):
        _, reward, terminated, truncated, _ = original.step(action)
        total += reward
        if terminated or truncated:
            return total, t + 1, terminated
    return total, len(plan), terminated


def test_shortest_path_oracle_earns_the_maximum_escape_return():
    """The maximum return is 1 - d / 1024, d the start-to-exit distance (popgym and port alike)."""
    _, states = reset_batch("LabyrinthEscape", "Easy", jax.random.PRNGKey(11))
    grids, starts = np.asarray(states.grid), np.asarray(states.position)
    plans = [path_actions(g, tuple(s), tuple(np.argwhere(g == GOAL)[0])) for g, s in zip(grids, starts)]
    for plan, (total, length, terminated) in zip(plans, _play("LabyrinthEscape", states, plans)):
        assert terminated and length == len(plan)
        assert total == pytest.approx(1.0 - len(plan) / 1024, abs=1e-5)
    for seed in range(4):
        original = popgym_envs.LabyrinthEscapeEasy()
        original.reset(seed=seed)
        plan = path_actions(original.maze.grid, original.position, original.maze.end)
        total, length, terminated = _play_original(original, plan)
        assert terminated and length == len(plan) and total == pytest.approx(1.0 - len(plan) / 1024, abs=1e-9)


def test_best_tour_earns_the_maximum_explore_return():
    """The maximum return is 1 - (F - e) / 1024: F free squares each pay 1/F, and the best tour
    (2F - e steps, e the eccentricity of the start) has F - e revisits (popgym and port alike)."""
    _, states = reset_batch("LabyrinthExplore", "Easy", jax.random.PRNGKey(12))
    grids, starts = np.asarray(states.grid), np.asarray(states.position)
    plans = [best_tour_actions(g, tuple(s)) for g, s in zip(grids, starts)]
    env, _ = _env("LabyrinthExplore")
    free = 2 * env.cells_high * env.cells_wide - 1  # 49 FREE squares in Easy
    for plan, (total, length, terminated) in zip(plans, _play("LabyrinthExplore", states, plans)):
        eccentricity = 2 * free - len(plan)
        assert terminated and length == len(plan)
        assert total == pytest.approx(1.0 - (free - eccentricity) / 1024, abs=1e-5)
    for seed in range(4):
        original = popgym_envs.LabyrinthExploreEasy()
        original.reset(seed=seed)
        plan = best_tour_actions(original.maze.grid, original.position)
        total, length, terminated = _play_original(original, plan)
        eccentricity = 2 * free - len(plan)
        assert terminated and length == len(plan)
        assert total == pytest.approx(1.0 - (free - eccentricity) / 1024, abs=1e-9)


@pytest.mark.parametrize("family", FAMILIES)
def test_gymnax_api_shapes_and_dtypes(family):
    env, params = _env(family)
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    obs2, state2, reward, terminated, truncated, info = env.step(jax.random.PRNGKey(1), state, 0, params)
    assert obs.shape == obs2.shape == info["final_observation"].shape == (10,)
    assert obs.dtype == obs2.dtype == jnp.float32 and reward.dtype == jnp.float32
    assert terminated.dtype == truncated.dtype == jnp.bool_
    assert env.observation_space(params).contains(obs) and env.observation_space(params).contains(obs2)
    assert jax.tree.structure(state) == jax.tree.structure(state2)
    assert obs[-1] == 4 and obs2[-1] == 0  # previous action: none, then LEFT


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("bad", [(9, 10), (4, 4), (10,), "big", (10.0, 10)])
def test_bad_maze_dims_name_the_fix(family, bad):
    with pytest.raises(ValueError, match="two even integers of at least 6"):
        getattr(FAMILIES[family], family)(maze_dims=bad)


@pytest.mark.parametrize("family", FAMILIES)
def test_random_policy_matches_popgym_easy(family):
    assert_same_random_stats(f"{family}Easy", episodes=100, max_steps=HORIZON)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_random_policy_matches_popgym_hard(family):
    assert_same_random_stats(f"{family}Hard", episodes=100, max_steps=HORIZON)
