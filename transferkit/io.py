"""Atomic file writes: a result, a table or a checkpoint is either complete on disk or not there.

Each function writes to a temporary file in the destination folder, flushes it to disk and renames
it over the destination (``os.replace`` is atomic on POSIX and Windows), then flushes the folder so the
rename itself survives a crash; a run killed mid-write never leaves a truncated file behind and never
destroys the previous version, and a failed write removes its temporary file. A new file gets the
permissions any file the user creates gets (``0666`` less the umask); a replaced file keeps its own.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "current_umask", "fsync_dir"]


def current_umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux); elsewhere
    set and restored at once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(folder: str | os.PathLike) -> None:
    """Flush a folder's entries to disk, so that a rename in it survives a crash (POSIX; a no-op
    where folders cannot be opened, as on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)  # a replaced file keeps its permissions
    except OSError:
        mode = 0o666 & ~current_umask()  # mkstemp's 0600 would hide results from other users
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp, mode)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def _default(obj: Any):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (JSON has no NaN: null is the standard)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any, *, standard: bool = False) -> Path:
    """Write ``obj`` as indented JSON atomically (numpy scalars and arrays become plain values).

    ``standard``: NaN and infinities become null, which every JSON reader accepts (records meant for
    other programs, such as ``result.json``). Without it they are kept as Python writes them, so that
    a checkpoint's state (a best score of -inf, a NaN loss) reads back exactly.
    """
    if not standard:
        return atomic_write_text(path, json.dumps(obj, indent=2, default=_default) + "\n")
    text = json.dumps(_finite(json.loads(json.dumps(obj, default=_default))), indent=2, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def read_model_json(path: str | os.PathLike) -> Any:
    """A saved model's JSON description; one that is not valid JSON is the one-line error that says to
    save the model again."""
    from transferkit.errors import TransferkitError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TransferkitError(f"{path} is not valid JSON ({exc}); save the model again.") from None
