"""Grounded-language memory tasks: bind a word to an object from one utterance, act on it later.

Registered as ``grounded/<Name>`` (``mnemax.envs.make("grounded/FastBinding-N3")``):

==================================  =======================================================
name                                episode
==================================  =======================================================
FastBinding-N3, -N5, -N8            3, 5 or 8 objects of training types with training names
FastBinding-N*-HeldOutObjects       every object of a held-out type (colour x shape pair)
FastBinding-N*-HeldOutNames         every name from the test names
==================================  =======================================================

The levels differ only in ``num_objects`` and the defaults of
``params.held_out_objects`` / ``params.held_out_names``, so
``make("grounded/FastBinding-N3", held_out_objects=True)`` builds the same
task as ``make("grounded/FastBinding-N3-HeldOutObjects")``. See
:mod:`~mnemax.envs.grounded.fast_binding` for the rules.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from mnemax.envs.grounded.fast_binding import (
    FEATURES,
    HELD_OUT_TYPES,
    PAD,
    PICK_UP,
    TEST_NAMES,
    THIS_IS,
    TRAINING_NAMES,
    TRAINING_TYPES,
    VISION_CHANNELS,
    VOCAB_SIZE,
    FastBinding,
    FastBindingParams,
    FastBindingState,
    object_features,
)

LEVEL_OBJECTS = (3, 5, 8)
LEVEL_VARIANTS = {"": {}, "-HeldOutObjects": {"held_out_objects": True}, "-HeldOutNames": {"held_out_names": True}}

GROUNDED_ENVS: dict[str, Callable[..., Any]] = {
    f"FastBinding-N{n}{suffix}": functools.partial(FastBinding, num_objects=n, **flags)
    for n in LEVEL_OBJECTS
    for suffix, flags in LEVEL_VARIANTS.items()
}
"""Name -> environment factory; ``grounded/<Name>`` in :func:`mnemax.envs.make`."""

__all__ = [
    "FEATURES",
    "GROUNDED_ENVS",
    "HELD_OUT_TYPES",
    "LEVEL_OBJECTS",
    "PAD",
    "PICK_UP",
    "TEST_NAMES",
    "THIS_IS",
    "TRAINING_NAMES",
    "TRAINING_TYPES",
    "VISION_CHANNELS",
    "VOCAB_SIZE",
    "FastBinding",
    "FastBindingParams",
    "FastBindingState",
    "object_features",
]
