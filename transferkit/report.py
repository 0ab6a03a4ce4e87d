"""Pictures and one self-contained HTML report for a run or a benchmark folder.

``transferkit report DIR`` reads what ``transferkit run --out DIR`` or ``transferkit bench --out DIR``
wrote and writes ``DIR/report.html``: one file, tables and pictures embedded (PNG as data URIs), no
network and no other file needed to view it.

Pictures, each a function returning a matplotlib figure so it can be used on its own:

- :func:`plot_embedding`: a 2-D view of source and target rows before and after adaptation,
  coloured by domain and by class;
- :func:`plot_curves`: training curves from a deep run's metrics history;
- :func:`plot_confusion`: the confusion matrix of the target predictions;
- :func:`plot_methods`: a bar chart of methods per task from a benchmark table.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import numpy as np

from transferkit.errors import TransferkitError

__all__ = ["plot_confusion", "plot_curves", "plot_embedding", "plot_methods", "write_report"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_embedding(before, after, domain, label, *, title: str = ""):
    """Four panels: before / after adaptation, coloured by domain (top) and by class (bottom)."""
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(10, 8.5))
    is_target = np.asarray(domain) < 0
    for col, (name, Z) in enumerate((("before adaptation", before), ("after adaptation", after))):
        Z = np.asarray(Z)
        ax = axes[0, col]
        ax.scatter(*Z[~is_target].T, s=6, alpha=0.5, label="source", color="tab:blue")
        ax.scatter(*Z[is_target].T, s=6, alpha=0.5, label="target", color="tab:orange")
        ax.set_title(f"{name}: by domain")
        ax.legend(markerscale=3, loc="best")
        ax = axes[1, col]
        for marker, rows in (("o", ~is_target), ("x", is_target)):
            ax.scatter(*Z[rows].T, s=8, c=np.asarray(label)[rows], cmap="tab10", vmin=0, vmax=9,
                       marker=marker, alpha=0.6, linewidths=0.6)  # fmt: skip
        ax.set_title(f"{name}: by class (o source, x target)")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "source and target features (PCA to 2-D)")
    fig.tight_layout()
    return fig


def plot_curves(history: list[dict], *, title: str = "training curves"):
    """Every numeric metric of a per-epoch history against the epoch (losses left, accuracies right)."""
    plt = _plt()
    if not history:
        raise TransferkitError("the history is empty: nothing to plot.")
    x = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    keys = sorted({k for h in history for k, v in h.items() if isinstance(v, int | float) and k != "epoch"})
    acc = [k for k in keys if "acc" in k]
    loss = [k for k in keys if "loss" in k]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, group, name in ((axes[0], loss, "loss"), (axes[1], acc, "accuracy")):
        for k in group:
            ax.plot(x, [h.get(k, np.nan) for h in history], marker=".", label=k)
        ax.set_xlabel("epoch")
        ax.set_title(name)
        if group:
            ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_confusion(y_true, y_pred, classes=None, *, title: str = "target confusion matrix"):
    """Row-normalised confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    from sklearn.metrics import confusion_matrix

    plt = _plt()
    labels = np.unique(np.r_[y_true, y_pred])
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    norm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(0.55 * len(labels) + 2.5, 0.55 * len(labels) + 2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = [str(classes[i]) if classes is not None and i < len(classes) else str(i) for i in labels]
    ax.set_xticks(range(len(labels)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), names, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_methods(rows: list[dict], *, title: str = "accuracy per task"):
    """Grouped bars: one group per task, one bar per method (fixed-defaults and oracle rows)."""
    plt = _plt()
    rows = [r for r in rows if r["selection"] in ("fixed-defaults", "oracle")]
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    acc = {}
    for r in rows:
        acc.setdefault((r["method"], r["task"]), []).append(float(r["accuracy"]))
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(tasks) * max(1, len(methods)) / 3), 4.5))
    width = 0.8 / max(1, len(methods))
    cmap = plt.get_cmap("tab20")
    for i, m in enumerate(methods):
        vals = [np.mean(acc.get((m, t), [np.nan])) for t in tasks]
        ax.bar(np.arange(len(tasks)) + i * width - 0.4 + width / 2, vals, width, label=m, color=cmap(i % 20))
    ax.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("target accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=max(1, len(methods) // 8 + 1), bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def _png(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _markdown_tables(text: str) -> str:
    """The summary's markdown as HTML: tables become tables, other lines paragraphs (escaped)."""
    out, table = [], []

    def flush():
        if table:
            cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table]
            header, body = cells[0], [c for c in cells[2:]]
            out.append(_table([dict(zip(header, r)) for r in body], header))
            table.clear()

    for line in text.splitlines():
        if line.strip().startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")) + 1, 4)
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line.strip())}</p>")
    flush()
    return "\n".join(out)


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}
.note{color:#666;font-size:13px}
"""
_CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute('data-images', ok + '/' + imgs.length);
});
</script>"""


def _page(title: str, parts: list[str]) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        + "\n".join(parts)
        + f"<p class='note'>written by transferkit report</p>{_CHECK}</body></html>"
    )


def _run_record(folder: Path) -> dict:
    """``folder/result.json`` as a run record, or a clear error for anything else."""
    path = folder / "result.json"
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TransferkitError(f"{path} is not valid JSON ({exc}); is it a run's result.json?") from None
    cfg = rec.get("config") if isinstance(rec, dict) else None
    needed = ("dataset", "task", "method", "seed")
    if not isinstance(cfg, dict) or any(k not in cfg for k in needed) or "accuracy" not in rec:
        raise TransferkitError(
            f"{path} is not the record of a `transferkit run` (it lacks the run's config and accuracy); "
            "pass the --out folder of a run or a bench."
        )
    return rec


def _run_parts(folder: Path) -> tuple[str, list[str]]:
    rec = _run_record(folder)
    cfg = rec["config"]
    title = f"{cfg['dataset']}: {cfg['task']} with {cfg['method']['name']}"
    info = [
        {
            "item": "accuracy (%)",
            "value": "no target labels" if rec["accuracy"] is None else f"{rec['accuracy']:.2f}",
        },  # fmt: skip
        {"item": "selection", "value": rec["selection"]},
        {"item": "method settings", "value": json.dumps(cfg["method"]["params"], default=str)},
        {"item": "estimator", "value": json.dumps(cfg.get("estimator"), default=str)},
        {"item": "preprocessing", "value": " ".join(p["name"] for p in cfg.get("preprocess", []))},
        {"item": "seed", "value": cfg["seed"]},
        {"item": "seconds", "value": rec["seconds"]},
        {"item": "command", "value": rec.get("command", "")},
    ]
    parts = [_table(info, ["item", "value"])]
    if (folder / "embedding.npz").exists():
        with np.load(folder / "embedding.npz", allow_pickle=False) as z:
            fig = plot_embedding(z["before"], z["after"], z["domain"], z["label"])
        parts += ["<h2>Features before and after adaptation</h2>", f"<img alt='embedding' src='{_png(fig)}'>"]
    if (folder / "predictions.csv").exists():
        with open(folder / "predictions.csv") as fh:
            preds = list(csv.DictReader(fh))
        for target in dict.fromkeys(p["target"] for p in preds):
            # the rows the accuracy counts: labelled, and not revealed to the method
            sel = [p for p in preds if p["target"] == target and int(p["label"]) >= 0
                   and p.get("revealed", "0") != "1"]  # fmt: skip
            fig = plot_confusion([int(p["label"]) for p in sel], [int(p["prediction"]) for p in sel],
                                 title=f"confusion matrix on {target}")  # fmt: skip
            parts += [
                f"<h2>Confusion matrix: {html.escape(target)}</h2>",
                f"<img alt='confusion' src='{_png(fig)}'>",
            ]
    history = rec.get("history") or (
        json.loads((folder / "history.json").read_text()) if (folder / "history.json").exists() else None
    )
    if history:
        parts += ["<h2>Training curves</h2>", f"<img alt='curves' src='{_png(plot_curves(history))}'>"]
    return title, parts


def _bench_parts(folder: Path) -> tuple[str, list[str]]:
    with open(folder / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise TransferkitError(f"{folder / 'results.csv'} has no rows.")
    title = f"benchmark: {rows[0]['suite']}"
    parts = ["<h2>Methods per task</h2>", f"<img alt='methods' src='{_png(plot_methods(rows))}'>"]
    if (folder / "summary.md").exists():
        parts.append(_markdown_tables((folder / "summary.md").read_text()))
    return title, parts


def write_report(folder, out=None) -> Path:
    """Write ``report.html`` for a run folder (``result.json``) or a bench folder (``results.csv``)."""
    from transferkit.io import atomic_write_text

    folder = Path(folder)
    if not folder.is_dir():
        raise TransferkitError(f"{folder} is not a folder; pass the --out folder of a run or a bench.")
    if (folder / "results.csv").exists():
        title, parts = _bench_parts(folder)
    elif (folder / "result.json").exists():
        title, parts = _run_parts(folder)
    else:
        subs = sorted(p for p in folder.iterdir() if (p / "result.json").exists())
        if not subs:
            raise TransferkitError(
                f"{folder} holds neither results.csv (a bench) nor result.json (a run); pass the --out "
                "folder of `transferkit run` or `transferkit bench`."
            )
        title, parts = f"runs in {folder.name}", []
        for sub in subs:
            t, p = _run_parts(sub)
            parts += [f"<h2>{html.escape(t)}</h2>", *p]
    target = Path(out) if out else folder / "report.html"
    if target.is_dir():
        raise TransferkitError(
            f"--out {target} is a folder; name the HTML file to write, e.g. {target}/report.html."
        )
    if target.exists() and not _is_report(target):
        raise TransferkitError(
            f"--out {target} exists and is not a report transferkit wrote; name a new file (an .html) so "
            "that nothing of yours is overwritten."
        )
    return atomic_write_text(target, _page(title, parts))


def _is_report(path: Path) -> bool:
    """Whether ``path`` is an HTML report written by this module (the only file it overwrites)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - 65536))
            tail = f.read()
    except OSError:
        return False
    return head.startswith(b"<!doctype html>") and b"written by transferkit report" in tail
