"""Read the history rows of an offline W&B run file (``run-*.wandb``), for tests.

The file is a LevelDB-style log: a 7-byte header (``:W&B``, magic, version), then records of
(crc32 4 bytes, length 2 bytes, type 1 byte, data) in 32 KiB blocks, each data a protobuf
``Record``; a record split across blocks comes as FIRST/MIDDLE/LAST pieces.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def history_rows(path: Path) -> list[dict[str, Any]]:
    """Return every ``run.log`` row of the offline run file at ``path``."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw = path.read_bytes()
    if raw[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, rows, pieces = 7, [], b""
    while pos + 7 <= len(raw):
        if BLOCK - pos % BLOCK < 7:
            pos += BLOCK - pos % BLOCK  # block trailer
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + 7])
        pos += 7
        if length == 0 and kind == 0:
            break
        pieces += raw[pos : pos + length]
        pos += length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pieces)
            pieces = b""
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item}
                )
    return rows
