"""One process against several under torchrun, side by side: `make bench-ddp`.

    python bench/ddp.py [--quick] [--dataset DIR] [--processes 2] [--rounds 2] [--device cpu]

Trains one seed-preset epoch on a prepared dataset (default: the bundled IMDB reviews, prepared
into bench/out/ddp) as one process with every core, and under `torchrun --nproc-per-node N` with
the cores shared out (the same global batch: --batch-size 32 against 32/N per process), in turn
(A B A B ...), and reports each run's training tokens/s (history.csv) and wall time, their
medians and the ratio. Writes its block of bench/RESULTS.md (bench/RESULTS-quick.md with --quick).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import write_block  # bench/bench.py, beside this script

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


def one_run(dataset: Path, out: Path, processes: int, device: str, batch: int) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    args = ["train", str(dataset), "--preset", "seed", "--epochs", "1", "--out", str(out), "--quiet",
            "--device", device, "--batch-size", str(batch // processes)]
    if processes == 1:
        command = [str(BIN / "revsent"), *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   "-m", "revsent", *args]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - started
    row = (out / "history.csv").read_text().splitlines()
    history = dict(zip(row[0].split(","), row[1].split(",")))
    return {"tokens_per_s": float(history["tokens_per_s"]), "epoch_seconds": float(history["seconds"]),
            "reviews": int(history["reviews"]), "wall_seconds": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dataset", default=None, help="a prepared dataset (default: IMDB, prepared here)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch")
    parser.add_argument("--out", default=str(HERE / "out" / "ddp"))
    parser.add_argument("--results", default=None)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dataset = Path(args.dataset) if args.dataset else out / ("imdb-1000" if args.quick else "imdb-6000")
    if not args.dataset and not (dataset / "manifest.json").exists():
        subprocess.run([str(BIN / "revsent"), "prepare", "imdb", "--preset", "seed", "--limit",
                        "1000" if args.quick else "6000", "--out", str(dataset), "--force"], check=True)
    runs: dict[int, list[dict]] = {1: [], args.processes: []}
    for _ in range(1 if args.quick else args.rounds):
        for processes in runs:
            runs[processes].append(one_run(dataset, out / f"model-{processes}", processes, args.device, args.batch_size))
            print(json.dumps({"processes": processes, **runs[processes][-1]}), file=sys.stderr, flush=True)
    median = {p: statistics.median(r["tokens_per_s"] for r in rows) for p, rows in runs.items()}
    lines = [f"Measured {time.strftime('%Y-%m-%d')} by `python bench/ddp.py` on {os.cpu_count()} cores, device "
             f"{args.device}: one seed-preset epoch over {runs[1][0]['reviews']} training reviews of {dataset.name}, "
             f"global batch {args.batch_size}, runs in turn ({len(runs[1])} each).", "",
             "| processes | tokens/s per run | median tokens/s | × one process | wall s per run |", "|---|---|---:|---:|---|"]
    for processes, rows in runs.items():
        speeds = ", ".join(f"{r['tokens_per_s']:.0f}" for r in rows)
        walls = ", ".join(f"{r['wall_seconds']:.1f}" for r in rows)
        name = f"{processes} (torchrun)" if processes > 1 else "1"
        lines.append(f"| {name} | {speeds} | {median[processes]:.0f} | {median[processes] / median[1]:.2f} | {walls} |")
    report = "\n".join(lines)
    print(report)
    target = Path(args.results) if args.results else HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    write_block(target, report, "make bench-ddp")


if __name__ == "__main__":
    main()
