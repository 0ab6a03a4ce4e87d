"""The leave-one-domain-out protocol, with the three model-selection rules side by side.

One domain is held out; the method is trained on the others (the *training domains*), once per
candidate setting of its ``search_space``, and every candidate is scored three ways (Gulrajani &
Lopez-Paz, *In Search of Lost Domain Generalization*, ICLR 2021):

``training-domain``
    Each training domain is split 80/20 (``val_fraction``; the split depends on the seed). Every
    candidate trains on the 80% parts; the pooled accuracy on the 20% parts picks.
``leave-one-domain-out``
    For each training domain ``v``, the candidate is trained again on the 80% parts of the *other*
    training domains and scored on all of ``v``; the mean over the folds picks. As in DomainBed, the
    chosen candidate is then the one trained on all training domains (the ``training-domain`` run
    above: no extra training), whose held-out accuracy is reported. This costs one more training per
    training domain and candidate; ``lodo_epochs`` may shorten those fold runs. With only two
    training domains each fold trains on a single domain, where a cross-domain penalty vanishes
    (CORAL, MMD, GroupDRO, Mixup and V-REx reduce to ERM there): candidates that differ only in the
    penalty's weight then tie, and a tie goes to the first candidate of the grid.
``oracle``
    The held-out domain's accuracy picks (it reads the held-out labels): a ceiling, not a result.

A setting whose training diverges (a non-finite loss, in its main run or in a fold) is recorded as
failed and never chosen; when every setting fails, the rows carry a NaN accuracy.

The reported accuracy is always that of the chosen candidate on every row of the held-out domain,
which no training run ever sees (its rows are not even passed to the trainer). Rows follow the
foundation's results format (:data:`transferkit.benchmark.COLUMNS`): ``task`` and ``target`` name the
held-out domain, ``source`` the ``+``-joined training domains, ``selection`` the rule.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np

from transferkit.errors import TransferkitError
from transferkit.nn.trainer import NonFiniteLossError

__all__ = ["SELECTIONS", "Candidate", "DGResult", "dg_inputs", "leave_one_domain_out"]

SELECTIONS = ("training-domain", "leave-one-domain-out", "oracle")


@dataclass
class Candidate:
    """One setting of the grid and its three scores (accuracies in percent; None where its training
    diverged, ``failed`` then saying where: such a setting is never chosen)."""

    params: dict[str, Any]
    val_accuracy: float | None
    heldout_accuracy: float | None
    lodo_accuracy: float | None = None
    lodo_folds: dict[str, float | None] = field(default_factory=dict)
    seconds: float = 0.0
    lodo_seconds: float = 0.0
    failed: str = ""


@dataclass
class DGResult:
    """The protocol's outcome for one method, held-out domain and seed."""

    method: str
    held_out: str
    training: tuple[str, ...]
    seed: int
    candidates: list[Candidate]
    chosen: dict[str, int | None]
    rows: list[dict]
    single_domain_folds: bool = False


def dg_inputs(dataset, max_per_domain: int | None = None, subsample_seed: int = 0) -> dict:
    """``{domain: (network inputs, labels)}`` of a :class:`~transferkit.domains.DomainDataset`.

    Images and vectors become float32; texts become all-MiniLM-L6-v2 sentence embeddings, one cached
    call per domain (the cache :mod:`benchmarks/fewshot.py` fills). ``max_per_domain``: keep a random
    subset of that many rows per domain (fixed by ``subsample_seed``, the same for every seed).
    """
    out = {}
    for d in dataset.domains:
        X, y = dataset.X[d], np.asarray(dataset.y[d], dtype=np.int64)
        if dataset.modality == "text":
            from transferkit.features import cache_dir, embed_texts

            X = embed_texts(X, cache_dir=cache_dir() / "embeddings")
        X = np.asarray(X, dtype=np.float32)
        if max_per_domain is not None and len(X) > max_per_domain:
            rows = np.sort(
                np.random.default_rng(subsample_seed).choice(len(X), max_per_domain, replace=False)
            )
            X, y = X[rows], y[rows]
        out[d] = (X, y)
    return out


def _network(in_shape: tuple[int, ...], n_classes: int, network: Mapping[str, Any]):
    """The network a deep run builds for these inputs (as :func:`transferkit.deep.runner.fit_deep`)."""
    from transferkit.nn.model import build_network

    unsupported = sorted(k for k in ("init", "lora_rank", "new_head") if network.get(k))
    if unsupported:
        raise TransferkitError(
            f"the DG protocol builds its networks from scratch; {unsupported} is not supported."
        )
    backbone = network.get("backbone", "auto")
    if backbone == "auto":
        backbone = "lenet" if len(in_shape) == 3 and in_shape[-1] == 32 else "mlp"
    options = {"hidden": (int(network.get("hidden", 256)),)} if backbone == "mlp" else {}
    if network.get("pretrained"):
        options["pretrained"] = True
    return build_network(backbone, n_classes, in_shape=in_shape, bottleneck_dim=network.get("bottleneck_dim"),
                         input_norm=bool(network.get("input_norm")), **options)  # fmt: skip


def _train(method: str, settings: Mapping[str, Any], X, y, sd, *, n_classes: int, seed: int,
           single_domain_ok: bool = False):  # fmt: skip
    """Train ``method`` with ``settings`` (method, trainer and network settings) on source rows only."""
    from transferkit import registry
    from transferkit.deep.runner import split_settings
    from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything

    method_s, trainer_s, network_s = split_settings(dict(settings))
    seed_everything(seed)
    model = _network(tuple(X.shape[1:]), n_classes, network_s)
    loss = registry.build("method", method, method_s)
    if single_domain_ok:  # a leave-one-domain-out fold with one training domain left (see the module doc)
        loss.min_source_domains = 1
    trainer = Trainer(model, loss, TrainerConfig(**{**trainer_s, "seed": seed}))
    trainer.fit(X, y, sd)
    return trainer


def _accuracy(trainer, X, y) -> float:
    """Accuracy on the labelled rows (an unlabelled row, -1, is no error: it is not scored)."""
    X, y = np.asarray(X), np.asarray(y)
    known = y >= 0
    return 100.0 * float(np.mean(trainer.predict(X[known]) == y[known]))


def _check_domains(domains, held_out: str) -> None:
    """Each domain an (inputs, integer labels) pair of the same row shape, with rows; training domains
    fully labelled, with two classes at least between them, the held-out one with at least one label
    (-1 marks a row that is not scored)."""
    shapes = {}
    classes: set[int] = set()
    for name, pair in domains.items():
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise TransferkitError(f"domain '{name}' must be an (inputs, labels) pair.")
        X, y = np.asarray(pair[0]), np.asarray(pair[1])
        if y.ndim != 1 or len(y) != len(X) or y.dtype.kind not in "iu":
            raise TransferkitError(
                f"domain '{name}': labels must be one integer class index per row ({len(X)} rows), got "
                f"shape {y.shape} and dtype {y.dtype}; encode class names as 0..K-1 first."
            )
        if name != held_out and len(y) == 0:  # it failed inside numpy (the largest label of no label)
            raise TransferkitError(f"training domain '{name}' has no rows; leave it out of domains.")
        if (y < -1).any():  # -2 in the held-out domain was left unscored, silently, as -1 is
            raise TransferkitError(
                f"domain '{name}': labels must be class indices >= 0, or -1 for a row without a label; got "
                f"{sorted({int(v) for v in y[y < -1]})[:5]}."
            )
        shapes[name] = tuple(X.shape[1:])
        labelled = y >= 0
        if name != held_out:
            classes.update(np.unique(y).tolist())
        if name != held_out and not labelled.all():
            raise TransferkitError(
                f"training domain '{name}' has {int((~labelled).sum())} rows without a label (-1); every "
                "training row needs one."
            )
        if name == held_out and not labelled.any():
            raise TransferkitError(f"the held-out domain '{name}' has no labelled row to score.")
    if len(set(shapes.values())) > 1:
        raise TransferkitError(
            f"every domain's rows must have the same shape, got {shapes}; bring them to one shape first."
        )
    if len(classes) < 2:  # a network of one output scores 100% on a held-out domain of that class
        raise TransferkitError(
            f"the training domains hold only one class ({', '.join(map(str, sorted(classes)))}); a "
            "classifier needs at least two classes to learn from."
        )


def _pick(scores: Sequence[float | None]) -> int | None:
    """The index of the best score; the first one on a tie; None when every score is missing."""
    best = None
    for i, s in enumerate(scores):
        if s is not None and (best is None or s > scores[best]):
            best = i
    return best


def leave_one_domain_out(
    domains: Mapping[str, tuple[np.ndarray, np.ndarray]],
    held_out: str,
    method: str,
    *,
    n_classes: int | None = None,
    candidates: Sequence[Mapping[str, Any]] | None = None,
    settings: Mapping[str, Any] | None = None,
    seed: int = 0,
    val_fraction: float = 0.2,
    lodo: bool = True,
    lodo_epochs: int | None = None,
    suite: str = "",
    preprocess: str = "",
    progress: Callable[[str], None] | None = None,
) -> DGResult:
    """Run ``method`` under the leave-one-domain-out protocol with ``held_out`` as the unseen domain.

    ``domains``: ``{name: (inputs, labels)}`` (:func:`dg_inputs`). ``candidates``: the settings to
    choose from (default: every combination of the method's ``search_space``); ``settings`` are fixed
    settings added to each (method, trainer and network settings, as ``--set`` takes them: strings are
    parsed). ``lodo=False`` skips the leave-one-domain-out folds (no such row then). Returns the
    candidates' scores, the index each rule chose and the result rows.
    """
    from transferkit import registry
    from transferkit.errors import check_whole
    from transferkit.experiment import grid

    if not isinstance(domains, Mapping):
        raise TransferkitError(
            f"domains must be a dict domain name -> (inputs, labels), got a {type(domains).__name__}."
        )
    check_whole("seed", seed, 0)
    entry = registry.entry("method", method)
    if entry.role != "deep":
        raise TransferkitError(f"method '{method}' is not a deep method; the DG protocol trains networks.")
    if held_out not in domains:
        from transferkit.errors import unknown_name

        raise unknown_name("domain", held_out, domains)
    training = tuple(d for d in domains if d != held_out)
    need = int(getattr(entry.load(), "min_source_domains", 1))
    if len(training) < max(1, need):
        raise TransferkitError(
            f"method '{method}' needs at least {need} training domains; holding out '{held_out}' leaves "
            f"{len(training)} ({', '.join(training) or 'none'})."
        )
    _check_domains(domains, held_out)
    if isinstance(val_fraction, bool) or not (isinstance(val_fraction, Real) and 0 < val_fraction < 1):
        raise TransferkitError(f"val_fraction must be a number in (0, 1), got {val_fraction!r}.")
    if lodo_epochs is not None:
        check_whole("lodo_epochs", lodo_epochs, 1)
    if n_classes is not None:
        check_whole("n_classes", n_classes, 2)
    fixed = registry.resolve_params(entry, dict(settings or {}))
    if candidates is None:
        space = {k: v for k, v in entry.search_space.items() if k not in fixed}
        candidates = grid(space) if space else [{}]
    candidates = list(candidates)
    if any(not isinstance(c, Mapping) for c in candidates):
        raise TransferkitError(
            "candidates must be a list of dicts setting name -> value (for example [{'lr': 0.01}]), got "
            f"{[c for c in candidates if not isinstance(c, Mapping)][:1]}."
        )
    candidates = [registry.resolve_params(entry, dict(c)) for c in candidates]
    if not candidates:
        raise TransferkitError("the protocol needs at least one candidate setting.")
    if n_classes is None:  # from the training domains: the held-out domain's labels are read only to score
        n_classes = int(max(int(np.max(domains[d][1])) for d in training)) + 1
    say = progress or (lambda msg: None)

    # the 80/20 split of every training domain (the held-out domain is never split nor trained on)
    rng = np.random.default_rng(seed)
    train_part, val_part = {}, {}
    for d in training:
        X, y = domains[d]
        order = rng.permutation(len(X))
        n_val = max(1, int(round(val_fraction * len(X))))
        if len(X) - n_val < 2:
            raise TransferkitError(f"training domain '{d}' has {len(X)} rows; too few to split.")
        val_part[d] = (X[np.sort(order[:n_val])], y[np.sort(order[:n_val])])
        train_part[d] = (X[np.sort(order[n_val:])], y[np.sort(order[n_val:])])

    def stack(names):
        Xs = np.concatenate([train_part[d][0] for d in names])
        ys = np.concatenate([train_part[d][1] for d in names])
        sd = np.concatenate([np.full(len(train_part[d][1]), i, np.int64) for i, d in enumerate(names)])
        return Xs, ys, sd

    X_tr, y_tr, sd_tr = stack(training)
    X_val = np.concatenate([val_part[d][0] for d in training])
    y_val = np.concatenate([val_part[d][1] for d in training])
    X_ho, y_ho = domains[held_out]
    lodo = lodo and len(training) >= 2  # a fold needs a domain to train on and one to score
    single = lodo and len(training) - 1 < need
    scored: list[Candidate] = []
    for params in candidates:
        run_settings = {**fixed, **params}
        started = time.perf_counter()
        try:
            trainer = _train(method, run_settings, X_tr, y_tr, sd_tr, n_classes=n_classes, seed=seed)
            cand = Candidate(dict(params), _accuracy(trainer, X_val, y_val), _accuracy(trainer, X_ho, y_ho))
        except NonFiniteLossError as exc:  # a diverging setting is a failed candidate, not a failed protocol
            cand = Candidate(dict(params), None, None, failed=f"training on all training domains: {exc}")
        cand.seconds = time.perf_counter() - started
        if lodo and not cand.failed:
            started = time.perf_counter()
            fold_settings = {**run_settings, **({"epochs": lodo_epochs} if lodo_epochs else {})}
            for v in training:
                others = tuple(d for d in training if d != v)
                Xf, yf, sdf = stack(others)
                try:
                    t = _train(method, fold_settings, Xf, yf, sdf, n_classes=n_classes, seed=seed,
                               single_domain_ok=single)  # fmt: skip
                except NonFiniteLossError as exc:
                    cand.lodo_folds[v] = None
                    cand.failed = f"the fold leaving {v} out: {exc}"
                    continue
                Xv = np.concatenate([train_part[v][0], val_part[v][0]])
                yv = np.concatenate([train_part[v][1], val_part[v][1]])
                cand.lodo_folds[v] = _accuracy(t, Xv, yv)
            folds = list(cand.lodo_folds.values())
            cand.lodo_accuracy = None if None in folds else float(np.mean(folds))
            cand.lodo_seconds = time.perf_counter() - started
        show = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        say(f"{method} held-out {held_out} seed {seed} {json.dumps(params, sort_keys=True)}: "
            f"val {show(cand.val_accuracy)} lodo {show(cand.lodo_accuracy)} held-out "
            f"{show(cand.heldout_accuracy)}{' FAILED ' + cand.failed if cand.failed else ''}")  # fmt: skip
        scored.append(cand)

    # a setting that diverged, in its main run or in a fold, is never chosen (by any rule)
    chosen = {
        "training-domain": _pick([None if c.failed else c.val_accuracy for c in scored]),
        "oracle": _pick([None if c.failed else c.heldout_accuracy for c in scored]),
    }
    if lodo:
        chosen["leave-one-domain-out"] = _pick([None if c.failed else c.lodo_accuracy for c in scored])
    base_seconds = sum(c.seconds for c in scored)
    rows = []
    for selection in SELECTIONS:
        if selection not in chosen:
            continue
        # every candidate diverged: the row says so with a NaN accuracy (and the fixed settings)
        best = scored[chosen[selection]] if chosen[selection] is not None else Candidate({}, None, math.nan)
        seconds = base_seconds + (sum(c.lodo_seconds for c in scored) if selection == SELECTIONS[1] else 0.0)
        shown = {**dict(settings or {}), **best.params}
        rows.append({
            "suite": suite, "task": held_out, "source": "+".join(training), "target": held_out,
            "method": method, "params": json.dumps(shown, sort_keys=True, default=str), "estimator": "",
            "preprocess": preprocess, "seed": seed, "selection": selection, "target_labels": 0,
            "accuracy": round(best.heldout_accuracy, 4), "seconds": round(seconds, 4),
        })  # fmt: skip
    return DGResult(method, held_out, training, seed, scored, chosen, rows, single_domain_folds=bool(single))
