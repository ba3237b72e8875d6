"""The object memory on disk: written whole or not at all, read back with a clear error."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vlm_ros.core.memory import ObjectMemory


def save_memory(memory: ObjectMemory, path: str | Path) -> None:
    """Write ``memory`` to ``path`` through a temporary file beside it (a crash mid-write
    leaves the previous file, never half of one)."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(memory.to_json())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_memory(memory: ObjectMemory, path: str | Path) -> int:
    """Replace ``memory`` with the file's; the number of objects loaded.  A missing file is an
    empty memory (0); a file that is not a memory raises ValueError naming it."""
    source = Path(path).expanduser()
    if not source.exists():
        return 0
    try:
        return memory.load_json(source.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"memory_file {source}: {exc}") from exc
