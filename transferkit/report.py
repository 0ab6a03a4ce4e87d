"""Pictures and one self-contained HTML report for a run or a benchmark folder.

``transferkit report DIR`` reads what ``transferkit run --out DIR`` or ``transferkit bench --out DIR``
(or ``transferkit sweep --out DIR``) wrote and writes ``DIR/report.html``: one file, tables and
pictures embedded (PNG as data URIs), no network and no other file needed to view it.

Pictures, each a function returning a matplotlib figure so it can be used on its own:

- :func:`plot_embedding`: a 2-D view of source and target rows before and after adaptation,
  coloured by domain and by class (unlabelled rows grey, a legend with the class names);
- :func:`plot_curves`: training curves from a deep run's metrics history, the kept epoch marked;
- :func:`plot_confusion`: the confusion matrix of the target predictions, axes named by class;
- :func:`plot_methods`: a bar chart of methods per task from a benchmark table, one bar per method
  and selection (and setting, where one method has several fixed settings).

What a report needs and what it can do without:

- ``result.json`` (a run) and ``results.csv`` (a bench or a sweep) are what the report is about: one
  that cannot be read, or lacks the columns the chart needs (``task``, ``method``, ``selection``,
  ``accuracy``), is a :class:`~transferkit.errors.TransferkitError` naming the file. Rows of
  ``results.csv`` without a number in ``accuracy`` are left out of the chart, with a note naming
  their lines; a table without a ``suite`` column is titled by its folder.
- The other files are pictures of the same run: a damaged or foreign ``predictions.csv`` (``transferkit
  predict``'s output written over the run's own, say), ``embedding.npz``, ``history.json`` or
  ``summary.md`` leaves its part out, with a note in the report naming the file and what is wrong
  and a ``UserWarning``; the rest of the report is written as usual.
- A target without labels gets no confusion matrix; the report says that it has no labels.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import warnings
import zipfile
from pathlib import Path

import numpy as np

from transferkit.errors import TransferkitError

__all__ = ["plot_confusion", "plot_curves", "plot_embedding", "plot_methods", "write_report"]

UNLABELLED = "0.6"  # the colour of rows without a label (matplotlib grey)
ORACLE = "oracle"


class _Unusable(Exception):
    """An optional file of a run that cannot be drawn: its part is left out with this message."""


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _plain(text) -> str:
    """``text`` as matplotlib shows it literally: a pair of ``$`` (class ``$0-$10``, domain ``t_$1$``)
    would otherwise be set as mathematics (``0-10``, a subscript)."""
    return str(text).replace("$", r"\$")


def _class_name(classes, i: int) -> str:
    """The name of class ``i`` for a picture: ``classes`` is a sequence by index or a mapping index ->
    name."""
    if isinstance(classes, dict):
        return _plain(classes.get(i, i))
    if classes is not None and 0 <= i < len(classes):
        return _plain(classes[i])
    return str(i)


def _two_columns(Z) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float64).reshape(len(Z), -1)
    return np.c_[Z, np.zeros(len(Z))] if Z.shape[1] == 1 else Z[:, :2]  # 1-D features: on a line


def plot_embedding(before, after, domain, label, *, classes=None, title: str = ""):
    """Four panels: before / after adaptation, coloured by domain (top) and by class (bottom).

    ``label``: class indices, -1 for a row without a label (drawn grey, "unlabelled"); ``classes``:
    the class names (a sequence by index or a mapping index -> name) for the legend, class indices
    where not given. Source rows are circles, target rows crosses. With more than 20 classes the
    colours repeat and the legend is left out.
    """
    plt = _plt()
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    is_target = np.asarray(domain) < 0
    label = np.asarray(label).astype(np.int64)
    present = sorted(int(k) for k in np.unique(label[label >= 0]))
    cmap = plt.get_cmap("tab10" if not present or present[-1] < 10 else "tab20")

    def colour(k):
        return UNLABELLED if k < 0 else cmap(k % cmap.N)

    kinds = present + ([-1] if (label < 0).any() else [])
    for col, (name, Z) in enumerate((("before adaptation", before), ("after adaptation", after))):
        Z = _two_columns(Z)
        ax = axes[0, col]
        ax.scatter(*Z[~is_target].T, s=6, alpha=0.5, label="source", color="tab:blue")
        ax.scatter(*Z[is_target].T, s=6, alpha=0.5, label="target", color="tab:orange")
        ax.set_title(f"{name}: by domain")
        ax.legend(markerscale=3, loc="best")
        ax = axes[1, col]
        for k in kinds:
            for marker, rows in (("o", ~is_target), ("x", is_target)):
                rows = rows & (label == k)
                if rows.any():
                    ax.scatter(*Z[rows].T, s=8, color=colour(k), marker=marker, alpha=0.6, linewidths=0.6,
                               label="unlabelled" if k < 0 else _class_name(classes, k))  # fmt: skip
        ax.set_title(f"{name}: by class (o source, x target)")
    if len(present) <= 20:
        names = ["unlabelled" if k < 0 else _class_name(classes, k) for k in kinds]
        handles = [
            Line2D([], [], marker="s", linestyle="", color=colour(k), label=n) for k, n in zip(kinds, names)
        ]
        for ax in axes[1]:
            ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(_plain(title or "source and target features (PCA to 2-D)"))
    fig.tight_layout()
    return fig


_COUNTERS = ("epoch", "step")  # the x axis and its companion, not metrics


def _curve_panel(key: str) -> str:
    if "acc" in key or key.startswith("select_"):
        return "accuracy and scores"
    if key == "lr":
        return "learning rate"
    if key == "seconds":
        return "seconds per epoch"
    return "loss"


def plot_curves(history: list[dict], *, best_epoch: int | None = None, title: str = "training curves"):
    """Every numeric metric of a per-epoch history against the epoch, one panel per kind.

    Panels (only those with a metric): ``loss`` (the total loss and every term of it, e.g. DANN's
    ``source_ce`` and ``domain_bce``), ``accuracy and scores`` (``*acc*`` and the early-stopping
    scorer's ``select_*``), ``learning rate`` and ``seconds per epoch``. ``epoch`` is the x axis and
    ``step`` its companion; true/false flags are not curves: an epoch whose target predictions
    collapsed (``target_collapsed``) is marked with a red cross on the scores. ``best_epoch``, the
    epoch whose weights the run kept (early stopping), is a dashed vertical line in every panel.
    """
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise TransferkitError("the history is empty: nothing to plot.")
    x = [h.get("epoch", i + 1) for i, h in enumerate(history)]

    def numeric(v):
        return isinstance(v, int | float) and not isinstance(v, bool)

    keys = sorted({k for h in history for k, v in h.items() if numeric(v) and k not in _COUNTERS})
    order = ["loss", "accuracy and scores", "learning rate", "seconds per epoch"]
    panels = {name: [k for k in keys if _curve_panel(k) == name] for name in order}
    panels = {name: group for name, group in panels.items() if group} or {"loss": []}
    n = len(panels)
    rows, cols = (1, n) if n <= 2 else (2, 2)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    collapsed = [xi for xi, h in zip(x, history) if h.get("target_collapsed") is True]
    for ax, (name, group) in zip(axes.ravel(), panels.items()):
        for k in group:
            ys = [h.get(k) if numeric(h.get(k)) else np.nan for h in history]
            ax.plot(x, ys, marker=".", label=k)
            if k.startswith("select_") and collapsed:
                ax.plot(collapsed, [y for xi, y in zip(x, ys) if xi in collapsed], "x", color="red", ms=8,
                        label="target collapsed (never kept)")  # fmt: skip
        if best_epoch is not None:
            ax.axvline(
                best_epoch, color="0.3", linestyle="--", linewidth=1, label=f"kept: epoch {best_epoch}"
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(name)
        if ax.lines:
            ax.legend(fontsize=8)
    for ax in axes.ravel()[n:]:
        ax.remove()
    fig.suptitle(_plain(title))
    fig.tight_layout()
    return fig


def plot_confusion(y_true, y_pred, classes=None, *, title: str = "target confusion matrix"):
    """Row-normalised confusion matrix (rows: true class, columns: predicted), counts in the cells.

    ``classes``: the class names (a sequence by index or a mapping index -> name) for the axes;
    class indices where not given.
    """
    from sklearn.metrics import confusion_matrix

    plt = _plt()
    if len(y_true) == 0:
        raise TransferkitError("no labelled rows: a confusion matrix needs the true classes.")
    labels = np.unique(np.r_[y_true, y_pred])
    with warnings.catch_warnings():  # one class, rightly predicted: scikit-learn's note on a 1x1 matrix
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        cm = confusion_matrix(y_true, y_pred, labels=labels)
    norm = cm / np.clip(cm.sum(1, keepdims=True), 1, None)
    fig, ax = plt.subplots(figsize=(0.55 * len(labels) + 2.5, 0.55 * len(labels) + 2))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    names = [_class_name(classes, int(i)) for i in labels]
    ax.set_xticks(range(len(labels)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), names, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if cm[i, j]:
                ax.text(j, i, cm[i, j], ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(_plain(title))
    fig.tight_layout()
    return fig


def _settings_text(params) -> str:
    """``{"reg": 0.1, "k": 5}`` (a results.csv ``params`` cell) as ``reg=0.1, k=5``."""
    try:
        value = json.loads(params)
    except (TypeError, ValueError):
        return str(params)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "no settings"
    return str(params)


_SETTINGS = ("params", "estimator", "preprocess", "target_labels")  # what tells rows of one method apart


def _series(rows: list[dict]) -> list[tuple[str, dict]]:
    """The rows of a results table as (bar label, row), one label per bar series.

    A series is a method and its selection (``fixed-defaults``, ``select:<scorer>``: what a user gets
    without target labels; ``oracle``: reads them, said in the label). The settings a scorer or the
    oracle chose vary by task and seed by design and are one series. Rows of one method and
    selection whose fixed settings differ (a sweep's grid without ``select``; another estimator or
    preprocessing) are one series per setting, the differing settings in the label: never averaged.
    """
    values: dict[tuple, dict[str, set]] = {}
    for r in rows:
        seen = values.setdefault((r["method"], r["selection"]), {c: set() for c in _SETTINGS})
        for c in _SETTINGS:
            seen[c].add(r.get(c))
    out = []
    for r in rows:
        selection = str(r["selection"])
        chosen = selection == ORACLE or selection.startswith("select:")
        varying = [c for c, v in values[r["method"], r["selection"]].items()
                   if len(v) > 1 and not (chosen and c == "params")]  # fmt: skip
        label = f"{r['method']}: {selection}"
        for c in varying:
            label += ", " + (_settings_text(r.get(c)) if c == "params" else f"{c}={r.get(c)}")
        if selection == ORACLE:
            label += " (reads target labels)"
        out.append((label, r))
    return out


def plot_methods(rows: list[dict], *, title: str = "target accuracy per task (mean over seeds)"):
    """Grouped bars: one group per task, one bar per method and selection, the mean over seeds.

    Every bar is the mean over seeds of the ``accuracy`` of one method, selection and task, as in
    ``summary.md``'s table; selections are never averaged together. ``fixed-defaults`` and
    ``select:<scorer>`` bars are what a user gets without target labels; ``oracle`` bars read target
    labels, are hatched and say so in the legend; past 20 bars a colour comes back with a pattern
    (dots, then crosses), so that no two series look alike. A method with several fixed settings (a sweep's
    grid without ``select``) gets one bar per setting, the setting in the legend (see :func:`_series`).
    ``rows``: the rows of ``results.csv`` (``task``, ``method``, ``selection``, ``accuracy``, and
    ``params`` and ``seed`` where present).
    """
    plt = _plt()
    labelled = _series(rows)
    tasks = list(dict.fromkeys(r["task"] for _, r in labelled))
    series = list(dict.fromkeys(label for label, _ in labelled))
    acc: dict[tuple[str, str], list[float]] = {}
    for label, r in labelled:
        acc.setdefault((label, r["task"]), []).append(float(r["accuracy"]))
    width_in = min(40.0, max(8.0, 0.22 * len(tasks) * len(series) + 4))
    fig, ax = plt.subplots(figsize=(width_in, 4.8))
    width = 0.8 / max(1, len(series))
    cmap = plt.get_cmap("tab20")
    for i, label in enumerate(series):
        vals = [float(np.mean(acc[label, t])) if (label, t) in acc else np.nan for t in tasks]
        oracle = label.endswith("(reads target labels)")
        # 20 colours: the 21st series on (the 21 methods of a default bench) adds a pattern to its colour
        hatch = ("//" if oracle else "") + ("", "..", "xx", "oo")[i // 20 % 4]
        ax.bar(np.arange(len(tasks)) + i * width - 0.4 + width / 2, vals, width, label=_plain(label),
               color=cmap(i % 20), hatch=hatch or None, edgecolor="0.25" if hatch else None,
               alpha=0.6 if oracle else 1.0)  # fmt: skip
    ax.set_xticks(range(len(tasks)), [_plain(t) for t in tasks], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("target accuracy (%)")
    ax.set_title(_plain(title))
    ax.legend(fontsize=7, ncol=max(1, len(series) // 20 + 1), bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig


def _png(fig) -> str:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")  # a legend beside the axes is kept whole
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
.warn{color:#a33;font-size:13px}
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


def _left_out(message: str) -> str:
    """A damaged optional part: a warning now and a note in the report where the part would be."""
    warnings.warn(message, UserWarning, stacklevel=3)
    return f"<p class='warn'>{html.escape(message)}</p>"


def _number(value) -> float | None:
    """A finite number from a table cell or a record, None for an empty cell or anything else."""
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _predictions(path: Path) -> tuple[dict[str, list[tuple[int, int, bool]]], dict[int, str]]:
    """``predictions.csv`` of a run: target -> [(label, prediction, revealed)], and index -> class name."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise _Unusable(f"{path} is not a text table: no confusion matrix.") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    missing = [c for c in ("target", "prediction", "label") if c not in fields]
    if missing:
        origin = (
            " (its columns are those of `transferkit predict`'s output, which replaced the run's own "
            "predictions; write predictions to another file and repeat the run to get them back)"
            if {"domain", "confidence"} <= set(fields)
            else ""
        )
        raise _Unusable(
            f"{path} is not the predictions of this run: it lacks the "
            f"column{'s' if len(missing) > 1 else ''} {', '.join(missing)}{origin}; no confusion matrix."
        )
    per_target: dict[str, list[tuple[int, int, bool]]] = {}
    names: dict[int, str] = {}
    for r in reader:
        try:
            if r["target"] is None:
                raise ValueError("a short row")
            label, pred = int(r["label"]), int(r["prediction"])
        except (TypeError, ValueError):
            raise _Unusable(
                f"{path} line {reader.line_num}: target {r['target']!r}, label {r['label']!r} and prediction "
                f"{r['prediction']!r} are not a target and two class indices; no confusion matrix."
            ) from None
        per_target.setdefault(r["target"], []).append((label, pred, r.get("revealed", "0") == "1"))
        for k, name in ((pred, r.get("predicted_class")), (label, r.get("label_class"))):
            if k >= 0 and name:
                names.setdefault(k, name)
    return per_target, names


def _embedding(path: Path) -> tuple[np.ndarray, ...]:
    """``embedding.npz``: the 2-D views before and after adaptation, domains and labels of its rows."""
    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):  # one array (.npy), not the archive of a run
            raise ValueError("a single array, not an .npz archive")
        with z:
            views = tuple(np.asarray(z[k]) for k in ("before", "after", "domain", "label"))
    except KeyError as exc:
        raise _Unusable(f"{path} lacks the array {exc}; the features picture is left out.") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _Unusable(
            f"{path} cannot be read ({type(exc).__name__}: {exc}); the features picture is left out "
            "(the run writes it again)."
        ) from None
    n = len(views[2])
    if n == 0:
        raise _Unusable(f"{path} holds no rows; the features picture is left out.")
    if any(len(v) != n for v in views) or any(v.ndim != 2 or v.shape[1] not in (1, 2) for v in views[:2]):
        raise _Unusable(
            f"{path} holds arrays of unequal lengths or shapes; the features picture is left out."
        )
    return views


def _history(folder: Path, rec: dict) -> list[dict] | None:
    history = rec.get("history")
    source = f"{folder / 'result.json'} (history)"
    if not history and (folder / "history.json").exists():
        source = str(folder / "history.json")
        try:
            history = json.loads((folder / "history.json").read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _Unusable(f"{source} is not valid JSON ({exc}); no training curves.") from None
    if not history:
        return None
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise _Unusable(f"{source} is not a list of per-epoch records; no training curves.")
    return history


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


def _steps_text(steps) -> str:
    """A record's preprocessing as ``--preprocess`` takes it, with the settings (``standardize`` alone
    is per-domain standardization; a table's default is ``standardize:per_domain=false``)."""
    out = []
    for step in [steps] if isinstance(steps, str) else steps or []:
        if not isinstance(step, dict):
            out.append(str(step))
            continue
        params = step.get("params") if isinstance(step.get("params"), dict) else {}
        settings = ",".join(f"{k}={v if isinstance(v, str) else json.dumps(v, default=str)}"
                            for k, v in params.items())  # fmt: skip
        out.append(f"{step.get('name', step)}" + (f":{settings}" if settings else ""))
    return " ".join(out)


def _accuracy_text(value) -> str:
    x = _number(value)
    return "no target labels" if value is None else f"{x:.2f}" if x is not None else str(value)


def _run_parts(folder: Path) -> tuple[str, list[str]]:
    rec = _run_record(folder)
    cfg = rec["config"]
    method = cfg["method"] if isinstance(cfg["method"], dict) else {"name": cfg["method"]}
    title = f"{cfg['dataset']}: {cfg['task']} with {method.get('name')}"
    info = [{"item": "accuracy (%)", "value": _accuracy_text(rec["accuracy"])}]
    if "balanced_accuracy" in rec:  # the mean of the target classes' recalls (a record since it has one)
        info.append({"item": "balanced accuracy (%)", "value": _accuracy_text(rec["balanced_accuracy"])})
    per_target = rec.get("accuracy_per_target")
    if isinstance(per_target, dict) and len(per_target) > 1:
        info += [{"item": f"accuracy on {t} (%)", "value": _accuracy_text(a)} for t, a in per_target.items()]
    info += [
        {"item": "selection", "value": rec.get("selection", "")},
        {"item": "method settings", "value": json.dumps(method.get("params", {}), default=str)},
        {"item": "estimator", "value": json.dumps(cfg.get("estimator"), default=str)},
        # a deep run's training (epochs, learning rate, ...) and network settings, as the run resolved them
        *({"item": key, "value": json.dumps(cfg[key], default=str)} for key in ("trainer", "network")
          if cfg.get(key)),
        *([{"item": "table columns", "value": json.dumps(cfg["columns"], default=str)}] if cfg.get("columns")
          else []),
        {"item": "preprocessing", "value": _steps_text(cfg.get("preprocess"))},
        {"item": "seed", "value": cfg["seed"]},
        {"item": "seconds", "value": rec.get("seconds", "")},
        {"item": "command", "value": rec.get("command", "")},
    ]  # fmt: skip
    parts = [_table(info, ["item", "value"])]
    names: dict[int, str] = {}
    if isinstance(rec.get("classes"), list):
        names = {i: str(c) for i, c in enumerate(rec["classes"])}
    preds: dict[str, list[tuple[int, int, bool]]] = {}
    if (folder / "predictions.csv").exists():
        try:
            preds, found = _predictions(folder / "predictions.csv")
            names = {**found, **names}
        except _Unusable as exc:
            parts.append(_left_out(str(exc)))
    if (folder / "embedding.npz").exists():
        try:
            before, after, domain, label = _embedding(folder / "embedding.npz")
        except _Unusable as exc:
            parts.append(_left_out(str(exc)))
        else:
            fig = plot_embedding(before, after, domain, label, classes=names or None)
            parts += [
                "<h2>Features before and after adaptation</h2>",
                f"<img alt='embedding' src='{_png(fig)}'>",
            ]
    for target, rows in preds.items():
        # the rows the accuracy counts: labelled, and not revealed to the method
        scored = [(t, p) for t, p, revealed in rows if t >= 0 and not revealed]
        if not scored:
            why = (
                "has no labels: no confusion matrix (and no accuracy)"
                if all(t < 0 for t, _, _ in rows)
                else "has no labelled rows the method was not given: no confusion matrix"
            )
            parts.append(f"<h2>Confusion matrix: {html.escape(target)}</h2>")
            parts.append(f"<p class='note'>target {html.escape(target)} {why}.</p>")
            continue
        y_true, y_pred = zip(*scored)
        fig = plot_confusion(np.array(y_true), np.array(y_pred), names or None,
                             title=f"confusion matrix on {target}")  # fmt: skip
        parts += [
            f"<h2>Confusion matrix: {html.escape(target)}</h2>",
            f"<img alt='confusion' src='{_png(fig)}'>",
        ]
    try:
        history = _history(folder, rec)
    except _Unusable as exc:
        parts.append(_left_out(str(exc)))
        history = None
    if history:
        best = rec.get("best_epoch")
        fig = plot_curves(
            history, best_epoch=best if isinstance(best, int) and not isinstance(best, bool) else None
        )
        parts += ["<h2>Training curves</h2>", f"<img alt='curves' src='{_png(fig)}'>"]
    return title, parts


_BENCH_COLUMNS = ("task", "method", "selection", "accuracy")  # what the chart needs


def _bench_parts(folder: Path) -> tuple[str, list[str]]:
    path = folder / "results.csv"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise TransferkitError(
            f"{path} is not a text table; is it the results.csv of `transferkit bench` or `sweep`?"
        ) from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in _BENCH_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise TransferkitError(
            f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; it is not the "
            "results.csv of `transferkit bench` or `transferkit sweep`."
        )
    rows, without = [], []
    for r in reader:
        acc = _number(r.get("accuracy"))
        if acc is None or any(not r.get(c) for c in _BENCH_COLUMNS[:3]):
            without.append(reader.line_num)
        else:
            rows.append({**r, "accuracy": acc})
    if not rows and not without:
        raise TransferkitError(f"{path} has no rows.")
    if not rows:
        raise TransferkitError(
            f"{path} has no row with a task, method, selection and a number in accuracy (lines "
            f"{_lines(without)})."
        )
    suite = rows[0].get("suite") or folder.name
    title = f"benchmark: {suite}"
    parts = []
    if without:
        parts.append(_left_out(
            f"{path}: {'lines' if len(without) > 1 else 'line'} {_lines(without)} "
            f"{'lack' if len(without) > 1 else 'lacks'} a number in accuracy (or a task, method or "
            "selection): left out of the chart."
        ))  # fmt: skip
    parts += ["<h2>Methods per task</h2>", f"<img alt='methods' src='{_png(plot_methods(rows))}'>"]
    if (folder / "summary.md").exists():
        try:
            parts.append(_markdown_tables((folder / "summary.md").read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            parts.append(_left_out(f"{folder / 'summary.md'} is not text; its tables are left out."))
    return title, parts


def _lines(numbers: list[int], most: int = 10) -> str:
    shown = ", ".join(map(str, numbers[:most]))
    return shown + (f" and {len(numbers) - most} more" if len(numbers) > most else "")


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
