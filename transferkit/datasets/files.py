"""Where data files live, how they are checked, and how they are downloaded.

The data root is resolved in this order:

1. the ``root`` argument (``--data-root`` on the command line);
2. the ``TRANSFERKIT_DATA`` environment variable;
3. a per-user cache folder: ``$XDG_CACHE_HOME/transferkit`` (``~/.cache/transferkit``).

Every file a loader reads is described by a :class:`DataFile`: its path under the root, the public
address it can be downloaded from, and its sha256. Files are verified before they are parsed, and a
missing file raises :class:`~transferkit.errors.DataMissingError` that names the file, the folder
looked in, and where to get it. Downloads are written to a temporary file and moved into place only
after the checksum matched, so an interrupted download never leaves a corrupt file behind. A file
without a fixed checksum (one MNIST-M image: those are verified together, through their manifest) is
still checked for what can be checked alone: the transfer is complete (the server's Content-Length),
the file is not empty, and it starts with its format's signature, so an error page served with
status 200 is never kept as data.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from transferkit.errors import DataMissingError, TransferkitError
from transferkit.io import current_umask

__all__ = ["DataFile", "data_root", "locate", "sha256sum", "download_file"]

ENV_VAR = "TRANSFERKIT_DATA"


@dataclass(frozen=True)
class DataFile:
    """One file of a data set: path under the data root, public URL, sha256 (None: not fixed).

    ``magic``: the bytes the file must start with (its format's signature), checked on every file,
    and the only check of its own a file without a sha256 gets.
    """

    path: str
    url: str
    sha256: str | None
    magic: bytes | None = None


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


_VERIFIED: dict[tuple, str] = {}


def sha256sum(path: str | os.PathLike) -> str:
    """The sha256 of a file, cached within the process per (path, inode, size, mtime, ctime): a file
    replaced by another of the same size and modification time (``cp -p``, a restored backup) is a
    new inode or a new ctime, so it is hashed again."""
    st = os.stat(path)
    key = (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _VERIFIED:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _VERIFIED[key] = h.hexdigest()
    return _VERIFIED[key]


def _problem(path: Path, spec: DataFile) -> str | None:
    """What is wrong with the file at ``path`` for ``spec`` (None: nothing); OSError if unreadable."""
    if not path.is_file():
        return "it is not a file"
    if spec.magic is not None or spec.sha256 is None:
        with open(path, "rb") as f:
            head = f.read(max(len(spec.magic or b""), 1))
        if not head:
            return "it is empty"
        if spec.magic is not None and not head.startswith(spec.magic):
            return f"it does not start with the signature of its format ({spec.magic!r}) but with {head!r}"
    if spec.sha256 is not None:
        got = sha256sum(path)
        if got != spec.sha256:
            return f"checksum mismatch: expected sha256 {spec.sha256}, got {got}"
    return None


def verify(path: Path, spec: DataFile) -> Path:
    """``path`` if it holds the file ``spec`` describes, else a clear error saying how to replace it."""
    try:
        problem = _problem(path, spec)
    except OSError as exc:
        raise TransferkitError(
            f"cannot read {path}: {exc.strerror or exc}. Make it readable, or delete it and download it "
            f"again from {spec.url}."
        ) from None
    if problem is not None:
        raise TransferkitError(
            f"{path} is not the expected file ({problem}). It is corrupt or a different version; "
            f"delete it and download it again from {spec.url}."
        )
    return path


def locate(spec: DataFile, root: Path, *, dataset: str, origin: str = "") -> Path:
    """Return the verified path of ``spec`` under ``root``, or say exactly what is missing."""
    path = root / spec.path
    if not path.exists():
        raise DataMissingError(
            f"data set '{dataset}': file {spec.path} not found in {root}"
            + (f" ({origin})" if origin else "")
            + (" (which is not a folder)" if root.exists() and not root.is_dir() else "")
            + f". Get it with `transferkit download {dataset}` or from {spec.url}, "
            f"and place it at {path}."
        )
    return verify(path, spec)


def _fetch(url: str, out, timeout: float) -> int:
    """Copy ``url`` into the open file ``out``; the number of bytes, checked against Content-Length."""
    n = 0
    with urllib.request.urlopen(url, timeout=timeout) as r:
        expected = r.headers.get("Content-Length") if hasattr(r, "headers") else None
        for chunk in iter(lambda: r.read(1 << 20), b""):
            out.write(chunk)
            n += len(chunk)
    if expected is not None and expected.strip().isdigit() and n != int(expected):
        raise TransferkitError(
            f"the download of {url} was cut off: {n} of {int(expected)} bytes arrived. Run the "
            "download again."
        )
    return n


def download_file(spec: DataFile, root: Path, *, url: str | None = None, timeout: float = 60) -> Path:
    """Download ``spec`` into ``root`` atomically and verify it; an existing good file is kept.

    The bytes go to a temporary file beside the destination, which is checked (complete, the sha256
    or, without one, not empty and of the right format), flushed to disk and only then renamed into
    place; on any failure the temporary file is removed and an existing file is left as it was.
    Two processes downloading the same file each write their own temporary file, and the last rename
    wins with a verified file.
    """
    dest = root / spec.path
    url = url or spec.url
    if dest.exists():
        try:
            return verify(dest, spec)
        except TransferkitError:
            pass  # corrupt: download again
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as exc:
        raise TransferkitError(
            f"cannot write {spec.path} into the data root {root}: {exc.strerror or exc}. Pass --data-root "
            "(or set TRANSFERKIT_DATA) to a folder you can write."
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            os.chmod(tmp, 0o666 & ~current_umask())  # as any file the user creates, not mkstemp's 0600
            n = _fetch(url, out, timeout)
            out.flush()
            os.fsync(out.fileno())
        problem = _problem(Path(tmp), spec)
        if problem is not None:
            raise TransferkitError(
                f"the file downloaded from {url} ({n} bytes) is not {spec.path}: {problem}. The server "
                "sent something else (an error page, a changed file); nothing was saved. Try again "
                "later, or get the file by other means and place it at " + str(dest) + "."
            )
        os.replace(tmp, dest)  # (no fsync of the folder: a rename lost in a crash is a file downloaded again)
    except urllib.error.HTTPError as exc:
        raise TransferkitError(
            f"could not download {url}: the server answered HTTP {exc.code} {exc.reason}."
        ) from None
    except urllib.error.URLError as exc:
        raise TransferkitError(f"could not download {url}: {exc.reason}") from None
    except OSError as exc:  # a timeout, a reset connection, a full disk
        raise TransferkitError(f"could not download {url} into {dest.parent}: {exc}") from None
    except http.client.HTTPException as exc:  # a connection closed mid-answer
        raise TransferkitError(f"could not download {url}: {type(exc).__name__} {exc}. Try again.") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest
