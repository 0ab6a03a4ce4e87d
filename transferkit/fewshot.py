"""Few-shot transfer: N-way K-shot episodes on a target domain, classified on top of a trained model.

A backbone trained on the source (or pretrained) turns every target image or text into a feature
vector; an *episode* draws N classes, K labelled *support* rows per class and Q *query* rows per
class, and a few-shot classifier labels the queries from the supports alone. Accuracy is averaged
over many episodes and reported with a 95% confidence interval (``1.96 * std / sqrt(episodes)``),
the protocol of the few-shot literature.

Classifiers (:data:`CLASSIFIERS`):

``prototype``
    nearest class mean (Snell et al. 2017, with the backbone fixed).
``simpleshot``
    SimpleShot (Wang et al. 2019): centre features on the mean of the *base* (source) features, L2
    normalise, then nearest class mean. ``center`` must be given (the source feature mean).
``transductive``
    starts from the SimpleShot prototypes and refines them by soft k-means over the unlabelled
    queries (a few steps; the supports keep their labels), in the spirit of transductive
    fine-tuning and soft k-means prototypes (Ren et al. 2018). Uses the query set's features.
``finetune``
    the fine-tuning baseline on a frozen trunk: a logistic-regression head trained on the supports
    (Chen et al. 2019, "A closer look at few-shot classification", baseline), on features centred
    and L2-normalised as SimpleShot's.

``simpleshot``, ``transductive`` and ``finetune`` centre on ``center`` and normalise, so they need it
(normalising features that are not centred puts every row in one narrow cone: the classes blur).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> Z = np.r_[rng.normal(0, 1, (40, 8)), rng.normal(4, 1, (40, 8)), rng.normal(-4, 1, (40, 8))]
>>> y = np.repeat([0, 1, 2], 40)
>>> res = evaluate_episodes(Z, y, "prototype", n_way=3, k_shot=1, n_episodes=50)
>>> res["accuracy"] > 90, res["episodes"]
(True, 50)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from transferkit.errors import TransferkitError, is_whole, unknown_name

__all__ = ["CLASSIFIERS", "classify_episode", "evaluate_episodes", "sample_episodes"]


def sample_episodes(
    labels, n_way: int, k_shot: int, n_query: int = 15, n_episodes: int = 600, random_state: int | None = 0,
    class_names=None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:  # fmt: skip
    """Draw episodes: ``(support_rows, query_rows, classes)`` with supports ordered class by class.

    Every class must have at least ``k_shot + 1`` rows (a support and at least one query); a class
    with fewer ``n_query`` than asked contributes what it has beyond its supports.
    """
    from transferkit.domains import _check_labels

    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iufb":
        raise TransferkitError(
            f"labels must be a 1-d array of integer class indices (-1 for unknown), got dtype {labels.dtype} "
            f"and shape {labels.shape}; encode class names with sklearn.preprocessing.LabelEncoder."
        )
    # 0.5 used to be a class of its own, and NaN or -2 an unknown label, silently (as evaluate_episodes)
    labels = _check_labels(labels, len(labels))
    sizes = {"n_way": n_way, "k_shot": k_shot, "n_query": n_query, "n_episodes": n_episodes}
    for name, value in sizes.items():
        if not is_whole(value):
            raise TransferkitError(f"{name} must be a whole number, got {value!r}.")
    if n_way < 2:
        raise TransferkitError(f"an episode needs at least 2 classes (n_way), got {n_way}.")
    if k_shot < 1 or n_query < 1:
        raise TransferkitError(f"k_shot and n_query must be >= 1, got {k_shot} and {n_query}.")
    if n_episodes < 0:
        raise TransferkitError(f"n_episodes must be >= 0, got {n_episodes}.")
    classes, counts = np.unique(labels[labels >= 0], return_counts=True)
    if n_way > len(classes):
        raise TransferkitError(
            f"{n_way}-way episodes need {n_way} classes, but the data has {len(classes)} labelled ones."
        )
    small = [(c, n) for c, n in zip(classes, counts) if n < k_shot + 1]
    if small:
        c, n = small[0]
        name = class_names[c] if class_names is not None else c
        name = name.item() if isinstance(name, np.generic) else name  # "class 3", not "class np.int64(3)"
        raise TransferkitError(
            f"class {name!r} has {n} samples; {k_shot}-shot episodes need at least {k_shot + 1} per class "
            f"({k_shot} support + 1 query). Lower k_shot or drop the class."
        )
    rows_by_class = {c: np.flatnonzero(labels == c) for c in classes}
    try:
        rng = np.random.default_rng(random_state)
    except (TypeError, ValueError):
        raise TransferkitError(
            f"random_state must be a whole number >= 0 (or None for fresh randomness), got {random_state!r}."
        ) from None
    episodes = []
    for _ in range(n_episodes):
        chosen = np.sort(rng.choice(classes, n_way, replace=False))
        support, query = [], []
        for c in chosen:
            rows = rng.permutation(rows_by_class[c])
            support.append(rows[:k_shot])
            query.append(rows[k_shot : k_shot + n_query])
        episodes.append((np.concatenate(support), np.concatenate(query), chosen))
    return episodes


def _prototypes(Zs, ys, n_way):
    return np.stack([Zs[ys == i].mean(0) for i in range(n_way)])


def _nearest(P, Zq):
    d = (Zq * Zq).sum(1)[:, None] - 2 * Zq @ P.T + (P * P).sum(1)[None, :]
    return d.argmin(1), d


def _normalize(Z, center):
    Z = Z - center if center is not None else Z
    return Z / np.clip(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12, None)


def _prototype(Zs, ys, Zq, n_way, center=None):
    return _nearest(_prototypes(Zs, ys, n_way), Zq)[0]


def _simpleshot(Zs, ys, Zq, n_way, center=None):
    return _prototype(_normalize(Zs, center), ys, _normalize(Zq, center), n_way)


def _transductive(Zs, ys, Zq, n_way, center=None, steps: int = 10, temperature: float = 10.0):
    Zs, Zq = _normalize(Zs, center), _normalize(Zq, center)
    P = _prototypes(Zs, ys, n_way)
    onehot = np.eye(n_way)[ys]
    for _ in range(steps):
        _, d = _nearest(P, Zq)
        logits = -temperature * d
        logits -= logits.max(1, keepdims=True)
        r = np.exp(logits)
        r /= r.sum(1, keepdims=True)
        weights = np.r_[onehot, r]  # supports count fully for their class, queries softly
        P = (weights.T @ np.r_[Zs, Zq]) / weights.sum(0)[:, None]
    return _nearest(P, Zq)[0]


def _finetune(Zs, ys, Zq, n_way, center=None):
    from sklearn.linear_model import LogisticRegression

    Zs, Zq = _normalize(Zs, center), _normalize(Zq, center)
    return LogisticRegression(C=10.0, max_iter=1000).fit(Zs, ys).predict(Zq)


CLASSIFIERS: dict[str, Callable] = {
    "finetune": _finetune,
    "prototype": _prototype,
    "simpleshot": _simpleshot,
    "transductive": _transductive,
}


NEEDS_CENTER = ("finetune", "simpleshot", "transductive")  # they centre on ``center``, then normalise


def _check_classifier(name) -> None:
    """``name`` is one of :data:`CLASSIFIERS` (a list or None used to fail inside the dict look-up)."""
    if not isinstance(name, str):
        raise TransferkitError(
            f"the few-shot classifier must be a name, one of {', '.join(CLASSIFIERS)}; got {name!r}."
        )
    if name not in CLASSIFIERS:
        raise unknown_name("few-shot classifier", name, CLASSIFIERS)


def _check_center(name: str, center, width: int | None = None) -> None:
    """``name`` needs a ``center`` and has one; a given ``center`` is one finite row of ``width`` values."""
    if name in NEEDS_CENTER and center is None:
        raise TransferkitError(
            f"{name} centres the features on the source (base) data's mean feature before normalising "
            "them; pass center= (for example the mean feature of the source rows)."
        )
    if center is None:
        return
    try:
        values = np.asarray(center, np.float64)
    except (TypeError, ValueError):
        raise TransferkitError(
            "center must be one mean feature (a vector of numbers, as wide as the rows), got values that "
            "are not numbers."
        ) from None
    if width is not None and values.shape != (width,):
        raise TransferkitError(
            f"center must be one mean feature of width {width} (as the rows), got shape {np.shape(center)}."
        )
    if not np.isfinite(values).all():
        raise TransferkitError(
            f"center contains {int((~np.isfinite(values)).sum())} NaN or infinite values; pass the (finite) "
            "mean feature of the source rows."
        )


def _episode_rows(name: str, Z) -> np.ndarray:
    """Feature rows as a 2-d float array without NaN or infinity."""
    try:
        Z = np.asarray(Z, np.float64)
    except (TypeError, ValueError):
        raise TransferkitError(
            f"{name} must be feature rows of numbers, got values that are not numbers."
        ) from None
    if Z.ndim != 2:
        raise TransferkitError(
            f"{name} must be 2-d (one feature row per sample), got shape {Z.shape}; a single row is "
            f"{name}.reshape(1, -1)."
        )
    if 0 in Z.shape:  # no query: finetune failed inside scikit-learn; no feature: every row was class 0
        raise TransferkitError(f"{name} must hold at least one row and one feature, got shape {Z.shape}.")
    finite = np.isfinite(Z)
    if not finite.all():
        row, col = np.argwhere(~finite)[0]
        raise TransferkitError(
            f"{name} contains {int((~finite).sum())} NaN or infinite values (first at row {row}, feature "
            f"{col}); impute or drop them."
        )
    return Z


def _episode_labels(ys, n_support: int, n_way: int) -> np.ndarray:
    """Support labels as int64 class indices 0..n_way-1, one per support row."""
    ys = np.asarray(ys)
    if ys.ndim != 1 or len(ys) != n_support:
        raise TransferkitError(
            f"ys must hold one label per support row ({n_support} rows), got shape {ys.shape}."
        )
    if ys.dtype.kind == "f" and np.isfinite(ys).all() and np.all(ys == np.round(ys)):  # 0.0, 1.0, ...
        ys = ys.astype(np.int64)
    if ys.dtype.kind not in "iub":
        raise TransferkitError(
            f"ys must be integer class indices 0..{n_way - 1} (the episode's classes), got dtype {ys.dtype}; "
            "encode class names with sklearn.preprocessing.LabelEncoder."
        )
    ys = ys.astype(np.int64)
    outside = sorted({int(c) for c in ys if not 0 <= c < n_way})
    if outside:
        raise TransferkitError(
            f"ys must be class indices 0..{n_way - 1} in a {n_way}-way episode, got {outside}; number the "
            f"episode's classes 0..{n_way - 1} (see evaluate_episodes)."
        )
    return ys


def classify_episode(name: str, Zs, ys, Zq, n_way: int, center=None) -> np.ndarray:
    """Labels (0..n_way-1) for the query features ``Zq`` from supports ``Zs`` with labels ``ys``.

    ``Zs`` and ``Zq`` are 2-d rows of one width without NaN or infinity, ``ys`` one class index
    0..n_way-1 per support row (every class at least once), ``center`` (when given) one finite row of
    that width; anything else is a :class:`TransferkitError`.
    """
    _check_classifier(name)
    _check_center(name, center)
    if not is_whole(n_way) or n_way < 2:
        raise TransferkitError(f"an episode needs at least 2 classes (n_way, a whole number), got {n_way!r}.")
    Zs, Zq = _episode_rows("Zs", Zs), _episode_rows("Zq", Zq)
    if Zs.shape[1] != Zq.shape[1]:
        raise TransferkitError(
            f"the support rows Zs have {Zs.shape[1]} features but the query rows Zq {Zq.shape[1]}; both come "
            "from the same backbone and must be as wide."
        )
    ys = _episode_labels(ys, len(Zs), n_way)
    missing = sorted(set(range(n_way)) - {int(c) for c in ys})
    if missing:
        raise TransferkitError(
            f"an episode's supports must hold every class 0..{n_way - 1}; classes {missing} have no support "
            "row, so nothing says what they look like."
        )
    _check_center(name, center, Zs.shape[1])
    return CLASSIFIERS[name](Zs, ys, Zq, n_way, center=center)


def evaluate_episodes(
    features, labels, classifier: str, *, n_way: int = 5, k_shot: int = 1, n_query: int = 15,
    n_episodes: int = 600, center=None, random_state: int | None = 0, class_names=None,
) -> dict:  # fmt: skip
    """Mean accuracy (%) over episodes, its 95% confidence interval, and the time per 1000 episodes."""
    from transferkit.domains import _check_labels, check_features

    _check_classifier(classifier)
    Z = np.asarray(check_features(features, name="features"), dtype=np.float64).reshape(len(features), -1)
    if len(Z) != len(labels):
        raise TransferkitError(f"{len(Z)} feature rows but {len(labels)} labels; they must match.")
    labels = _check_labels(labels, len(Z))  # integers (class indices), -1 for unknown
    if not is_whole(n_episodes) or n_episodes < 1:
        raise TransferkitError(f"n_episodes must be >= 1 (a whole number), got {n_episodes!r}.")
    _check_center(classifier, center, Z.shape[1])  # before sampling: a bad center fails every episode
    episodes = sample_episodes(labels, n_way, k_shot, n_query, n_episodes, random_state, class_names)
    start = time.perf_counter()
    accs = np.empty(len(episodes))
    for i, (support, query, chosen) in enumerate(episodes):
        remap = {c: j for j, c in enumerate(chosen)}
        ys = np.array([remap[c] for c in labels[support]])
        yq = np.array([remap[c] for c in labels[query]])
        pred = classify_episode(classifier, Z[support], ys, Z[query], n_way, center=center)
        accs[i] = np.mean(pred == yq)
    seconds = time.perf_counter() - start
    return {
        "classifier": classifier,
        "n_way": n_way,
        "k_shot": k_shot,
        "n_query": n_query,
        "episodes": len(episodes),
        "accuracy": float(100 * accs.mean()),
        "ci95": float(100 * 1.96 * accs.std(ddof=1) / np.sqrt(len(accs))) if len(accs) > 1 else float("nan"),
        "seconds_per_1000_episodes": float(1000 * seconds / len(episodes)),
    }
