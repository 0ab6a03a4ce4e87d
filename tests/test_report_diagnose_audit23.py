"""Audit of `transferkit diagnose` and `transferkit report` (session 23): each test failed before its fix."""

from __future__ import annotations

import base64
import io
import json
import warnings

import numpy as np

from transferkit.diagnostics import diagnose, feature_drift
from transferkit.report import _png, plot_confusion, plot_methods, write_report


def _opposite_shifts(rng, n, shift):
    """Two classes, rows sorted by class; the target moves class 0 right and class 1 left."""
    X0 = np.c_[rng.normal(size=n) + shift, rng.normal(size=n) - 4]
    X1 = np.c_[rng.normal(size=n) - shift, rng.normal(size=n) + 4]
    return np.vstack([X0, X1])


def test_support_overlap_and_weights_do_not_depend_on_the_order_of_the_rows():
    # rows sorted by class (a folder per class, Office-Caltech10's .mat files): the domain classifier's
    # two unshuffled folds were fitted on one class and judged the other's rows, backwards here
    # (effective sample size 0.31 sorted, 1.00 shuffled; Office-Caltech10 amazon->webcam's overlap
    # 0.70 sorted, 0.49 shuffled, either side of the advice's 0.5)
    rng = np.random.default_rng(0)
    Xs, Xt = _opposite_shifts(rng, 100, 0.0), _opposite_shifts(rng, 100, 2.0)
    ys = np.r_[np.zeros(100, int), np.ones(100, int)]
    ps, pt = rng.permutation(200), rng.permutation(200)
    in_order = diagnose(Xs, ys, Xt, n_permutations=20)
    shuffled = diagnose(Xs[ps], ys[ps], Xt[pt], n_permutations=20)
    assert abs(in_order.effective_sample_size - shuffled.effective_sample_size) < 0.1
    assert abs(in_order.support_overlap - shuffled.support_overlap) < 0.1


def test_a_few_target_rows_are_not_called_a_label_shift():
    # 6 target rows drawn from the source's classes 4:2 against 1:1: a total variation of ~0.17 is
    # what 6 rows give by chance, but the threshold only looked at the source's size
    rng = np.random.default_rng(0)
    ys = np.arange(400) % 2
    Xs = rng.normal(size=(400, 2)) + 4 * ys[:, None]
    few = rng.normal(size=(6, 2)) + 4 * np.array([0, 0, 0, 0, 1, 1])[:, None]
    rep = diagnose(Xs, ys, few, n_permutations=20)
    assert rep.label_shift["total_variation"] > 0.1
    assert "label-shift" not in rep.recommendation, str(rep)
    yt = (rng.random(600) < 0.2).astype(int)  # a real shift on many rows is still called one
    many = diagnose(Xs, ys, rng.normal(size=(600, 2)) + 4 * yt[:, None], n_permutations=20)
    assert "label-shift" in many.recommendation, str(many)


def test_few_rows_of_many_features_still_show_a_plain_mean_shift():
    # 20 + 20 rows of 300 features, the target moved by 0.5 in each: a classifier on the raw features
    # separates them (proxy A-distance 2.0), but on 39 standardized principal components (all that 40
    # rows hold) every row was equally far from every other: a proxy A-distance of 0
    rng = np.random.default_rng(0)
    Xs, Xt = rng.normal(size=(20, 300)), rng.normal(size=(20, 300)) + 0.5
    rep = diagnose(Xs, np.arange(20) % 2, Xt, n_permutations=20)
    assert rep.proxy_a_distance > 1.0, str(rep)
    assert any("projected on 20 principal components" in s for s in rep.summary), rep.summary


def test_feature_drift_gives_no_scipy_warning_on_mostly_zero_columns():
    # TF-IDF columns of a few words: scipy's exact KS p-value (never used here) warned on amazon-reviews
    rng = np.random.default_rng(0)
    a, b = np.zeros((1000, 2)), np.zeros((1000, 2))
    a[:8, 0], b[:7, 0] = rng.random(8), rng.random(7)
    a[:, 1], b[:, 1] = rng.random(1000), rng.random(1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        top = feature_drift(a, b)
    assert {d["feature"] for d in top} == {"feature 0", "feature 1"}


def _math(fig) -> list[str]:
    """Every text of ``fig`` that matplotlib would set as mathematics."""
    from matplotlib.text import Text

    fig.canvas.draw()
    return [t.get_text() for t in fig.findobj(Text) if t._preprocess_math(t.get_text())[1]]


def test_dollar_signs_in_class_task_and_domain_names_are_drawn_as_written():
    # '$0-$10' showed as '0-10' in math type, domain 't_$1$' as 't' with a subscript 1
    import matplotlib.pyplot as plt

    fig = plot_confusion(np.array([0, 1, 1]), np.array([0, 1, 0]), ["$0-$10", "$10-$20"],
                         title="confusion matrix on t_$1$")  # fmt: skip
    assert _math(fig) == []
    shown = [t._preprocess_math(t.get_text())[0] for t in fig.axes[0].get_xticklabels()]
    assert shown == ["$0-$10", "$10-$20"]
    plt.close(fig)
    rows = [{"task": "s->t_$1$", "method": m, "selection": "fixed-defaults", "accuracy": 50.0}
            for m in ("m", "$x$")]  # fmt: skip
    fig = plot_methods(rows)
    assert _math(fig) == []
    plt.close(fig)


def _run_folder(path, preprocess):
    path.mkdir()
    rec = {"config": {"dataset": "t.csv", "task": "a->b", "method": {"name": "coral", "params": {}},
                      "seed": 0, "preprocess": preprocess}, "accuracy": 80.0}  # fmt: skip
    (path / "result.json").write_text(json.dumps(rec))
    return path


def test_the_run_report_shows_each_preprocessing_step_with_its_settings(tmp_path):
    # 'standardize' alone reads as per-domain standardization (its default); a table's run had
    # standardize:per_domain=false
    steps = [{"name": "impute", "params": {"strategy": "median", "indicator": True}},
             {"name": "standardize", "params": {"per_domain": False}}]  # fmt: skip
    html = write_report(_run_folder(tmp_path / "run", steps)).read_text()
    assert "impute:strategy=median,indicator=true standardize:per_domain=false</td>" in html


def _png_size(uri: str) -> tuple[int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size


def test_a_long_legend_beside_the_chart_is_not_cut_off():
    # deep_da.py's digits suite: 56 series in three legend columns beside a 40-inch chart; saved at
    # 90 dpi, the last column's labels were cut ('fixmatch: oracle (reads target labe')
    methods = ["deep-source-only", "dann", "dan", "deep-coral", "cdan", "cdan-e", "mcc", "fixmatch",
               "pseudo-label", "adamatch", "randconv"]  # fmt: skip
    selections = ["fixed-defaults", "select:entropy", "select:snd", "select:mixval", "oracle"]
    tasks = ["mnist->usps", "usps->mnist", "mnist->mnist_m"]
    rows = [{"task": t, "method": m, "selection": s, "accuracy": 70.0}
            for t in tasks for m in methods for s in selections]  # fmt: skip
    rows += [{"task": t, "method": "target-only", "selection": "oracle", "accuracy": 90.0} for t in tasks]
    fig = plot_methods(rows)
    fig.set_dpi(90)
    fig.canvas.draw()
    width = fig.get_tightbbox().width  # inches, the legend included
    assert width > fig.get_figwidth()  # the legend reaches past the figure's edge
    assert _png_size(_png(fig))[0] >= 90 * width - 2


def test_past_twenty_series_no_two_bars_look_alike():
    # a default bench has 21 methods: the first and the 21st had the same colour and no pattern
    rows = [{"task": "a->b", "method": f"m{i:02d}", "selection": "fixed-defaults", "accuracy": 50.0}
            for i in range(21)]  # fmt: skip
    fig = plot_methods(rows)
    bars = [c.patches[0] for c in fig.axes[0].containers]
    looks = {(tuple(b.get_facecolor()), b.get_hatch()) for b in bars}
    assert len(looks) == 21
    import matplotlib.pyplot as plt

    plt.close(fig)
