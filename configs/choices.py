"""The one "did you mean" message for every name a config can hold.

Backbones, envs, agents, world models and config keys are all looked up by
name; a wrong one is reported the same way everywhere, as one sentence with the
closest valid name and the full list::

    Unknown backbone 's6'; did you mean 's5'? Valid backbones: gru, lstm, s5.

It lives beside the YAML because it is about what a config may say; every
folder may import it (it imports nothing of mnemax).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.5
"""Similarity (``difflib`` ratio) a valid name needs to be suggested."""


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name most like ``name``, or ``None`` when none is close enough."""
    matches = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=CUTOFF)
    return matches[0] if matches else None


def unknown_name_message(
    kind: str, name: str, valid: Iterable[str], *, plural: str | None = None, prefix: str = "", listed_by: str | None = None
) -> str:
    """``Unknown <kind> '<prefix><name>'; did you mean '<closest>'? Valid <kinds>: a, b, c.``

    ``prefix`` places a config key in its section (``agent.``) in the message
    without taking part in the match; ``listed_by`` names the function that
    lists the valid names, instead of listing them (for long lists).
    """
    valid = sorted({str(v) for v in valid})
    guess = closest(name, valid)
    hint = f"; did you mean {guess!r}?" if guess else "."
    listing = f"see {listed_by}" if listed_by else ", ".join(valid)
    return f"Unknown {kind} {prefix + str(name)!r}{hint} Valid {plural or kind + 's'}: {listing}."
