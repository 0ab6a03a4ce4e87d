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
