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
    assert titles == ["loss", "accuracy"]
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
