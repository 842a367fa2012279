"""Backbones by name: ``make("s5", 128, num_layers=4)`` and a hashable spec for configs."""

from __future__ import annotations

import dataclasses
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


def check_inputs(backbone: str, inputs: Any, resets: Any) -> None:
    """Raise one clear ValueError when ``inputs`` is not ``[T, B, D]`` or ``resets`` not ``[T, B]``."""
    if inputs.ndim != 3:
        raise ValueError(
            f"{backbone} expects time-major inputs [T, B, D], got shape {tuple(inputs.shape)}; "
            "add a time axis of length 1 for a single step."
        )
    if tuple(resets.shape) != tuple(inputs.shape[:2]):
        raise ValueError(
            f"{backbone} expects resets of shape [T, B] = {tuple(inputs.shape[:2])}, got {tuple(resets.shape)}."
        )
