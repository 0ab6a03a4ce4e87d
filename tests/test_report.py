"""Reports: pictures from a run and a bench, one self-contained HTML file, rendered by a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from transferkit.cli import main
from transferkit.errors import TransferkitError
from transferkit.report import plot_curves, write_report

ARTIFACTS = Path(
    os.environ.get("TRANSFERKIT_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
)


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


def _render(html_path: Path, screenshot: Path) -> str:
    """Load the page headless; return the DOM after load (with the image check) and keep a screenshot."""
    browser = _browser()
    if browser is None:
        msg = "no Chromium on this machine (apt-get install chromium)"
        if os.environ.get("TRANSFERKIT_REQUIRE_DATA"):
            pytest.fail(msg)
        pytest.skip(msg)
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    dom = subprocess.run([*flags, "--dump-dom", html_path.as_uri()], capture_output=True, text=True,
                         timeout=120, check=True).stdout  # fmt: skip
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([*flags, f"--screenshot={screenshot}", "--window-size=1200,1600", html_path.as_uri()],
                   capture_output=True, timeout=120, check=True)  # fmt: skip
    assert screenshot.stat().st_size > 10_000, "the screenshot is (nearly) empty"
    return dom


def _images_loaded(dom: str) -> tuple[int, int]:
    m = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert m, "the page's load check did not run"
    return int(m.group(1)), int(m.group(2))


def test_run_report_is_self_contained_and_renders(tmp_path):
    assert main(["run", "--dataset", "office-caltech10", "--source", "dslr", "--target", "webcam",
                 "--method", "coral", "--out", str(tmp_path)]) == 0  # fmt: skip
    for name in ("result.json", "predictions.csv", "embedding.npz"):
        assert (tmp_path / name).exists()
    path = write_report(tmp_path)
    text = path.read_text()
    assert "src='http" not in text and 'src="http' not in text  # nothing fetched from elsewhere
    assert text.count("data:image/png;base64,") == 2  # the embedding and the confusion matrix
    ok, total = _images_loaded(_render(path, ARTIFACTS / "report-run.png"))
    assert ok == total == 2


def test_bench_report_renders_with_its_chart_and_tables(tmp_path):
    argv = ["bench", "office-caltech10", "--methods", "source-only", "coral", "--select", "iwcv",
            "--out", str(tmp_path), "--quiet", "--jobs", "1",
            "--tasks", "dslr->webcam", "webcam->dslr"]  # fmt: skip
    assert main(argv) == 0
    assert main(["report", str(tmp_path)]) == 0
    text = (tmp_path / "report.html").read_text()
    assert "<table>" in text and "which scorer to trust" in text
    ok, total = _images_loaded(_render(tmp_path / "report.html", ARTIFACTS / "report-bench.png"))
    assert ok == total == 1


def test_curves_plot_every_metric():
    fig = plot_curves([{"epoch": 1, "loss": 2.0, "source_val_acc": 0.5}, {"epoch": 2, "loss": 1.0,
                       "source_val_acc": 0.7}])  # fmt: skip
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["loss", "accuracy and scores"]
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), [2.0, 1.0])


def test_report_on_a_wrong_folder_is_a_clear_error(tmp_path):
    with pytest.raises(TransferkitError, match="neither results.csv"):
        write_report(tmp_path)


def test_a_reused_folder_keeps_no_stale_view_and_warns_about_an_earlier_network(tmp_path):
    from transferkit.domains import DomainDataset
    from transferkit.experiment import save_artifacts

    ds = DomainDataset("t", {"a": np.zeros((2, 3)), "b": np.ones((2, 3))},
                       {"a": np.array([0, 1]), "b": np.array([1, 0])}, ("x", "y"))  # fmt: skip
    (tmp_path / "embedding.npz").write_bytes(b"an earlier shallow run's view")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.safetensors").write_bytes(b"an earlier deep run's network")
    with pytest.warns(UserWarning, match="model is a network from an earlier run in this folder"):
        save_artifacts({"model": None}, {"b": np.array([1, 1])}, ds, tmp_path)
    assert not (tmp_path / "embedding.npz").exists()
    assert (tmp_path / "model" / "weights.safetensors").read_bytes() == b"an earlier deep run's network"
    assert (tmp_path / "predictions.csv").read_text().splitlines()[1:] == ["b,0,1,1,y,y,0", "b,1,1,0,y,x,0"]


# --- small tables, written to tmp_path, for the reports' corner cases (each run takes well under a second)


def _table(path: Path, unlabelled: str | None = "u") -> Path:
    """Domains a and b labelled (cat, dog, eel), and `unlabelled` with empty label cells."""
    rng = np.random.default_rng(0)
    lines = ["domain,label,f1,f2,f3"]
    for d, shift in (("a", 0.0), ("b", 0.5), (unlabelled, 1.0)):
        if d is None:
            continue
        for i in range(30):
            c = i % 3
            x = rng.normal(size=3) + [2.0 * c, c, 0] + shift
            label = "" if d == unlabelled else ["cat", "dog", "eel"][c]
            lines.append(f"{d},{label}," + ",".join(f"{v:.3f}" for v in x))
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(tmp_path: Path, out: str, *targets: str) -> Path:
    data = _table(tmp_path / "t.csv")
    folder = tmp_path / out
    assert main(["run", "--dataset", str(data), "--source", "a", "--target", *targets, "--method", "coral",
                 "--out", str(folder)]) == 0  # fmt: skip
    return folder


def _bars(fig) -> dict[str, list[float]]:
    return {c.get_label(): [p.get_height() for p in c.patches] for c in fig.axes[0].containers}


def test_methods_chart_keeps_selections_and_settings_apart_and_averages_only_seeds():
    from transferkit.report import plot_methods

    def row(method, selection, acc, seed=0, task="a->b", params="{}"):
        return {"suite": "s", "task": task, "method": method, "selection": selection, "params": params,
                "seed": str(seed), "accuracy": str(acc)}  # fmt: skip

    rows = [row("coral", "fixed-defaults", 50, 0), row("coral", "fixed-defaults", 52, 1),
            row("coral", "select:iwcv", 60, 0, params='{"reg": 1}'),
            row("coral", "select:iwcv", 62, 1, params='{"reg": 10}'),
            row("coral", "oracle", 70, 0, params='{"reg": 1}'),
            row("coral", "oracle", 72, 1, params='{"reg": 1}'),
            # a sweep's grid without `select`: two settings of one method on one task, never averaged
            row("source-only", "fixed-defaults", 40, params='{"C": 1}'),
            row("source-only", "fixed-defaults", 46, params='{"C": 10}')]  # fmt: skip
    bars = _bars(plot_methods(rows))
    assert bars == {
        "coral: fixed-defaults": [51.0],
        "coral: select:iwcv": [61.0],  # the scorer's choices, whatever setting it chose, over seeds
        "coral: oracle (reads target labels)": [71.0],
        "source-only: fixed-defaults, C=1": [40.0],
        "source-only: fixed-defaults, C=10": [46.0],
    }


def test_report_on_unlabelled_targets_says_so_and_draws_the_rest(tmp_path):
    one = _run(tmp_path, "one", "u")
    text = write_report(one).read_text()
    assert "target u has no labels" in text
    assert text.count("data:image/png;base64,") == 1  # the features; no confusion matrix
    two = _run(tmp_path, "two", "u", "b")
    text = write_report(two).read_text()
    assert "target u has no labels" in text and "Confusion matrix: b" in text
    assert text.count("data:image/png;base64,") == 2  # the features and b's confusion matrix


def test_report_names_classes_draws_unlabelled_rows_apart_and_marks_the_kept_epoch(tmp_path, monkeypatch):
    import json

    import matplotlib.colors as mcolors

    from transferkit import report

    folder = _run(tmp_path, "run", "u", "b")
    rec = json.loads((folder / "result.json").read_text())
    rec["history"] = [
        {"epoch": e, "loss": 1.0 / e, "source_ce": 0.5 / e, "source_acc": 0.3 * e} for e in (1, 2, 3)
    ]
    rec["best_epoch"] = 2
    (folder / "result.json").write_text(json.dumps(rec))
    figs, calls = {}, {}
    originals = {name: getattr(report, name) for name in ("plot_embedding", "plot_confusion", "plot_curves")}
    for name in ("plot_embedding", "plot_confusion", "plot_curves"):

        def spy(*args, _name=name, **kwargs):
            calls[_name] = kwargs
            figs[_name] = originals[_name](*args, **kwargs)
            return figs[_name]

        monkeypatch.setattr(report, name, spy)
    write_report(folder)
    cm = figs["plot_confusion"].axes[0]
    assert {t.get_text() for t in cm.get_xticklabels()} <= {"cat", "dog", "eel"}
    assert {t.get_text() for t in cm.get_yticklabels()} == {"cat", "dog", "eel"}
    by_class = figs["plot_embedding"].axes[3]
    assert {t.get_text() for t in by_class.get_legend().get_texts()} == {"cat", "dog", "eel", "unlabelled"}
    grey = [c for c in by_class.collections if c.get_label() == "unlabelled"]
    assert grey and all(np.allclose(mcolors.to_rgb(fc[:3]), mcolors.to_rgb(report.UNLABELLED))
                        for c in grey for fc in c.get_facecolors())  # fmt: skip
    assert calls["plot_curves"]["best_epoch"] == 2


def test_curves_plot_every_metric_and_mark_the_kept_epoch():
    history = [{"epoch": e, "step": 2 * e, "lr": 0.01, "loss": 3.0 - e, "source_ce": 2.0 - e / 2,
                "domain_bce": 0.69, "seconds": 0.05, "source_acc": 0.2 * e, "select_source-val": 0.1 * e,
                "target_collapsed": e == 3} for e in (1, 2, 3)]  # fmt: skip
    fig = plot_curves(history, best_epoch=2)
    plotted = {line.get_label() for ax in fig.axes for line in ax.lines}
    assert {"loss", "source_ce", "domain_bce", "source_acc", "select_source-val", "lr", "seconds"} <= plotted
    assert "step" not in plotted and "epoch" not in plotted
    for ax in fig.axes:  # the kept epoch in every panel
        assert any(list(line.get_xdata()) == [2, 2] for line in ax.lines)


def test_damaged_or_foreign_files_in_a_run_folder_are_left_out_with_a_note(tmp_path):
    folder = _run(tmp_path, "run", "b")
    # `transferkit predict --out RUN/predictions.csv` replaced the run's own predictions
    (folder / "predictions.csv").write_text("domain,row,prediction,confidence,label\nb,0,cat,0.9,cat\n")
    npz = (folder / "embedding.npz").read_bytes()
    (folder / "embedding.npz").write_bytes(npz[: len(npz) // 2])
    with pytest.warns(UserWarning) as caught:
        text = write_report(folder).read_text()
    assert text.count("data:image/png;base64,") == 0
    assert "predictions.csv" in text and "transferkit predict" in text and "embedding.npz" in text
    assert any("predictions.csv" in str(w.message) for w in caught)
    assert any("embedding.npz" in str(w.message) for w in caught)


def test_damaged_or_foreign_results_csv(tmp_path):
    head = "suite,task,method,params,seed,selection,accuracy\n"
    (tmp_path / "results.csv").write_text(
        head + "s,a->b,coral,{},0,fixed-defaults,\ns,a->b,x,{},0,oracle,60\n"
    )
    with pytest.warns(UserWarning, match="results.csv"):
        text = write_report(tmp_path).read_text()
    assert "line 2" in text and text.count("data:image/png;base64,") == 1
    (tmp_path / "results.csv").write_text("task,method,selection,accuracy\na->b,coral,fixed-defaults,55\n")
    assert "benchmark: " + tmp_path.name in write_report(tmp_path).read_text()  # no suite column: the folder
    (tmp_path / "results.csv").write_text("task,method,score\na->b,coral,55\n")
    with pytest.raises(TransferkitError, match=r"results.csv lacks the columns? selection, accuracy"):
        write_report(tmp_path)
    (tmp_path / "results.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TransferkitError, match="results.csv"):
        write_report(tmp_path)
