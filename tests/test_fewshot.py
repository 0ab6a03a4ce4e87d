"""Few-shot episodes: sampling, classifiers against naive references, clear errors on bad episodes."""

from __future__ import annotations

import numpy as np
import pytest

from transferkit.errors import TransferkitError
from transferkit.fewshot import CLASSIFIERS, classify_episode, evaluate_episodes, sample_episodes


def _clusters(n_classes=6, per=30, d=16, sep=3.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, d)) * sep
    y = np.repeat(np.arange(n_classes), per)
    return centers[y] + rng.normal(size=(len(y), d)), y


def test_episodes_have_the_right_shape_and_no_overlap():
    _, y = _clusters()
    eps = sample_episodes(y, n_way=5, k_shot=2, n_query=4, n_episodes=20, random_state=1)
    assert len(eps) == 20
    for support, query, chosen in eps:
        assert len(chosen) == 5 == len(set(chosen))
        assert len(support) == 10 and len(query) == 20
        assert not set(support) & set(query)
        assert set(y[support]) == set(chosen) == set(y[query])
    again = sample_episodes(y, n_way=5, k_shot=2, n_query=4, n_episodes=20, random_state=1)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(eps, again))


def test_prototype_matches_a_naive_nearest_mean():
    Z, y = _clusters(n_classes=3, per=10, d=4, sep=0.5, seed=3)
    support = np.r_[0:3, 10:13, 20:23]
    query = np.setdiff1d(np.arange(30), support)
    ys = y[support]
    pred = classify_episode("prototype", Z[support], ys, Z[query], 3)
    means = [Z[support][ys == c].mean(0) for c in range(3)]
    naive = [int(np.argmin([np.sum((q - m) ** 2) for m in means])) for q in Z[query]]
    assert pred.tolist() == naive


def test_simpleshot_centres_and_normalises():
    Z, y = _clusters(n_classes=3, per=10, d=4, seed=4)
    center = Z.mean(0)
    support, query = np.r_[0, 10, 20], np.r_[1:10, 11:20, 21:30]
    got = classify_episode("simpleshot", Z[support], y[support], Z[query], 3, center=center)
    q = (Z[query] - center) / np.linalg.norm(Z[query] - center, axis=1, keepdims=True)
    s = (Z[support] - center) / np.linalg.norm(Z[support] - center, axis=1, keepdims=True)
    naive = [int(np.argmin([np.sum((row - p) ** 2) for p in s])) for row in q]
    assert got.tolist() == naive


def test_transductive_helps_when_supports_are_unrepresentative():
    # two classes; the single support of each sits on the far edge of its cluster
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 2)) * 0.6 + [0.0, 0.0]
    b = rng.normal(size=(60, 2)) * 0.6 + [3.0, 0.0]
    Zs = np.array([[0.0, 2.2], [3.0, -2.2]])
    Zq = np.r_[a, b]
    yq = np.repeat([0, 1], 60)
    plain = np.mean(classify_episode("prototype", Zs, np.array([0, 1]), Zq, 2) == yq)
    center = np.zeros(2) + [1.5, 0.0]
    trans = np.mean(classify_episode("transductive", Zs, np.array([0, 1]), Zq, 2, center=center) == yq)
    assert trans > plain + 0.05


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_every_classifier_solves_easy_episodes_with_a_ci(name):
    Z, y = _clusters(sep=4.0)
    res = evaluate_episodes(Z, y, name, n_way=5, k_shot=5, n_episodes=40, center=Z.mean(0))
    assert res["accuracy"] > 95 and 0 <= res["ci95"] < 3
    assert res["seconds_per_1000_episodes"] > 0


def test_bad_episodes_name_the_class_and_the_count():
    _, y = _clusters(n_classes=3, per=5)
    y = y.copy()
    y[y == 2] = 1
    y[0] = 2  # class 2 now has a single sample
    with pytest.raises(TransferkitError, match=r"class 'two' has 1 samples; 1-shot episodes need at least 2"):
        sample_episodes(y, 2, 1, class_names=["zero", "one", "two"])
    with pytest.raises(TransferkitError, match="5-way episodes need 5 classes, but the data has 3"):
        sample_episodes(y, 5, 1)
    with pytest.raises(TransferkitError, match="did you mean|Did you mean"):
        classify_episode("protoype", np.zeros((2, 2)), np.array([0, 1]), np.zeros((1, 2)), 2)


def test_normalising_classifiers_need_the_center_and_bad_inputs_are_clear_errors():
    Z, y = _clusters(sep=4.0)
    Z = Z + 10.0  # not centred: normalising around the origin would blur the classes
    for name in ("simpleshot", "transductive", "finetune"):
        with pytest.raises(TransferkitError, match=f"{name} centres the features.*pass center="):
            evaluate_episodes(Z, y, name, n_way=3, n_episodes=5)
        with pytest.raises(TransferkitError, match="pass center="):
            classify_episode(name, Z[:6], np.repeat([0, 1, 2], 2), Z[6:9], 3)
    assert evaluate_episodes(Z, y, "prototype", n_way=3, n_episodes=5)["accuracy"] > 90  # needs none
    bad = Z.copy()
    bad[4, 1] = np.nan
    with pytest.raises(TransferkitError, match="features contains 1 NaN"):
        evaluate_episodes(bad, y, "prototype", n_way=3, n_episodes=5)
    with pytest.raises(TransferkitError, match="LabelEncoder"):
        evaluate_episodes(Z, np.array(list("abcdef"))[y], "prototype", n_way=3, n_episodes=5)
    with pytest.raises(TransferkitError, match="n_episodes must be >= 1"):
        evaluate_episodes(Z, y, "prototype", n_way=3, n_episodes=0)


def test_an_episode_needs_a_support_row_per_class_and_a_center_of_the_rows_width():
    Z, y = _clusters(n_classes=3, per=10, d=4)
    with pytest.raises(TransferkitError, match="classes \\[2\\] have no support row"):
        classify_episode("prototype", Z[[0, 10]], np.array([0, 1]), Z[20:25], 3)
    with pytest.raises(TransferkitError, match="center must be one mean feature of width 4"):
        classify_episode("simpleshot", Z[[0, 10]], np.array([0, 1]), Z[20:25], 2, center=np.zeros(3))


def _tiny_episode(seed=0):
    rng = np.random.default_rng(seed)
    Zs = np.r_[rng.normal(0, 1, (3, 4)), rng.normal(5, 1, (3, 4))]
    Zq = np.r_[rng.normal(0, 1, (3, 4)), rng.normal(5, 1, (3, 4))]
    return Zs, np.repeat([0, 1], 3), Zq


@pytest.mark.parametrize("name", sorted(CLASSIFIERS))
def test_support_labels_must_be_class_indices_of_the_episode(name):
    Zs, ys, Zq = _tiny_episode()
    center = np.full(4, 2.5)  # between the two clusters
    with pytest.raises(TransferkitError, match="ys must be integer class indices 0..1.*LabelEncoder"):
        classify_episode(name, Zs, ys.astype(str), Zq, 2, center=center)  # "0"/"1" are not 0/1
    with pytest.raises(
        TransferkitError, match=r"ys must be class indices 0..1 in a 2-way episode, got \[2\]"
    ):
        classify_episode(name, np.r_[Zs, Zq[:1]], np.r_[ys, 2], Zq, 2, center=center)
    with pytest.raises(TransferkitError, match=r"got \[-1\]"):
        classify_episode(name, np.r_[Zs, Zq[:1]], np.r_[ys, -1], Zq, 2, center=center)
    with pytest.raises(TransferkitError, match=r"one label per support row \(6 rows\), got shape \(5,\)"):
        classify_episode(name, Zs, ys[:5], Zq, 2, center=center)
    with pytest.raises(TransferkitError, match="float64"):
        classify_episode(name, Zs, ys + 0.5, Zq, 2, center=center)
    whole = classify_episode(name, Zs, ys.astype(float), Zq, 2, center=center)  # 0.0 / 1.0 are fine
    assert (
        whole.tolist() == classify_episode(name, Zs, ys, Zq, 2, center=center).tolist() == [0] * 3 + [1] * 3
    )


def test_nan_inputs_and_mismatched_shapes_are_clear_errors():
    Zs, ys, Zq = _tiny_episode()
    bad = Zs.copy()
    bad[0, 0] = np.nan
    with pytest.raises(TransferkitError, match=r"Zs contains 1 NaN or infinite values \(first at row 0"):
        classify_episode("prototype", bad, ys, Zq, 2)
    with pytest.raises(TransferkitError, match="Zq contains 1 NaN"):
        classify_episode("prototype", Zs, ys, np.r_[Zq, [[np.inf] + [0.0] * 3]], 2)
    with pytest.raises(TransferkitError, match="center contains 4 NaN"):
        classify_episode("simpleshot", Zs, ys, Zq, 2, center=np.full(4, np.nan))
    with pytest.raises(TransferkitError, match="Zs have 4 features but the query rows Zq 3"):
        classify_episode("prototype", Zs, ys, Zq[:, :3], 2)
    with pytest.raises(TransferkitError, match=r"Zq must be 2-d .*got shape \(4,\)"):
        classify_episode("prototype", Zs, ys, Zq[0], 2)
    Z, y = _clusters(n_classes=3, per=10, d=4)
    with pytest.raises(TransferkitError, match="center contains 4 NaN"):  # not a silent ~chance accuracy
        evaluate_episodes(Z, y, "simpleshot", n_way=2, n_episodes=5, center=np.full(4, np.nan))


def test_episode_sizes_must_be_whole_numbers_and_labels_integers():
    _, y = _clusters(n_classes=3, per=5)
    with pytest.raises(TransferkitError, match="k_shot must be a whole number, got 1.5"):
        sample_episodes(y, 2, 1.5)
    with pytest.raises(TransferkitError, match="n_query must be a whole number, got 2.0"):
        sample_episodes(y, 2, 1, n_query=2.0)
    with pytest.raises(TransferkitError, match="n_query must be a whole number"):
        evaluate_episodes(np.eye(15), y, "prototype", n_way=2, n_query=2.0, n_episodes=3)
    with pytest.raises(TransferkitError, match="integer class indices.*LabelEncoder"):
        sample_episodes(np.array(list("abc"))[y], 2, 1)
    few = y.copy()
    few[few == 2] = 1
    few[-3:] = 2  # class 2 has 3 rows
    with pytest.raises(TransferkitError, match=r"^class 2 has 3 samples; 3-shot"):  # not np.int64(2)
        sample_episodes(few, 2, 3)
