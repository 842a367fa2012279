"""Backbones by name: ``make("s5", 128, num_layers=4)`` and a hashable spec for configs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Callable

import flax.linen as nn

from mnemax.configs.choices import unknown_name_message

_BACKBONES: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that makes a backbone reachable by ``make(name, ...)``."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _BACKBONES:
            raise ValueError(f"A backbone named {name!r} is already registered.")
        _BACKBONES[name] = cls
        return cls

    return add


def names() -> list[str]:
    """The registered backbone names, sorted."""
    return sorted(_BACKBONES)


def make(name: str, features: int, **options: Any) -> nn.Module:
    """Build the backbone ``name`` with output width ``features``.

    ``options`` are the backbone's own constructor fields (``num_layers``,
    ``state_size``, ...); an unknown option is reported with the valid ones.
    """
    if name not in _BACKBONES:
        raise ValueError(unknown_name_message("backbone", name, names()))
    cls = _BACKBONES[name]
    valid = {f.name for f in dataclasses.fields(cls)} - {"parent", "name", "features"}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise ValueError(
            f"Backbone {name!r} has no option(s) {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(sorted(valid))}."
        )
    return cls(features=features, **options)


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """A backbone as configs name it: hashable, so it can sit inside a jit-static config.

    ``options`` is a tuple of ``(key, value)`` pairs rather than a dict so the
    spec hashes; :meth:`from_dict` builds one from a plain mapping.
    """

    name: str = "gru"
    features: int = 128
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, name: str, features: int, options: dict[str, Any] | None = None) -> "BackboneSpec":
        return cls(name=name, features=int(features), options=tuple(sorted((options or {}).items())))

    def build(self) -> nn.Module:
        return make(self.name, self.features, **dict(self.options))


def input_parts(module: nn.Module) -> tuple[str, ...]:
    """The named parts a backbone takes as a dict of ``[T, B, D_part]`` arrays; ``()`` for a plain ``[T, B, D]`` array.

    A core whose inputs have parts (``dcem``: vision and language) defines a
    method ``input_parts(self) -> tuple[str, ...]``; a network asks this function
    whether to hand the core a dict of its encoded parts or one array.
    """
    declared = getattr(module, "input_parts", None)
    return tuple(declared()) if callable(declared) else ()


def plain_input_names() -> list[str]:
    """The registered backbones that take one ``[T, B, D]`` array (no input parts), sorted.

    For callers that can only feed one array, such as the latent world model
    over ``(z_{t-1}, a_{t-1})`` or the one-hot state-tracking tasks.
    """
    return [name for name in names() if not input_parts(_BACKBONES[name](features=1))]


def split_parts(inputs: Any, parts: tuple[str, ...]) -> Any:
    """Cut the last axis of one array into ``parts`` (near-equal widths), as a dict; ``inputs`` unchanged if no parts.

    For code that drives every registered core with one random ``[T, B, D]``
    array (contract tests, benchmarks); ``D`` must be at least ``len(parts)``.
    """
    if not parts:
        return inputs
    width = inputs.shape[-1]
    if width < len(parts):
        raise ValueError(f"Cannot split {width} input channels into the {len(parts)} parts {', '.join(parts)}; use D >= {len(parts)}.")
    bounds = [round(i * width / len(parts)) for i in range(len(parts) + 1)]
    return {part: inputs[..., lo:hi] for part, lo, hi in zip(parts, bounds[:-1], bounds[1:])}


def check_inputs(backbone: str, inputs: Any, resets: Any, parts: tuple[str, ...] = ()) -> None:
    """Raise one clear ValueError when ``inputs`` is not ``[T, B, D]`` (or, with ``parts``, a dict of such arrays)
    or ``resets`` not ``[T, B]``."""
    if not parts:
        if isinstance(inputs, Mapping):
            raise ValueError(
                f"{backbone} takes one array [T, B, D], got a dict with keys {', '.join(map(repr, inputs))}; "
                "concatenate the parts, or pick a backbone that declares input parts (such as dcem)."
            )
        _check_array(backbone, "inputs", inputs, resets)
        return
    if not isinstance(inputs, Mapping):
        shape = tuple(getattr(inputs, "shape", ()))
        raise ValueError(
            f"{backbone} takes a dict of parts {{{', '.join(f'{p!r}: [T, B, D]' for p in parts)}}}, got an array of "
            f"shape {shape}; pass the encoded parts by name (mnemax.backbones.input_parts lists them)."
        )
    missing = [part for part in parts if part not in inputs]
    if missing:
        raise ValueError(
            f"{backbone} inputs lack the part(s) {', '.join(map(repr, missing))}; it needs {', '.join(map(repr, parts))} "
            f"as [T, B, D] arrays, got keys {', '.join(map(repr, inputs)) or 'none'}."
        )
    for part in parts:
        _check_array(backbone, f"inputs[{part!r}]", inputs[part], resets)


def _check_array(backbone: str, label: str, inputs: Any, resets: Any) -> None:
    if inputs.ndim != 3:
        raise ValueError(
            f"{backbone} expects time-major {label} [T, B, D], got shape {tuple(inputs.shape)}; "
            "add a time axis of length 1 for a single step."
        )
    if tuple(resets.shape) != tuple(inputs.shape[:2]):
        raise ValueError(
            f"{backbone} expects resets of shape [T, B] = {tuple(inputs.shape[:2])}, got {tuple(resets.shape)}."
        )
