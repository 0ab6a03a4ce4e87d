"""Peak memory of the kernel methods, in dense n x n float64 matrices, against their memory guards.

MEDA, KMM and the kernel forms of TCA and JDA work with dense n x n matrices; each refuses, before
allocating, a problem whose matrices would not fit (``check_dense_size``, with a count of matrices
per method). This script measures the count: each method is fitted in a fresh process on n random
rows (50 features, 5 classes, half source and half target), after a small warm-up fit, and the rise
of the process's peak resident memory is divided by ``8 n^2``. A guard holds when it is at least the
measured count.

    python benchmarks/kernel_memory.py [--sizes 2000 3000] [--out benchmarks/results/kernel-memory]
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from _common import check_list, refuse_changed_defaults

from transferkit.cli import OptionParser

# method -> (estimator expression, the count its guard allows, the rows the guard counts)
METHODS = {
    "meda": ("MEDA()", 6),
    "jda-rbf": ("JDA(kernel='rbf')", 6),
    "tca-rbf": ("TCA(kernel='rbf')", 7),
    "kmm": ("KMM()", 7),  # counts the source rows only
}

CHILD = """
import resource, sys, time
import numpy as np
from transferkit.shallow.jda import JDA
from transferkit.shallow.kmm import KMM
from transferkit.shallow.meda import MEDA
from transferkit.shallow.tca import TCA
n, expr = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(0)
y = rng.integers(0, 5, n)
X = rng.normal(size=(n, 50)) + 0.5 * y[:, None]
sd = np.r_[np.zeros(n // 2, int), -np.ones(n - n // 2, int)]
y = np.where(sd >= 0, y, -1)
small = np.r_[np.arange(40), np.arange(n - 40, n)]
eval(expr).fit(X[small], y[small], sd[small])  # imports and first-call allocations: in the baseline
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
eval(expr).fit(X, y, sd)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(peak - base, time.perf_counter() - start)
"""


def main(argv=None) -> int:
    ap = OptionParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 3000])
    ap.add_argument("--out", default="benchmarks/results/kernel-memory")
    args = ap.parse_args(argv)
    check_list(ap, "--sizes", args.sizes, minimum=100)  # the warm-up fit takes 80 rows
    refuse_changed_defaults(ap, args)
    from transferkit.io import atomic_write_text

    rows = []
    for name, (expr, guard) in METHODS.items():
        for n in args.sizes:
            done = subprocess.run([sys.executable, "-c", CHILD, str(n), expr], capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                return 1
            rise, seconds = map(float, done.stdout.split()[-2:])
            rows_counted = n // 2 if name == "kmm" else n  # KMM's matrices are n_s x n_s
            count = rise / (8.0 * rows_counted**2)
            rows.append({"method": name, "n": n, "matrices": round(count, 2), "guard": guard,
                         "holds": count <= guard, "seconds": round(seconds, 1)})  # fmt: skip
            print(
                f"{name:8s} n={n:5d} peak {count:5.2f} matrices (guard {guard}) {seconds:6.1f} s", flush=True
            )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# Kernel methods: peak memory against the guard", "",
             f"Command: `python benchmarks/kernel_memory.py --sizes {' '.join(map(str, args.sizes))}`  ",
             f"Date: {time.strftime('%Y-%m-%d')}. Peak resident memory above a warmed-up baseline, in dense "
             "n x n float64 matrices (KMM: n_s x n_s, the source half).", "",
             "| method | n | matrices at the peak | guard | holds |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [
        f"| {r['method']} | {r['n']} | {r['matrices']:.2f} | {r['guard']} | {r['holds']} |" for r in rows
    ]
    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    atomic_write_text(out / "results.json", json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["holds"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
