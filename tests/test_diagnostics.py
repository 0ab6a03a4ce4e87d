"""Shift diagnostics: each measure on a shift whose answer is known, and the advice it leads to."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from transferkit.cli import main
from transferkit.diagnostics import diagnose, feature_drift, label_shift, mmd_test, proxy_a_distance
from transferkit.errors import TransferkitError


def _gauss(n, d, seed, mean=0.0, scale=1.0):
    return np.random.default_rng(seed).normal(size=(n, d)) * scale + mean


def test_proxy_a_distance_is_near_zero_without_shift_and_near_two_when_separable():
    assert proxy_a_distance(_gauss(300, 5, 0), _gauss(300, 5, 1)) < 0.3
    assert proxy_a_distance(_gauss(300, 5, 0), _gauss(300, 5, 1, mean=6.0)) > 1.9


def test_mmd_matches_a_naive_double_sum_and_its_test_has_power():
    Xs, Xt = _gauss(15, 2, 0), _gauss(12, 2, 1, mean=0.3)
    gamma = 0.7
    k = lambda a, b: np.exp(-gamma * np.sum((a - b) ** 2))  # noqa: E731
    sxx = sum(k(Xs[i], Xs[j]) for i in range(15) for j in range(15) if i != j) / (15 * 14)
    syy = sum(k(Xt[i], Xt[j]) for i in range(12) for j in range(12) if i != j) / (12 * 11)
    sxy = sum(k(a, b) for a in Xs for b in Xt) / (15 * 12)
    got, _ = mmd_test(Xs, Xt, gamma=gamma, n_permutations=0)
    assert got == pytest.approx(sxx + syy - 2 * sxy, rel=1e-10)
    _, p_same = mmd_test(_gauss(200, 3, 0), _gauss(200, 3, 1), n_permutations=100)
    _, p_diff = mmd_test(_gauss(200, 3, 0), _gauss(200, 3, 1, scale=1.5), n_permutations=100)
    assert p_same > 0.05 and p_diff < 0.05


def test_bbse_recovers_a_known_label_shift():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    ys = rng.choice(3, 1500, p=[1 / 3, 1 / 3, 1 / 3])
    yt = rng.choice(3, 1500, p=[0.6, 0.3, 0.1])  # used only to generate the target, never passed
    Xs = centers[ys] + rng.normal(size=(1500, 2))
    Xt = centers[yt] + rng.normal(size=(1500, 2))
    est = label_shift(Xs, ys, Xt)
    assert np.allclose(est["target_prior"], [0.6, 0.3, 0.1], atol=0.04)
    assert est["total_variation"] == pytest.approx(0.2667, abs=0.04)


def test_feature_drift_names_the_moved_feature_first():
    Xs, Xt = _gauss(300, 6, 0), _gauss(300, 6, 1)
    Xt[:, 4] += 2.0
    top = feature_drift(Xs, Xt, top=3, names=[f"f{i}" for i in range(6)])
    assert top[0]["feature"] == "f4" and top[0]["std_mean_diff"] > 1.5


def _labels(X):
    return (X[:, 0] + X[:, 1] > 0).astype(int)


def test_advice_follows_the_kind_of_shift():
    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(600, 4))
    # no shift
    same = diagnose(Xs, _labels(Xs), rng.normal(size=(600, 4)), n_permutations=50)
    assert same.recommendation.startswith("little covariate shift")
    # covariate shift: the target is a region of the source
    Xt = rng.normal(size=(3000, 4))
    Xt = Xt[Xt[:, 0] > 0.3][:600]
    sub = diagnose(Xs, _labels(Xs), Xt, n_permutations=50)
    assert sub.recommendation.startswith("reweighting"), str(sub)
    # a transformed feature space: rotated, scaled and moved away from the source support
    Q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
    Xt = (rng.normal(size=(600, 4)) @ Q) * 3.0 + 8.0
    moved = diagnose(Xs, _labels(Xs), Xt, n_permutations=50)
    assert moved.recommendation.startswith("feature alignment"), str(moved)
    assert moved.support_overlap < 0.1 < 0.5 < sub.support_overlap


def test_bad_input_is_a_clear_error():
    with pytest.raises(TransferkitError, match="features"):
        diagnose(np.zeros((10, 3)), np.zeros(10, int), np.zeros((10, 4)))
    with pytest.raises(TransferkitError, match="NaN"):
        proxy_a_distance(np.full((10, 2), np.nan), np.zeros((10, 2)))


def test_cli_diagnose_writes_a_record_without_reading_target_labels(tmp_path, capsys, monkeypatch):
    import transferkit.domains as domains

    real_labels = domains.DomainDataset.labels

    def guarded(self, domain):
        if domain == "webcam":
            raise AssertionError("diagnose read a target label")
        return real_labels(self, domain)

    monkeypatch.setattr(domains.DomainDataset, "labels", guarded)
    code = main(["diagnose", "--dataset", "office-caltech10", "--source", "dslr", "--target", "webcam",
                 "--permutations", "20", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "proxy A-distance" in out and "recommendation:" in out
    rec = json.loads((tmp_path / "diagnosis.json").read_text())
    assert rec["targets"] == ["webcam"] and 0 <= rec["proxy_a_distance"] <= 2


def test_diagnose_works_on_a_users_table(tmp_path, capsys):
    rng = np.random.default_rng(0)
    lines = ["domain,label,f0,f1,f2"]
    for domain, shift in (("clinic_a", 0.0), ("clinic_b", 2.0)):
        for _ in range(150):
            label = int(rng.integers(0, 2))
            f = rng.normal(size=3) + 2.5 * label + shift
            # the target's labels are left empty: a user who has none
            shown = label if domain == "clinic_a" else ""
            lines.append(f"{domain},{shown},{f[0]:.4f},{f[1]:.4f},{f[2]:.4f}")
    table = tmp_path / "patients.csv"
    table.write_text("\n".join(lines) + "\n")
    argv = ["diagnose", "--dataset", str(table), "--source", "clinic_a", "--target", "clinic_b",
            "--permutations", "20"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "recommendation:" in out
    assert re.search(r"most drifting features: f[012] \(KS", out), out


def _reshaped(diag, shift, n=300):
    """Three classes in 5-d; the target is the same classes through a rotation and axis scaling ``diag``,
    its mean moved to the source's plus ``shift``."""
    rng = np.random.default_rng(0)
    ys = rng.integers(0, 3, n)
    Xs = rng.normal(size=(n, 5)) + 2 * np.eye(5)[ys]
    yt = rng.integers(0, 3, n)  # only shapes the target, never passed
    A = np.diag(diag) @ np.linalg.qr(rng.normal(size=(5, 5)))[0]
    Xt = (rng.normal(size=(n, 5)) + 2 * np.eye(5)[yt]) @ A
    return Xs, ys, Xt + Xs.mean(0) - Xt.mean(0) + shift


def test_alignment_test_and_advice_do_not_depend_on_the_features_units():
    Xs, ys, Xt = _reshaped([4.0, 0.25, 3.0, 0.3, 1.0], 2.0)
    metres = diagnose(Xs, ys, Xt, n_permutations=30)
    km = diagnose(Xs * 1e-3, ys, Xt * 1e-3, n_permutations=30)
    # before: a fixed ridge of 1 swamped the covariances of the small values, CORAL did nothing
    assert km.mmd2_aligned == pytest.approx(metres.mmd2_aligned, rel=1e-6, abs=1e-9)
    assert km.mmd2_aligned < 0.2 * km.mmd2_standardized and km.alignment_drop > 0.8
    assert km.recommendation == metres.recommendation
    assert km.recommendation.startswith("feature alignment"), str(km)
    assert km.summary == metres.summary


def test_the_alignment_drop_does_not_depend_on_each_features_units():
    # the drop compared the raw features' MMD (its kernel width dominated by the widest feature) with
    # the MMD of standardized, aligned features: features in other units, one each, moved it
    Xs, ys, Xt = _reshaped([4.0, 0.25, 3.0, 0.3, 1.0], 2.0)
    units = np.array([1e3, 1.0, 1e-2, 10.0, 1.0])
    a = diagnose(Xs, ys, Xt, n_permutations=19)
    b = diagnose(Xs * units, ys, Xt * units, n_permutations=19)
    assert b.alignment_drop == pytest.approx(a.alignment_drop, abs=1e-4)
    assert b.mmd2_standardized == pytest.approx(a.mmd2_standardized, rel=1e-6)
    assert b.mmd2 != pytest.approx(a.mmd2, rel=0.1)  # the raw test itself is in the features' units
    assert f"removes {100 * a.alignment_drop:.0f}%" in str(a)


def test_a_significant_mmd_that_a_linear_classifier_cannot_see_is_a_shift():
    # same means, other covariance: the proxy A-distance is 0, the MMD test is significant
    Xs, ys, Xt = _reshaped([3.0, 0.3, 2.5, 0.4, 1.0], 0.0)
    rep = diagnose(Xs, ys, Xt, n_permutations=30)
    assert rep.proxy_a_distance < 0.2 and rep.mmd_p_value < 0.05
    assert rep.mmd2_aligned < 0.5 * rep.mmd2_standardized  # an affine alignment removes most of it
    assert rep.recommendation.startswith("feature alignment"), str(rep)
    assert "hard to tell apart" not in str(rep)
    assert "linear domain classifier cannot see" in rep.summary[0]
    assert "reweighting is not advised" in rep.summary[0]


def test_without_a_significant_mmd_a_large_proxy_a_distance_is_not_called_hard_to_tell_apart():
    rng = np.random.default_rng(1)
    Xs, Xt = rng.normal(size=(60, 3)), rng.normal(size=(60, 3)) + 1.5
    rep = diagnose(Xs, _labels(Xs), Xt, n_permutations=10)  # p can never reach 0.05 with 10
    assert rep.proxy_a_distance > 0.2 and rep.mmd_p_value >= 0.05
    assert rep.recommendation.startswith("little covariate shift")
    assert "hard to tell apart" not in str(rep) and "no significant difference" in rep.summary[0]
    assert any("cannot go below 0.091" in s and "at least 19" in s for s in rep.summary), rep.summary


def test_the_report_names_classes_by_their_names():
    Xs, ys, Xt = _reshaped([3.0, 0.3, 2.5, 0.4, 1.0], 0.0, n=150)
    rep = diagnose(Xs, ys, Xt, n_permutations=5, class_names=("10", "20", "30"))
    assert list(rep.per_class_distance) == ["10", "20", "30"]
    assert rep.label_shift["classes"] == ["10", "20", "30"]
    text = str(rep)
    assert re.search(r"in source spreads\): 10 [\d.]+, 20 [\d.]+, 30 [\d.]+$", text, re.M), text
    far = [s for s in rep.summary if s.startswith("classes whose target rows")]
    assert far and "10" in far[0] and not re.search(r"\b[012]\b", far[0]), far
    # two classes of the same name stay apart
    dup = diagnose(Xs, ys, Xt, n_permutations=5, class_names=["a", "a", "b"])
    assert list(dup.per_class_distance) == ["a (class 0)", "a (class 1)", "b"]
    # without class_names, the labels themselves name the classes
    assert list(diagnose(Xs, ys * 10 + 10, Xt, n_permutations=5).per_class_distance) == ["10", "20", "30"]
    with pytest.raises(TransferkitError, match="indices into class_names"):
        diagnose(Xs, ys, Xt, n_permutations=5, class_names=["a", "b"])


@pytest.mark.parametrize("n", [0, -5, 2.5])
def test_fewer_than_one_permutation_is_a_clear_error(n):
    Xs = _gauss(40, 2, 0)
    with pytest.raises(TransferkitError, match=r"n_permutations .* >= 1; use 200"):
        diagnose(Xs, _labels(Xs), _gauss(40, 2, 1), n_permutations=n)


def test_few_rows_of_many_features_are_projected_on_as_many_components_as_they_hold():
    # 40 small images' worth of pixels: more columns (300) than max_features, fewer rows than 200
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(20, 300)), rng.normal(size=(20, 300)) + 0.5
    ys = np.arange(20) % 2
    rep = diagnose(Xs, ys, Xt, n_permutations=20)
    assert rep.n_features == 300 and 0.0 <= rep.proxy_a_distance <= 2.0
    assert any("projected on 20 principal components, not 200" in s for s in rep.summary), rep.summary


def test_text_features_are_a_clear_error(tmp_path, capsys):
    texts = np.array(["a good book", "a bad film", "great read", "dull plot", "fine", "poor"] * 2)
    with pytest.raises(TransferkitError, match="not numbers.*--preprocess tfidf"):
        diagnose(texts, np.arange(12) % 2, texts)
    lines = ["domain,label,text"] + [f"{d},{'pos' if i % 2 else 'neg'},{t}"
                                     for d in ("books", "dvd") for i, t in enumerate(texts)]  # fmt: skip
    (tmp_path / "reviews.csv").write_text("\n".join(lines) + "\n")
    argv = ["diagnose", "--dataset", str(tmp_path / "reviews.csv"), "--source", "books", "--target", "dvd",
            "--preprocess", "none", "--permutations", "20"]  # fmt: skip
    assert main(argv) == 2
    assert "not numbers" in capsys.readouterr().err


def test_support_overlap_does_not_depend_on_how_many_target_rows_there_are():
    # the same target distribution against the same source: 150 or 3000 target rows gave an
    # overlap of 100% or 3.5% (and opposite advice), the domain classifier's odds carrying n_t / n_s
    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(150, 4))
    ys = (Xs[:, 0] > 0).astype(int)
    small = diagnose(Xs, ys, rng.normal(size=(150, 4)) + [1.5, 0, 0, 0], n_permutations=20)
    large = diagnose(Xs, ys, rng.normal(size=(3000, 4)) + [1.5, 0, 0, 0], n_permutations=20)
    assert abs(small.support_overlap - large.support_overlap) < 0.15
    same = diagnose(
        rng.normal(size=(60, 4)), np.arange(60) % 2, rng.normal(size=(1500, 4)), n_permutations=20
    )
    assert same.support_overlap > 0.9  # identical distributions: the target lies inside the source


def test_a_class_of_one_source_row_is_diagnosed():
    rng = np.random.default_rng(1)
    Xs, Xt = rng.normal(size=(41, 3)), rng.normal(size=(40, 3)) + 0.5
    ys = np.r_[np.arange(40) % 2, 2]  # class 2 has a single row
    report = diagnose(Xs, ys, Xt, n_permutations=20)
    assert report.label_shift["classes"] == ["0", "1", "2"]
    assert report.label_shift["source_prior"] == [0.4878, 0.4878, 0.0244]  # 20, 20 and 1 of 41 rows
