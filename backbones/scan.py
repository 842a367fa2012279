"""The resettable linear recurrence shared by every diagonal state-space backbone.

All of ``s5``, ``s4d``, ``lru`` and ``ffm`` run the same diagonal recurrence

    x_t = Lambda_bar * x_{t-1} + b_t,    x_{t-1} := 0 when resets[t]

with ``b_t`` the discretised input (``B_bar u_t``). Over a sequence it is an
``associative_scan`` (Smith et al. 2023, Sec. 3.2; Blelloch 1990) on elements
``(a, b, r)``: ``a`` the transition, ``b`` the drive, ``r`` whether the element
starts an episode (Lu et al. 2023, Sec. 4.2). Composing an earlier element
``(a_i, b_i, r_i)`` with a later ``(a_j, b_j, r_j)`` gives

    (a_j a_i, a_j b_i + b_j, r_i or r_j)   if not r_j
    (a_j,     b_j,           True)         if r_j

so a reset cuts everything before it. The carried state enters as a first
element ``(1, x_0, False)`` that is dropped from the result.

The same recurrence also runs as a plain ``lax.scan`` over time
(``method="sequential"``). Both give the same states; which one is faster
depends on the hardware. On a GPU or TPU the associative scan's ``O(log T)``
depth wins. On a CPU there is no parallelism for it to use, and its
``O(T log T)`` work on small tiles costs more than the ``T`` cheap sequential
steps: for ``T = 1024, B = 8`` and 128 complex states on two CPU cores the
sequential scan is about 12x faster forward and 8x faster with its gradient.
``method="auto"`` (the default) picks sequential on CPU and associative elsewhere.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def _compose(earlier: tuple, later: tuple) -> tuple:
    """The resettable binary operator; associative, so ``associative_scan`` may group freely."""
    a_i, b_i, r_i = earlier
    a_j, b_j, r_j = later
    a = jnp.where(r_j, a_j, a_j * a_i)
    b = jnp.where(r_j, b_j, a_j * b_i + b_j)
    return a, b, jnp.logical_or(r_i, r_j)


SCAN_METHODS = ("auto", "associative", "sequential")


def check_scan_method(method: str) -> None:
    """Raise the one-sentence error for an unknown scan method."""
    if method not in SCAN_METHODS:
        raise ValueError(f"Unknown scan method {method!r}; choose one of {', '.join(SCAN_METHODS)}.")


def resolve_scan_method(method: str) -> str:
    """``"auto"`` becomes ``"sequential"`` on the CPU backend and ``"associative"`` elsewhere."""
    check_scan_method(method)
    if method != "auto":
        return method
    return "sequential" if jax.default_backend() == "cpu" else "associative"


def resettable_scan(
    transition: jax.Array, drive: jax.Array, resets: jax.Array, state: jax.Array, method: str = "auto"
) -> tuple[jax.Array, jax.Array]:
    """All states of a diagonal linear recurrence that restarts from zero at resets.

    Args:
      transition: ``Lambda_bar`` of shape ``S`` (any trailing shape, e.g. ``[P]``
        or ``[H, N]``), the same at every step and batch entry.
      drive: ``b_t = B_bar u_t``, ``[T, B, *S]``.
      resets: ``[T, B]`` bool; true means the state before step t is replaced by zeros.
      state: ``x_0``, the carried state, ``[B, *S]``.
      method: ``"associative"`` (``jax.lax.associative_scan``, ``O(log T)``
        depth), ``"sequential"`` (``jax.lax.scan``, ``O(T)`` work) or
        ``"auto"`` (see the module docstring).

    Returns:
      ``(x_T [B, *S], states [T, B, *S])``.

    At ``T = 1`` (acting) the step is written out directly, whatever the method.
    """
    method = resolve_scan_method(method)
    flags = resets.astype(bool).reshape(resets.shape + (1,) * (drive.ndim - 2))
    state = state.astype(drive.dtype)

    def step(previous: jax.Array, inputs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        b, reset = inputs
        current = jnp.where(reset, jnp.zeros_like(previous), transition * previous) + b
        return current, current

    if drive.shape[0] == 1:
        last, current = step(state, (drive[0], flags[0]))
        return last, current[None]
    if method == "sequential":
        return jax.lax.scan(step, state, (drive, flags))
    a = jnp.broadcast_to(transition, drive.shape)
    a = jnp.concatenate([jnp.ones_like(a[:1]), a])
    b = jnp.concatenate([state[None], drive])
    r = jnp.concatenate([jnp.zeros_like(flags[:1]), flags])
    _, states, _ = jax.lax.associative_scan(_compose, (a, b, r))
    return states[-1], states[1:]


def scan_in_chunks(
    run: Callable[[Any, jax.Array, jax.Array], tuple[Any, jax.Array]],
    state: Any,
    inputs: jax.Array,
    resets: jax.Array,
    chunk_size: int,
) -> tuple[Any, jax.Array]:
    """Apply ``run(state, inputs[T', B, ...], resets[T', B]) -> (state, outputs[T', B, ...])`` chunk by chunk.

    A diagonal SSM's states ``[T, B, *S]`` are ``|S| / H`` times larger than its
    inputs and outputs (32x for S4D with N = 64); kept for the backward pass over
    a long sequence they dominate memory. Here the time axis is cut into chunks
    of ``chunk_size`` steps run by a ``lax.scan`` whose body is
    ``jax.checkpoint``-ed, so the backward pass keeps only the chunk boundaries
    and recomputes the states of one chunk at a time: memory
    ``O(T B H + chunk_size B |S|)`` for about one extra forward pass. Steps that
    do not fill a last chunk run directly. Sequences of at most ``chunk_size``
    steps (acting, short training windows) take no detour.
    """
    length = inputs.shape[0]
    if length <= chunk_size:
        return run(state, inputs, resets)
    chunks = length // chunk_size
    cut = chunks * chunk_size

    def fold(array: jax.Array) -> jax.Array:
        return array[:cut].reshape(chunks, chunk_size, *array.shape[1:])

    def body(state, chunk):
        return run(state, *chunk)

    state, outputs = jax.lax.scan(jax.checkpoint(body), state, (fold(inputs), fold(resets)))
    outputs = outputs.reshape(cut, *outputs.shape[2:])
    if cut < length:
        state, rest = run(state, inputs[cut:], resets[cut:])
        outputs = jnp.concatenate([outputs, rest])
    return state, outputs


def selective_scan(
    transitions: jax.Array, drive: jax.Array, resets: jax.Array, state: jax.Array, method: str = "auto"
) -> tuple[jax.Array, jax.Array]:
    """:func:`resettable_scan` with a transition that changes at every step (Mamba, minGRU).

    ``x_t = a_t * x_{t-1} + b_t`` with ``x_{t-1} := 0`` when ``resets[t]``.
    ``transitions`` and ``drive`` are both ``[T, B, *S]``; the reset folds into
    the transition (``a_t <- 0``), so the scan runs the plain two-element
    operator ``(a_j a_i, a_j b_i + b_j)`` with no flags. Returns
    ``(x_T [B, *S], states [T, B, *S])``; ``method`` as in :func:`resettable_scan`.
    """
    method = resolve_scan_method(method)
    flags = resets.astype(bool).reshape(resets.shape + (1,) * (drive.ndim - 2))
    transitions = jnp.where(flags, jnp.zeros_like(transitions), transitions)
    state = state.astype(drive.dtype)

    def step(previous: jax.Array, inputs: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        a, b = inputs
        current = a * previous + b
        return current, current

    if drive.shape[0] == 1 or method == "sequential":
        return jax.lax.scan(step, state, (transitions, drive))

    def compose(earlier: tuple, later: tuple) -> tuple:
        (a_i, b_i), (a_j, b_j) = earlier, later
        return a_j * a_i, a_j * b_i + b_j

    # Fold the carried state into the first drive: b_1 + a_1 x_0.
    drive = drive.at[0].add(transitions[0] * state)
    _, states = jax.lax.associative_scan(compose, (transitions, drive))
    return states[-1], states
