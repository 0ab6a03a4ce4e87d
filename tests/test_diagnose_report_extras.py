"""diagnose names the drifting words of a text table (they were "feature 527"); a run report shows a deep
run's training settings and how its table's columns were read."""

from __future__ import annotations

from transferkit.cli import main


def test_diagnose_names_the_drifting_words_of_a_text_table(tmp_path, capsys):
    rows = ["domain,text,label"]
    for dom in ("books", "films"):
        for i in range(40):
            mood = ("dull plot", "great story")[i % 2]
            rows.append(
                f"{dom},{mood} this {dom} {'again' if dom == 'films' else 'once'},{('neg', 'pos')[i % 2]}"
            )
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    code = main(["diagnose", "--dataset", str(tmp_path / "t.csv"), "--source", "books", "--target", "films",
                 "--permutations", "10"])  # fmt: skip
    assert code == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("most drifting"))
    assert "'books' (KS 1.00)" in line and "'films' (KS 1.00)" in line and "feature " not in line


def test_a_deep_runs_report_shows_its_training_settings_and_the_tables_columns(tmp_path):
    from transferkit.report import write_report

    rows = ["site,x,colour,outcome"]
    for i in range(60):
        rows.append(f"{'ab'[i % 2]},{i % 7 - 3 + (i % 2)},{i % 3 + 1},{('no', 'yes')[(i // 2) % 2]}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    args = ["run", "--dataset", str(tmp_path / "t.csv"), "--source", "a", "--target", "b", "--domain-column",
            "site", "--label-column", "outcome", "--categorical", "colour", "--method", "deep-source-only",
            "--set", "steps=5", "lr=0.05", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    html = write_report(out).read_text()
    assert "<td>trainer</td>" in html and "&quot;lr&quot;: 0.05" in html and "&quot;steps&quot;: 5" in html
    assert "<td>table columns</td>" in html and "&quot;categorical&quot;: [&quot;colour&quot;]" in html


def test_domains_a_linear_classifier_separates_are_never_advised_reweighting():
    """40 + 40 rows in 50 dimensions, shifted by 0.8 of a spread in each: a held-out linear classifier
    separates them (proxy A-distance 1.95), while the domain classifier's probabilities, from 40 rows
    a fold, left 70% of the target rows uncertain: the advice was reweighting."""
    import numpy as np

    from transferkit.diagnostics import SEPARABLE, diagnose

    rng = np.random.default_rng(0)
    for shift, separable in ((0.3, False), (0.5, False), (0.8, True)):
        Xs, Xt = rng.normal(size=(40, 50)), rng.normal(size=(40, 50)) + shift
        ys = np.arange(40) % 2
        Xs[:, 0] += 2 * ys
        report = diagnose(Xs, ys, Xt, n_permutations=50, random_state=0).to_dict()
        assert (report["proxy_a_distance"] >= SEPARABLE) == separable
        assert report["support_overlap"] >= 0.5 and report["effective_sample_size"] >= 0.1
        assert report["recommendation"].startswith("reweighting") != separable
    assert "a linear classifier separates the domains (proxy A-distance 1.95)" in " ".join(report["summary"])
