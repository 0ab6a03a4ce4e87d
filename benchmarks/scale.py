"""Scaling out on 2 CPU cores: a sweep on 2 Ray workers against the same sweep run serially, and
2-process data-parallel training against 1 process, each pair in the same run.

    python benchmarks/scale.py            # writes benchmarks/results/scale/{result.json,summary.md}
    python benchmarks/scale.py --out /tmp/scale

1. The ``office-caltech10`` suite as a sweep (every shallow method with its fixed defaults, plus
   CORAL's and TCA's grids chosen by label-free scorers), once serially in this process and once
   with ``--workers 2`` on a local Ray instance; every trial runs with one thread, in both. The
   speedup is serial wall time / parallel wall time (goal: >= 1.6 on 2 cores), and both sweeps must
   give the same results table.
2. LeNet on 32x32 digits, source-only, global batch 64: one process using both cores (2 threads)
   against 2 gloo processes with 1 thread each (``DistributedDataParallel``), images per second.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

# every trial gets one thread, in this process as in Ray's workers (set before NumPy, imported in the
# functions below, loads its BLAS: another thread count changes float summation order, and with it a
# few predictions)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

RESULTS = Path(__file__).parent / "results" / "scale"
SWEEP = """
dataset: office-caltech10
methods:
  source-only: {}
  coral: {reg: [0.1, 1.0, 10.0]}
  tca: {mu: [0.1, 1.0, 10.0]}
  subspace-alignment: {}
  jda: {}
  kmm: {}
  kliep: {}
  density-ratio: {}
  nearest-neighbor-weighting: {}
  shared-lda: {}
  ot-mapping: {}
  self-training: {}
  knn: {}
tasks: all
seeds: [0]
select: [entropy, snd, mixval]
"""


def sweep_speedup() -> dict:
    import ray
    import torch

    from transferkit.sweep import load_spec, run_sweep

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.yaml"
        path.write_text(SWEEP)
        spec = load_spec(path)
        start = time.perf_counter()
        serial = run_sweep(spec, Path(tmp) / "serial", workers=1, quiet=True)
        t_serial = time.perf_counter() - start
        start = time.perf_counter()
        parallel = run_sweep(spec, Path(tmp) / "ray", workers=2, quiet=True)
        t_parallel = time.perf_counter() - start  # includes starting Ray
        ray.shutdown()
        tables = []
        for name in ("serial", "ray"):
            with open(Path(tmp) / name / "results.csv") as fh:
                tables.append([{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)])
        differ = [(a["task"], a["method"], a["selection"], a["accuracy"], b["accuracy"])
                  for a, b in zip(*tables) if a != b]  # fmt: skip
    return {"trials": serial["trials"], "serial_seconds": round(t_serial, 1),
            "ray_2_workers_seconds": round(t_parallel, 1), "speedup": round(t_serial / t_parallel, 3),
            "same_results": tables[0] == tables[1], "differing_rows": differ[:20],
            "parallel_trials": parallel["ran"]}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, steps, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))  # fmt: skip
    rate = _train(steps, threads=2 // world)
    if rank == 0:
        queue.put(rate)
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _train(steps: int, threads: int) -> float:
    import numpy as np
    import torch

    from transferkit.deep.source_only import SourceOnly
    from transferkit.nn.model import build_network
    from transferkit.nn.trainer import Trainer, TrainerConfig, seed_everything

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    n = 64 * steps
    X = rng.random((n + 64, 3, 32, 32), dtype=np.float32)
    y = np.r_[rng.integers(0, 10, n), -np.ones(64, np.int64)]
    sd = np.r_[np.zeros(n, np.int64), -np.ones(64, np.int64)]
    seed_everything(0)
    model = build_network("lenet", 10, in_shape=(3, 32, 32))
    trainer = Trainer(model, SourceOnly(), TrainerConfig(epochs=1, batch_size=64, device="cpu"))
    start = time.perf_counter()
    trainer.fit(X, y, sd)
    return n / (time.perf_counter() - start)


def ddp_throughput(steps: int = 150) -> dict:
    import torch.multiprocessing as mp

    one = _train(steps, threads=2)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    mp.spawn(_ddp_worker, args=(2, _free_port(), steps, queue), nprocs=2, join=True)
    two = queue.get()
    return {"images_per_second_1_process_2_threads": round(one, 1),
            "images_per_second_2_processes_1_thread": round(two, 1), "ratio": round(two / one, 3),
            "global_batch": 64, "steps": steps}  # fmt: skip


def main(argv=None) -> int:
    from transferkit.cli import OptionParser

    p = OptionParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(RESULTS), help="folder for result.json and summary.md")
    args = p.parse_args(argv)  # --help printed nothing of this: it ran the whole benchmark
    out = Path(args.out)

    from transferkit.experiment import machine, versions
    from transferkit.io import atomic_write_text

    command = "python benchmarks/scale.py " + " ".join(sys.argv[1:] if argv is None else argv)
    result = {"command": command, "machine": machine(), "versions": versions()}
    result["ddp"] = ddp_throughput()
    print("data-parallel:", result["ddp"], flush=True)
    result["sweep"] = sweep_speedup()
    print("sweep:", result["sweep"], flush=True)
    atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    s, d = result["sweep"], result["ddp"]
    atomic_write_text(out / "summary.md", "\n".join([
        "# Scaling out on 2 CPU cores", "", f"Command: `{command}`", "",
        f"Sweep of the office-caltech10 suite ({s['trials']} trials, one thread each): serial "
        f"{s['serial_seconds']} s, Ray with 2 workers {s['ray_2_workers_seconds']} s (Ray's start "
        f"included): **speedup {s['speedup']}**; identical results tables: {s['same_results']}.", "",
        f"Data-parallel LeNet training, global batch 64: 1 process with 2 threads "
        f"{d['images_per_second_1_process_2_threads']} images/s, 2 gloo processes with 1 thread each "
        f"{d['images_per_second_2_processes_1_thread']} images/s (ratio {d['ratio']}).", "",
        "Machine: " + json.dumps(result["machine"]), "",
    ]))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
