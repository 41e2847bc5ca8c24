"""`make bench-pretrain-memory`: the memory `revsent pretrain` needs, against the number of reviews.

    python bench/pretrain_memory.py [--sizes 100000,1000000] [--minutes 1] [--quick] [--results bench/RESULTS.md]

For each N, a Yelp-format corpus of N reviews (bench/scale.py's: the bundled IMDB text with Yelp's
length profile), then ``revsent pretrain review.json --epochs 1`` as its own process, stopped
(Ctrl-C) once it has written its first timed checkpoint, ``--minutes`` into training. By then all
that grows with N has been built: the texts prepared (vocabulary, memory-mapped token ids), the
training and held-out token streams, the training reviews' fingerprints and the epoch's window
order. Training itself holds a batch of windows, whatever N; the epoch's end adds perplexity on at
most ``heldout_tokens`` tokens and the model's files. Peak RSS as bench/scale.py measures it: the
largest process (the kernel's accounting) and the whole process tree (prepare's workers too).
``--quick`` (CI): 2,000 and 10,000 reviews, a few seconds of training.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from scale import REVSENT, measure, write_corpus

HERE = Path(__file__).resolve().parent


def pretrain_row(n: int, work: Path, minutes: float) -> dict:
    """One N: the corpus (written in a child process, so its word pools are not in this one) and
    the measured pretrain, stopped after its first timed checkpoint."""
    subprocess.run([sys.executable, str(HERE / "scale.py"), "--write-corpus", str(n), "--work", str(work)], check=True)
    review, out = work / f"corpus-{n}" / "review.json", work / f"lm-{n}"
    checkpoint = out / "checkpoint.safetensors"
    checkpoint.unlink(missing_ok=True)
    row = measure([REVSENT, "pretrain", str(review), "--epochs", "1", "--checkpoint-minutes", str(minutes),
                   "--out", str(out), "--force", "--quiet"], work / f"pretrain-{n}.log", until=checkpoint.exists)
    if row["stopped"]:  # the prepared texts are kept for a resume: their manifest has the counts
        manifest = json.loads((out / ".dataset" / "manifest.json").read_text())
        tokens, vocabulary = manifest["n_tokens"], manifest["tokenizer"]["vocab_size"]
    else:  # the epoch ended before the checkpoint was due
        metrics = json.loads((out / "metrics.json").read_text())
        tokens = metrics["texts"]["tokens"] + metrics["texts"]["heldout_tokens"]
        vocabulary = json.loads((out / "config.json").read_text())["model"]["vocab_size"]
    return {"n": n, "input_mb": round(review.stat().st_size / 1e6), "tokens": tokens, "vocabulary": vocabulary, **row}


def render(rows: list[dict], args) -> str:
    import torch

    first = rows[0]
    lines = ["## `make bench-pretrain-memory`", "",
             f"Date: {time.strftime('%Y-%m-%d')}. Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
             f"Python {platform.python_version()}, torch {torch.__version__}. Command: `python bench/pretrain_memory.py "
             f"--sizes {args.sizes} --minutes {args.minutes}`" + (" (--quick)" if args.quick else "") + ".", "",
             "`revsent pretrain review.json --epochs 1` on Yelp-format corpora of N reviews, stopped after its first "
             f"timed checkpoint ({args.minutes} min of training): by then everything that grows with N is built. "
             "Peak RSS: the largest process; tree: all of the command's processes (prepare's workers). RSS counts "
             "the pages of the memory-mapped token files the run has read, which grow with N; they are file-backed, "
             "and the kernel drops them under memory pressure. Tree anon is the memory the run allocates itself: "
             "what must stay flat.", "",
             "| N | input MB | tokens | vocabulary | whole command s | stopped | peak RSS MB | tree RSS MB | "
             "tree anon MB | anon vs smallest N |",
             "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['n']:,} | {row['input_mb']:,} | {row['tokens']:,} | {row['vocabulary']:,} | "
                     f"{row['seconds']} | {'yes' if row['stopped'] else 'no: the epoch ended first'} | "
                     f"{row['peak_rss_mb']:,} | {row['peak_tree_rss_mb']:,} | {row['peak_anon_mb']:,} | "
                     f"{row['peak_anon_mb'] / first['peak_anon_mb']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--minutes", type=float, default=1.0, help="training before the checkpoint that stops it")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    parser.add_argument("--work", default=str(HERE / "out" / "scale"), help="corpora shared with bench/scale.py")
    parser.add_argument("--results", default=None, help="markdown file whose 'make bench-pretrain-memory' block "
                        "to replace (never with --quick)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.minutes = "2000,10000", 0.05
    work = Path(args.work) / ("quick" if args.quick else "")
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        rows.append(pretrain_row(n, work, args.minutes))
        print(json.dumps(rows[-1]), flush=True)
    text = render(rows, args)
    print(text)
    if args.results and not args.quick:
        from bench import write_block  # bench/bench.py, beside this script

        write_block(Path(args.results), text, "make bench-pretrain-memory")
        print(f"written to {args.results}", file=sys.stderr)


if __name__ == "__main__":
    main()
