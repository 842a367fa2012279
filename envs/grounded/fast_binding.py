"""FastBinding: hear a novel object's name once, then pick it up by that name.

The fast-mapping task of Hill et al., "Grounded Language Learning Fast and
Slow" (ICLR 2021), on a small fully observed grid with a symbolic view.

* **Objects** are types from a compositional pool, ``(colour, shape)`` for
  ``NUM_COLOURS`` colours and ``NUM_SHAPES`` shapes; an object's features are
  ``concat(one_hot(colour), one_hot(shape))``. ``HELD_OUT_TYPES`` (two colours
  per shape, chosen so that every colour and every shape still occurs among
  the ``TRAINING_TYPES``) never appear unless ``params.held_out_objects`` is
  true, and then every object of the episode is a held-out type. Objects of
  one episode have distinct types.
* **Names** are nonsense tokens, one per object, drawn without replacement
  from ``TRAINING_NAMES``, or from the disjoint ``TEST_NAMES`` when
  ``params.held_out_names`` is true.
* **Discovery phase** (the first ``discovery_steps`` steps): ``num_objects``
  objects lie on distinct cells, none on the agent's. Standing on one shows
  the utterance ``[THIS_IS, name]``; elsewhere the language is ``[PAD, PAD]``.
  Touching is free: no reward, no ending.
* **Phase switch** (the observation at ``time == discovery_steps``): every
  object moves to a new cell, none on a cell that the agent or any object
  occupied just before, so the agent must recognise an object by its features
  and not by its place. The target is drawn uniformly among the objects the
  agent can reach without stepping on another one: with many objects on a
  small grid an object can be walled in by the others (about one object in
  eight after the move, for 8 objects on 5 x 5); such an object is never the
  target, so every episode can be won.
* **Instruction phase** (the next ``instruction_steps`` steps): the language
  is ``[PICK_UP, name(target)]`` at every step. Stepping onto the target gives
  reward 1 and ends the episode (terminated); stepping onto another object
  ends it with reward 0; touching neither within ``instruction_steps`` ends it
  with reward 0 as well, and as *terminated*: running out of time is a lost
  episode under the task's rules, not a time limit to bootstrap through (an
  agent that valued the state after the deadline would learn that wandering
  is worth more than a guess that may be wrong).

Two options make the task easier to learn without changing what must be
remembered (the registered ``-Shown`` levels use both):

* ``discovery="shown"``: the discovery phase presents the objects one by one
  instead of letting the agent find them. At discovery step ``t`` the agent
  stands on object ``t mod N`` (its moves are ignored) and hears its name, as
  a child is shown a new toy and told its name; ``discovery_steps`` defaults
  to ``N``. The default, ``"explore"``, is the paper's: the agent must walk to
  the objects to hear their names.
* ``view="egocentric"``: the view is centred on the agent, ``[2 size - 1,
  2 size - 1]`` cells, so the object stood on is always in the centre cell,
  as the object looked at fills a first-person view; the last channel marks
  cells outside the grid (walls) instead of the agent. The default,
  ``"grid"``, is the whole grid seen from above with an agent channel.

``naming="fixed"`` is the control without fast binding: every object type has
one name for good (``TRAINING_NAMES[type]``), so the words can be learned
slowly, across episodes, and an agent needs no memory of the discovery phase
(the instruction names the type). What it measures is whether the agent can
learn to walk to the object a word means at all; the default, ``"fresh"``,
draws new names every episode.

Observation: ``{"vision": float32 [V, V, VISION_CHANNELS],
"language": int32 [2]}`` with ``V = size`` (grid view) or ``2 size - 1``
(egocentric view). The vision channels are the colour one-hot and the
shape one-hot of the object on a cell (zeros on empty cells) and one agent
channel (grid view) or wall channel (egocentric view). Tokens: ``PAD`` 0, ``THIS_IS`` 1, ``PICK_UP`` 2, then the names
(``VOCAB_SIZE`` in all). Actions: 0 up, 1 right, 2 down, 3 left; a move into
the wall stays. ``info["success"]`` (float32, 1 on the step that picks up the
target) and ``info["decided"]`` (bool, the step touched an object in the
instruction phase) tell how an episode ended; ``info["time"]`` and
``info["target"]`` (int32) are the new state's step count and target index.
An episode's return is its success, so the mean episode return that PPO logs
is the success rate.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from mnemax.envs.memory.gridworld import MOVES, NUM_ACTIONS
from mnemax.envs.memory.uniforms import Uniforms, integers, subset

NUM_COLOURS = 5
NUM_SHAPES = 4
NUM_TYPES = NUM_COLOURS * NUM_SHAPES
FEATURES = NUM_COLOURS + NUM_SHAPES
"""Length of an object's feature vector: colour one-hot, then shape one-hot."""
AGENT_CHANNEL = FEATURES
"""The grid view's last channel: 1 on the agent's cell."""
WALL_CHANNEL = FEATURES
"""The egocentric view's last channel: 1 on cells outside the grid."""
VISION_CHANNELS = FEATURES + 1
DISCOVERY_MODES = ("explore", "shown")
NAMINGS = ("fresh", "fixed")
VIEWS = ("grid", "egocentric")

TYPE_COLOURS = np.arange(NUM_TYPES) // NUM_SHAPES
"""Colour of each type: type ``t`` is ``(t // NUM_SHAPES, t % NUM_SHAPES)``."""
TYPE_SHAPES = np.arange(NUM_TYPES) % NUM_SHAPES
_IS_HELD_OUT = np.isin((TYPE_COLOURS - TYPE_SHAPES) % NUM_COLOURS, (0, 2))
HELD_OUT_TYPES = np.flatnonzero(_IS_HELD_OUT).astype(np.int32)
"""The 8 types ``(colour, shape)`` with ``colour - shape`` in {0, 2} mod 5: two colours per shape, at most two shapes per colour."""
TRAINING_TYPES = np.flatnonzero(~_IS_HELD_OUT).astype(np.int32)
"""The other 12 types; each colour and each shape occurs among them."""

PAD, THIS_IS, PICK_UP = 0, 1, 2
FIRST_NAME = 3
TRAINING_NAMES = np.arange(FIRST_NAME, FIRST_NAME + 40, dtype=np.int32)
"""Token ids of the 40 names used in training."""
TEST_NAMES = np.arange(FIRST_NAME + 40, FIRST_NAME + 50, dtype=np.int32)
"""Token ids of the 10 names used only with ``params.held_out_names``."""
VOCAB_SIZE = int(TEST_NAMES[-1]) + 1
LANGUAGE_LENGTH = 2

MAX_OBJECTS = min(len(HELD_OUT_TYPES), len(TEST_NAMES))
"""The most objects an episode may hold: every held-out level must find distinct held-out types and test names."""


def object_features(types: jax.Array) -> jax.Array:
    """``[..., FEATURES]`` float32 features ``concat(one_hot(colour), one_hot(shape))`` of int type ids ``[...]``."""
    types = jnp.asarray(types, jnp.int32)
    colour = jax.nn.one_hot(types // NUM_SHAPES, NUM_COLOURS, dtype=jnp.float32)
    shape = jax.nn.one_hot(types % NUM_SHAPES, NUM_SHAPES, dtype=jnp.float32)
    return jnp.concatenate([colour, shape], axis=-1)


@struct.dataclass
class FastBindingState:
    """One episode.

    time: int32 steps taken. position: [2] int32 agent cell (row, col).
    object_positions: [N, 2] int32 cells of the objects (their new cells from the phase switch on).
    object_types: [N] int32 type ids. object_names: [N] int32 name tokens.
    target: int32 index of the object to pick up (drawn at the phase switch; 0 before it).
    relocation: [size * size + 1] float32 uniforms for the phase switch (the new cells, then the target).
    """

    time: jax.Array
    position: jax.Array
    object_positions: jax.Array
    object_types: jax.Array
    object_names: jax.Array
    target: jax.Array
    relocation: jax.Array


@struct.dataclass
class FastBindingParams(environment.EnvParams):
    """``held_out_objects``: draw every object from ``HELD_OUT_TYPES``; ``held_out_names``: names from ``TEST_NAMES``.

    ``max_steps_in_episode`` is ``discovery_steps + instruction_steps`` by default.
    """

    held_out_objects: bool = False
    held_out_names: bool = False


def _check_integer(env: str, name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{env}: {name} must be an integer {bounds}, got {value!r}.")
    return int(value)


class FastBinding(environment.Environment):
    """The fast-binding grid (see the module docstring): discovery with names, relocation, instruction.

    Args:
        num_objects: objects per episode (``N``), 1 to ``MAX_OBJECTS``.
        size: the grid is ``size x size``; it must hold ``2 N + 1`` cells so that
            the objects can move off every occupied cell at the phase switch.
        discovery_steps: steps of the discovery phase; by default ``3 N + size``,
            which on the 5 x 5 grid with 3 objects is one more than the longest
            shortest tour from any start over any three cells (13 steps), so an
            agent that plans its tour hears every name.
        instruction_steps: steps of the instruction phase; by default
            ``2 size + N``: the grid's diameter plus room to walk around the
            other objects.
        held_out_objects, held_out_names: the defaults of the params fields of
            the same names (the held-out levels set them).
        discovery: ``"explore"`` (walk to the objects to hear their names) or
            ``"shown"`` (the objects are presented one per step; then
            ``discovery_steps`` defaults to ``N``).
        view: ``"grid"`` (top-down, agent channel) or ``"egocentric"``
            (centred on the agent, wall channel).
        naming: ``"fresh"`` (names drawn every episode) or ``"fixed"`` (one
            name per object type for good: the control without binding).
    """

    def __init__(
        self,
        num_objects: int = 3,
        size: int = 5,
        discovery_steps: int | None = None,
        instruction_steps: int | None = None,
        held_out_objects: bool = False,
        held_out_names: bool = False,
        discovery: str = "explore",
        view: str = "grid",
        naming: str = "fresh",
    ):
        super().__init__()
        name = type(self).__name__
        for option, value, choices in (("discovery", discovery, DISCOVERY_MODES), ("view", view, VIEWS), ("naming", naming, NAMINGS)):
            if value not in choices:
                raise ValueError(f"{name}: {option} must be one of {', '.join(map(repr, choices))}, got {value!r}.")
        self.discovery = discovery
        self.view = view
        self.naming = naming
        self.num_objects = _check_integer(name, "num_objects", num_objects, 1, MAX_OBJECTS)
        self.size = _check_integer(name, "size", size, 2)
        if self.size * self.size < 2 * self.num_objects + 1:
            raise ValueError(
                f"{name}: a {self.size} x {self.size} grid cannot hold {self.num_objects} objects that all move to free cells "
                f"(it needs 2 * num_objects + 1 = {2 * self.num_objects + 1} cells); enlarge size or use fewer objects."
            )
        default_discovery = self.num_objects if discovery == "shown" else 3 * self.num_objects + self.size
        default_instruction = 2 * self.size + self.num_objects
        self.discovery_steps = _check_integer(
            name, "discovery_steps", default_discovery if discovery_steps is None else discovery_steps, 1
        )
        self.instruction_steps = _check_integer(
            name, "instruction_steps", default_instruction if instruction_steps is None else instruction_steps, 1
        )
        self.held_out_objects = bool(held_out_objects)
        self.held_out_names = bool(held_out_names)

    # --- gymnax API -----------------------------------------------------------
    @property
    def default_params(self) -> FastBindingParams:
        return FastBindingParams(
            max_steps_in_episode=self.discovery_steps + self.instruction_steps,
            held_out_objects=self.held_out_objects,
            held_out_names=self.held_out_names,
        )

    @property
    def view_size(self) -> int:
        """Rows (and columns) of the view: ``size`` from above, ``2 size - 1`` egocentric."""
        return 2 * self.size - 1 if self.view == "egocentric" else self.size

    def observation_space(self, params: Any = None) -> spaces.Dict:
        return spaces.Dict(
            {
                "vision": spaces.Box(0.0, 1.0, (self.view_size, self.view_size, VISION_CHANNELS), jnp.float32),
                "language": spaces.Box(0, VOCAB_SIZE - 1, (LANGUAGE_LENGTH,), jnp.int32),
            }
        )

    def action_space(self, params: Any = None) -> spaces.Discrete:
        return spaces.Discrete(NUM_ACTIONS)

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    def reset_env(self, key: jax.Array, params: FastBindingParams) -> tuple[dict[str, jax.Array], FastBindingState]:
        n, cells = self.num_objects, self.size * self.size
        uniforms = Uniforms(key, 2 * cells + 1 + len(TRAINING_TYPES) + len(HELD_OUT_TYPES) + len(TRAINING_NAMES) + len(TEST_NAMES))
        placed = self._cells(subset(uniforms.take(cells), n + 1))  # the agent's cell first
        training_types = jnp.asarray(TRAINING_TYPES)[subset(uniforms.take(len(TRAINING_TYPES)), n)]
        held_out_types = jnp.asarray(HELD_OUT_TYPES)[subset(uniforms.take(len(HELD_OUT_TYPES)), n)]
        training_names = jnp.asarray(TRAINING_NAMES)[subset(uniforms.take(len(TRAINING_NAMES)), n)]
        test_names = jnp.asarray(TEST_NAMES)[subset(uniforms.take(len(TEST_NAMES)), n)]
        object_types = jnp.where(params.held_out_objects, held_out_types, training_types)
        state = FastBindingState(
            time=jnp.zeros((), jnp.int32),
            position=placed[1] if self.discovery == "shown" else placed[0],  # shown: on the first object
            object_positions=placed[1:],
            object_types=object_types,
            object_names=(
                jnp.asarray(TRAINING_NAMES)[object_types]
                if self.naming == "fixed"
                else jnp.where(params.held_out_names, test_names, training_names)
            ),
            target=jnp.zeros((), jnp.int32),
            relocation=uniforms.take(cells + 1),
        )
        return self.observation(state), state

    def step_env(self, key: jax.Array, state: FastBindingState, action: Any, params: FastBindingParams):
        del key  # the episode's randomness was drawn at reset
        action = jnp.asarray(action, jnp.int32)
        position = jnp.clip(state.position + jnp.asarray(MOVES)[action], 0, self.size - 1)
        if self.discovery == "shown":  # the next object is presented; the last one is left at the switch
            shown = state.object_positions[(state.time + 1) % self.num_objects]
            position = jnp.where(state.time + 1 < self.discovery_steps, shown, position)
        instructed = state.time >= self.discovery_steps  # this step answers the instruction
        on = jnp.all(state.object_positions == position, axis=-1)  # [N]
        decided = instructed & jnp.any(on)
        success = decided & on[state.target]
        state = state.replace(position=position, time=state.time + 1)
        relocated = self._relocate(state)
        switch = state.time == self.discovery_steps
        state = jax.tree.map(lambda new, old: jax.lax.select(switch, new, old), relocated, state)
        out_of_time = state.time >= self.discovery_steps + self.instruction_steps
        info = {"success": success.astype(jnp.float32), "decided": decided, "time": state.time, "target": state.target}
        return self.observation(state), state, success.astype(jnp.float32), decided | out_of_time, info

    def is_terminated(self, state: FastBindingState, params: FastBindingParams) -> jax.Array:
        """Whether the episode is over: the agent stands on an object in the instruction phase, or its time ran out."""
        touched = (state.time > self.discovery_steps) & jnp.any(jnp.all(state.object_positions == state.position, axis=-1))
        return touched | (state.time >= self.discovery_steps + self.instruction_steps)

    # --- what the agent sees ------------------------------------------------------
    def observation(self, state: FastBindingState) -> dict[str, jax.Array]:
        """``{"vision": [size, size, VISION_CHANNELS] float32, "language": [2] int32}`` of ``state``."""
        rows, cols = state.object_positions[:, 0], state.object_positions[:, 1]
        vision = jnp.zeros((self.size, self.size, VISION_CHANNELS), jnp.float32)
        vision = vision.at[rows, cols, :FEATURES].set(object_features(state.object_types))
        if self.view == "egocentric":
            vision = self._egocentric(vision, state.position)
        else:
            vision = vision.at[state.position[0], state.position[1], AGENT_CHANNEL].set(1.0)
        on = jnp.all(state.object_positions == state.position, axis=-1)
        stood = jnp.any(on)
        discovery = state.time < self.discovery_steps
        phrase = jnp.where(discovery, jnp.where(stood, THIS_IS, PAD), PICK_UP)
        name = jnp.where(discovery, jnp.sum(jnp.where(on, state.object_names, PAD)), state.object_names[state.target])
        return {"vision": vision, "language": jnp.stack([phrase, name]).astype(jnp.int32)}

    def _egocentric(self, grid: jax.Array, position: jax.Array) -> jax.Array:
        """The ``[2 size - 1, 2 size - 1, C]`` window of ``grid [size, size, C]`` centred on ``position``, walls marked."""
        border = self.size - 1
        padded = jnp.pad(grid, ((border, border), (border, border), (0, 0)))
        outside = jnp.pad(jnp.zeros((self.size, self.size), jnp.float32), border, constant_values=1.0)
        padded = padded.at[:, :, WALL_CHANNEL].set(outside)
        window = (self.view_size, self.view_size, VISION_CHANNELS)
        return jax.lax.dynamic_slice(padded, (position[0], position[1], 0), window)

    # --- the phase switch -----------------------------------------------------------
    def _cells(self, index: jax.Array) -> jax.Array:
        """``[..., 2]`` int32 (row, col) of flat cell indices ``[...]``."""
        return jnp.stack([index // self.size, index % self.size], axis=-1).astype(jnp.int32)

    def _relocate(self, state: FastBindingState) -> FastBindingState:
        """Every object on a new cell (off every occupied cell), and a target the agent can reach."""
        cells = self.size * self.size
        occupied = jnp.concatenate([state.position[None], state.object_positions])  # [N + 1, 2]
        taken = jnp.zeros((cells,), bool).at[occupied[:, 0] * self.size + occupied[:, 1]].set(True)
        draws = jnp.where(taken, 2.0, state.relocation[:cells])  # above every uniform: never among the first N
        positions = self._cells(subset(draws, self.num_objects))
        reachable = self.reachable_objects(state.position, positions)
        choice = integers(state.relocation[cells], 0, jnp.sum(reachable))
        target = jnp.argmax(reachable & (jnp.cumsum(reachable) - 1 == choice)).astype(jnp.int32)
        return state.replace(object_positions=positions, target=target)

    def reachable_objects(self, position: jax.Array, object_positions: jax.Array) -> jax.Array:
        """``[N]`` bool: which objects the agent at ``position`` [2] can step onto without touching another first.

        A flood fill over the free cells from the agent's cell (at most
        ``size * size`` growth steps); an object is reachable when it borders
        the filled region. At least one object always is.
        """
        blocked = jnp.zeros((self.size, self.size), bool).at[object_positions[:, 0], object_positions[:, 1]].set(True)
        start = jnp.zeros((self.size, self.size), bool).at[position[0], position[1]].set(True)
        region = jax.lax.fori_loop(0, self.size * self.size - 1, lambda _, r: r | (_neighbours(r) & ~blocked), start)
        return _neighbours(region)[object_positions[:, 0], object_positions[:, 1]]


def _neighbours(mask: jax.Array) -> jax.Array:
    """``[H, W]`` bool: cells with a 4-neighbour in ``mask`` [H, W] (the grid's edge is a wall)."""
    padded = jnp.pad(mask, 1)
    return padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
