"""Files written whole or not at all: through a temporary file in the same folder, then renamed.

A reader (the UI, a person, another process) sees the old file or the new one, never a half-written
one; a failed write leaves no temporary file behind.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write_text(path: Path, text: str) -> Path:
    """Replace ``path`` with ``text`` (UTF-8), creating its folder; return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json_lines(path: Path, items: Iterable[dict[str, Any]]) -> Path:
    """Replace ``path`` with one compact JSON object per line; return ``path``."""
    return atomic_write_text(path, "".join(json.dumps(item, separators=(",", ":")) + "\n" for item in items))
