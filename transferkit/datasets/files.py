"""Where data files live, how they are checked, and how they are downloaded.

The data root is resolved in this order:

1. the ``root`` argument (``--data-root`` on the command line);
2. the ``TRANSFERKIT_DATA`` environment variable;
3. a per-user cache folder: ``$XDG_CACHE_HOME/transferkit`` (``~/.cache/transferkit``).

Every file a loader reads is described by a :class:`DataFile`: its path under the root, the public
address it can be downloaded from, and its sha256. Files are verified before they are parsed, and a
missing file raises :class:`~transferkit.errors.DataMissingError` that names the file, the folder
looked in, and where to get it. Downloads are written to a temporary file and moved into place only
after the checksum matched, so an interrupted download never leaves a corrupt file behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from transferkit.errors import DataMissingError, TransferkitError

__all__ = ["DataFile", "data_root", "locate", "sha256sum", "download_file"]

ENV_VAR = "TRANSFERKIT_DATA"


@dataclass(frozen=True)
class DataFile:
    """One file of a data set: path under the data root, public URL, sha256 (None: not fixed)."""

    path: str
    url: str
    sha256: str | None


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "transferkit"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Resolve the data root: explicit argument, then ``TRANSFERKIT_DATA``, then the user cache."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return default_cache_dir()


def root_origin(root: str | os.PathLike | None = None) -> str:
    """Say where the data root came from, for messages."""
    if root is not None:
        return "the data root you passed"
    if os.environ.get(ENV_VAR):
        return f"${ENV_VAR}"
    return "the per-user cache (set TRANSFERKIT_DATA or pass --data-root to use another folder)"


_VERIFIED: dict[tuple[str, int, int], str] = {}


def sha256sum(path: str | os.PathLike) -> str:
    """The sha256 of a file, cached per (path, size, mtime) within the process."""
    st = os.stat(path)
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _VERIFIED[key] = h.hexdigest()
    return _VERIFIED[key]


def verify(path: Path, spec: DataFile) -> Path:
    if spec.sha256 is not None:
        got = sha256sum(path)
        if got != spec.sha256:
            raise TransferkitError(
                f"checksum mismatch for {path}: expected sha256 {spec.sha256}, got {got}. The file "
                f"is corrupt or a different version; delete it and download it again from {spec.url}."
            )
    return path


def locate(spec: DataFile, root: Path, *, dataset: str, origin: str = "") -> Path:
    """Return the verified path of ``spec`` under ``root``, or say exactly what is missing."""
    path = root / spec.path
    if not path.exists():
        raise DataMissingError(
            f"data set '{dataset}': file {spec.path} not found in {root}"
            + (f" ({origin})" if origin else "")
            + f". Get it with `transferkit download {dataset}` or from {spec.url}, "
            f"and place it at {path}."
        )
    return verify(path, spec)


def download_file(spec: DataFile, root: Path, *, url: str | None = None, timeout: float = 60) -> Path:
    """Download ``spec`` into ``root`` atomically and verify it; an existing good file is kept."""
    dest = root / spec.path
    if dest.exists():
        try:
            return verify(dest, spec)
        except TransferkitError:
            pass  # corrupt: download again
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url or spec.url, timeout=timeout) as r:
            shutil.copyfileobj(r, out)
        verify(Path(tmp), spec)
        os.replace(tmp, dest)
    except OSError as exc:
        raise TransferkitError(f"could not download {url or spec.url}: {exc}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
