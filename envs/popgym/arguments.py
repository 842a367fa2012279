"""Checks of constructor arguments shared by the POPGym ports: one clear sentence per mistake."""

from __future__ import annotations

from typing import Any


def positive_int(name: str, value: Any) -> int:
    """``value`` if it is an integer of at least 1, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is a bool, else a ValueError naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}.")
    return value
