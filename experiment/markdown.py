"""Generated parts of markdown documents.

A script that writes figures into a document owns only the block between
``<!-- name -->`` and ``<!-- /name -->``; the prose around it (the reading of
the results) survives a rerun.
"""

from __future__ import annotations

import re
from pathlib import Path


def replace_section(path: str | Path, name: str, body: str, new_document: str = "") -> None:
    """Write ``body`` between the ``name`` markers of ``path``, keeping everything outside them.

    The block is appended when the markers are missing; ``new_document`` is the
    text a missing file starts with.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else new_document
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + block + "\n"
    path.write_text(text)
