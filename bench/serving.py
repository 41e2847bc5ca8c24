"""Serving and export speed, side by side in one run: `make bench` runs it after bench.py.

    python bench/serving.py [--quick] [--out bench/out]

For the seed and the default models that bench.py trained on IMDB (seed 36), on the IMDB
held-out reviews:

1. batch prediction, reviews/s and accuracy: PyTorch fp32, onnxruntime fp32, onnxruntime int8
   (each in its own process, best of three passes after a warm-up);
2. `revsent predict MODEL "text"` start-up, process start to answer, with each backend
   (median of five);
3. a load test of `revsent serve` on 127.0.0.1: the held-out reviews one per request at 32
   concurrent (10,000 requests), then requests of 32 reviews at 32 concurrent, with micro-batching
   on (--max-batch 64 --max-wait-ms 2, the defaults; one process, and one per core with one thread each)
   and off (--max-batch 1): throughput, p50/p95/p99 latency,
   errors, and single-review throughput over in-process batch prediction (the torch fp32 figure
   of step 1, same model, same run).

The client runs on this machine too and takes CPU from the server; figures are for 2 cores.
Writes the table into the generated block of bench/RESULTS.md (bench/RESULTS-quick.md with --quick).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench import write_block  # bench/bench.py, beside this script

HERE = Path(__file__).resolve().parent
REVSENT = str(Path(sys.executable).parent / "revsent")


def batch_worker(backend: str, model: str, test: str) -> None:
    """Step 1 in its own process: one JSON line with reviews/s and accuracy."""
    rows = [json.loads(line) for line in open(test, encoding="utf-8")]
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    if backend == "torch":
        from revsent import Classifier

        clf = Classifier.load(model)
    else:
        from revsent.export import OnnxClassifier

        clf = OnnxClassifier.load(model)
    clf.predict_proba(texts[:256])  # warm-up
    best, proba = float("inf"), None
    for _ in range(3):
        started = time.perf_counter()
        proba = clf.predict_proba(texts)
        best = min(best, time.perf_counter() - started)
    predicted = [clf.classes_[k] for k in proba.argmax(axis=1)]
    print(json.dumps({"per_s": len(texts) / best, "accuracy": float(np.mean([p == y for p, y in zip(predicted, labels)])),
                      "labels": "".join(str(int(k)) for k in proba.argmax(axis=1))}))


def batch_speed(backend: str, model: Path, test: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", backend, str(model), str(test)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def startup(model: Path, backend: str, runs: int = 5) -> float:
    """Median seconds from process start to the answer of `revsent predict MODEL "text"`."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([REVSENT, "predict", str(model), "--backend", backend, "a fine film"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    import urllib.error
    import urllib.request

    port = _free_port()
    proc = subprocess.Popen([REVSENT, "serve", str(model), "--port", str(port), "--log-level", "warning", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    ready = 0  # consecutive ready answers, each on a new connection: with --workers, any worker may answer
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"revsent serve exited: {proc.stderr.read()[-500:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=1):
                ready += 1
                if ready == 20:
                    return proc, url
                continue
        except (urllib.error.URLError, OSError):
            ready = 0
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("revsent serve did not become ready in 60 s")


async def _load(url: str, bodies: list[bytes], concurrency: int) -> dict:
    """POST each body to /v1/predict over ``concurrency`` keep-alive connections.

    A lean HTTP/1.1 client on asyncio streams (what wrk does in C): the load generator shares
    the 2 cores with the server, and a full client library would take a large share of them.
    """
    host, port = url.removeprefix("http://").split(":")
    latencies, errors, cursor = [], 0, iter(range(len(bodies)))

    async def user():
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        for i in cursor:
            head = (f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(bodies[i])}\r\n\r\n").encode()
            started = time.perf_counter()
            writer.write(head + bodies[i])
            status = int((await reader.readline()).split()[1])
            size = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    size = int(line.split(b":")[1])
            await reader.readexactly(size)
            latencies.append(time.perf_counter() - started)
            errors += status != 200
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": len(bodies), "errors": errors, "seconds": wall, "requests_per_s": len(bodies) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99))}


CORES = os.cpu_count() or 1
LOADS = {  # name: (package, revsent serve options)
    "torch, batching on": ("torch", ["--max-batch", "64", "--max-wait-ms", "2"]),
    "torch, batching off": ("torch", ["--max-batch", "1"]),
    "onnx int8, batching on": ("onnx int8", ["--max-batch", "64", "--max-wait-ms", "2", "--backend", "onnx"]),
    # one process per core, one thread each: while one computes, the other reads and answers requests
    f"torch, batching on, {CORES} workers x 1 thread": ("torch", ["--workers", str(CORES), "--threads", "1"]),
    f"onnx int8, batching on, {CORES} workers x 1 thread": ("onnx int8", ["--workers", str(CORES), "--threads", "1",
                                                                         "--backend", "onnx"]),
}


def load_test(model: Path, texts: list[str], singles: int, batches: int, extra: list[str]) -> dict:
    proc, url = start_server(model, *extra)
    try:
        body = lambda obj: json.dumps(obj).encode()  # noqa: E731
        asyncio.run(_load(url, [body({"text": t}) for t in texts[:64]], 8))  # warm-up
        one = asyncio.run(_load(url, [body({"text": texts[i % len(texts)]}) for i in range(singles)], 32))
        many = asyncio.run(_load(url, [body({"texts": [texts[(32 * i + j) % len(texts)] for j in range(32)]})
                                       for i in range(batches)], 32))
    finally:
        proc.terminate()
        proc.wait(30)
    many["reviews_per_s"] = many["requests_per_s"] * 32
    return {"single": one, "batch32": many}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few requests, for CI")
    parser.add_argument("--out", default=str(HERE / "out"))
    parser.add_argument("--results", default=None)
    parser.add_argument("--worker", nargs=3, metavar=("BACKEND", "MODEL", "TEST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return batch_worker(*args.worker)
    out = Path(args.out)
    test = out / "imdb_test.jsonl"
    texts = [json.loads(line)["text"] for line in open(test, encoding="utf-8")]
    singles, batches = (200, 10) if args.quick else (10_000, 300)
    if args.quick:  # the harness, not the figures: a few hundred reviews
        texts = texts[:200]
        test = out / "imdb_test_quick.jsonl"
        test.write_text("".join(json.dumps({"text": t, "label": r["label"]}) + "\n" for t, r in zip(
            texts, map(json.loads, open(out / "imdb_test.jsonl", encoding="utf-8")))), encoding="utf-8")
    results = {}
    for preset in ("seed",) if args.quick else ("seed", "default"):  # quick: the harness, within CI's time
        model = out / "models" / f"imdb_{preset}_36"
        packages = {"onnx fp32": out / "export" / f"{preset}_fp32", "onnx int8": out / "export" / f"{preset}_int8"}
        for name, package in packages.items():
            shutil.rmtree(package, ignore_errors=True)
            subprocess.run([REVSENT, "export", str(model), "--out", str(package)] + (["--int8"] if "int8" in name else []),
                           check=True, capture_output=True)
        row = {"torch fp32": batch_speed("torch", model, test)}
        for name, package in packages.items():
            row[name] = batch_speed("onnx", package, test)
        for name in packages:
            a, b = row["torch fp32"]["labels"], row[name]["labels"]
            row[name]["label_agreement"] = sum(x == y for x, y in zip(a, b)) / len(a)
        runs = 1 if args.quick else 5
        row["startup"] = {"torch": startup(model, "torch", runs), "onnx": startup(packages["onnx fp32"], "onnx", runs)}
        packages["torch"] = model
        row["load"] = {name: load_test(packages[package], texts, singles, batches, extra)
                       for name, (package, extra) in LOADS.items()}
        for part in row.values():
            part.pop("labels", None)
        results[preset] = row
        print(json.dumps({preset: row}), file=sys.stderr, flush=True)
    (out / "serving.json").write_text(json.dumps(results, indent=2))
    report = render(results, len(texts), singles, batches)
    print(report)
    target = Path(args.results) if args.results else HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    write_block(target, report, "make bench-serve")


def render(results: dict, n_test: int, singles: int, batches: int) -> str:
    lines = [f"Measured {time.strftime('%Y-%m-%d')} by `python bench/serving.py` ({os.cpu_count()} cores); "
             f"IMDB held-out reviews ({n_test}).", "",
             "| model | backend | reviews/s | × torch | test accuracy | labels as torch | `predict` start-up |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for preset, row in results.items():
        base = row["torch fp32"]["per_s"]
        for name in ("torch fp32", "onnx fp32", "onnx int8"):
            r = row[name]
            start = row["startup"]["torch" if name == "torch fp32" else "onnx"] if name != "onnx int8" else None
            lines.append(f"| {preset} | {name} | {r['per_s']:.0f} | {r['per_s'] / base:.2f} | {100 * r['accuracy']:.2f}% | "
                         f"{100 * r.get('label_agreement', 1):.2f}% | {'—' if start is None else f'{start:.2f} s'} |")
    lines += ["", f"Load test of `revsent serve` on 127.0.0.1, 32 concurrent clients: {singles} single-review "
              f"requests (the held-out reviews in turn), then {batches} requests of 32 reviews. HTTP / in-process: "
              "single-review requests/s over the batch reviews/s of the same backend above.", "",
              "| model | server | single: req/s | p50 ms | p95 ms | p99 ms | errors | HTTP / in-process | "
              "32-review: reviews/s | p99 ms | errors |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for preset, row in results.items():
        for name, load in row["load"].items():
            one, many = load["single"], load["batch32"]
            in_process = row["onnx int8" if name.startswith("onnx") else "torch fp32"]["per_s"]
            lines.append(f"| {preset} | {name} | {one['requests_per_s']:.0f} | {one['p50_ms']:.1f} | {one['p95_ms']:.1f} | "
                         f"{one['p99_ms']:.1f} | {one['errors']} | {one['requests_per_s'] / in_process:.2f} | "
                         f"{many['reviews_per_s']:.0f} | {many['p99_ms']:.1f} | {many['errors']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
