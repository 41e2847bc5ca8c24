"""revsent's default preset against TF-IDF + LR on a few labelled reviews, side by side.

    python bench/small.py [--quick] [--sizes 1000,3000] [--seeds 36,37,38] [--datasets imdb,rt]

For each dataset, size N and seed: N training reviews drawn (by the seed) from the bundled
sample's training split (80/20, seed 36), the validation slice (10%) carved from them as revsent
carves it, and the test split scored once (IMDB: 5,000 of its reviews). revsent's whole
``train`` command (process start to exit) runs beside ``tfidf_lr.py`` (scikit-learn's TF-IDF
1-2 grams + LR, C chosen on the same validation slice; fit and predict, process start to exit).
Prints one JSON line per run and a markdown table of test accuracy, time, the time ratio, model
size on disk and ECE; ``--results`` replaces that table's block in a markdown file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench import HERE, VAL_FRACTION, run, write_block, write_parts

TEST_ROWS = 5000


def prepare(name: str, size: int, seed: int, out: Path) -> dict[str, Path]:
    """``train`` (N reviews), its ``fit`` and ``val`` parts (revsent's slice at this seed) and ``test``."""
    from revsent.config import Config
    from revsent.data import read_labelled, split
    from revsent.data.splits import validation_mask

    data = read_labelled(Config.from_preset("seed", paths=(name,)))
    train_idx, test_idx = split(len(data.texts), 0.2, 36)
    train_idx = np.sort(np.random.default_rng(seed).choice(train_idx, size=min(size, len(train_idx)), replace=False))
    in_val = validation_mask(len(train_idx), VAL_FRACTION, seed).astype(bool)
    parts = {"train": train_idx, "fit": train_idx[~in_val], "val": train_idx[in_val], "test": test_idx[:TEST_ROWS]}
    return write_parts(data, parts, out, f"{name}_{size}_{seed}")


def disk_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and f.suffix in (".safetensors", ".json")) / 1e6


def one(name: str, size: int, seed: int, out: Path, extra: list[str]) -> dict:
    (out / "models").mkdir(parents=True, exist_ok=True)
    paths = prepare(name, size, seed, out)
    model = out / "models" / f"{name}_{size}_{seed}"
    revsent = run([str(Path(sys.executable).parent / "revsent"), "train", str(paths["train"]), "--test-data",
                   str(paths["test"]), "--val-fraction", str(VAL_FRACTION), "--seed", str(seed), "--out", str(model),
                   "--force", "--quiet", *extra])
    baseline = run([sys.executable, str(HERE / "tfidf_lr.py"), str(paths["fit"]), str(paths["val"]), str(paths["test"])])
    row = {"dataset": name, "size": size, "seed": seed, "tfidf_accuracy": baseline.get("accuracy"),
           "tfidf_seconds": baseline.get("wall_seconds"), "tfidf_C": baseline.get("C"),
           "revsent_seconds": revsent.get("wall_seconds"), "error": revsent.get("error")}
    if "error" not in revsent:
        metrics = json.loads((model / "metrics.json").read_text())
        row.update(revsent_accuracy=metrics["accuracy"], train_seconds=metrics["train_seconds"],
                   model_mb=disk_mb(model), ece=metrics.get("ece"),
                   ratio=revsent["wall_seconds"] / baseline["wall_seconds"] if baseline.get("wall_seconds") else None)
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> list[str]:
    lines = ["| data | N | seeds | revsent test acc | TF-IDF + LR test acc | revsent − LR | revsent command s | "
             "LR command s | ratio | model MB | ECE |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["size"]), []).append(row)
    for (name, size), group in groups.items():
        ok = [r for r in group if r.get("revsent_accuracy") is not None and r.get("tfidf_accuracy") is not None]
        if not ok:
            lines.append(f"| {name} | {size} | – | error: {group[0].get('error')} | | | | | | | |")
            continue
        mean = lambda key: float(np.mean([r[key] for r in ok if r.get(key) is not None] or [np.nan]))  # noqa: E731
        gaps = [r["revsent_accuracy"] - r["tfidf_accuracy"] for r in ok]
        lines.append(f"| {name} | {size} | {','.join(str(r['seed']) for r in ok)} | {mean('revsent_accuracy'):.2%} | "
                     f"{mean('tfidf_accuracy'):.2%} | {np.mean(gaps) * 100:+.2f} (min {min(gaps) * 100:+.2f}) | "
                     f"{mean('revsent_seconds'):.1f} | {mean('tfidf_seconds'):.1f} | {mean('ratio'):.1f}x | "
                     f"{mean('model_mb'):.2f} | {mean('ece'):.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one size, one seed, IMDB only (CI)")
    parser.add_argument("--sizes", default="1000,3000")
    parser.add_argument("--seeds", default="36,37,38")
    parser.add_argument("--datasets", default="imdb,rt")
    parser.add_argument("--out", default=str(HERE / "out" / "small"))
    parser.add_argument("--results", default=None, help="markdown file whose 'make bench-small' block to replace (with --quick, bench/RESULTS.md means bench/RESULTS-quick.md)")
    parser.add_argument("extra", nargs="*", help="more `revsent train` options, after --")
    args = parser.parse_args()
    out = Path(args.out)
    (out / "models").mkdir(parents=True, exist_ok=True)
    sizes, seeds, datasets = args.sizes, args.seeds, args.datasets
    if args.quick:
        sizes, seeds, datasets = "1000", "36", "imdb"
    rows = [one(name, int(size), int(seed), out, args.extra) for name in datasets.split(",")
            for size in sizes.split(",") for seed in seeds.split(",")]
    text = "\n".join(["## `make bench-small`", "", f"Command: `python bench/small.py --sizes {sizes} --seeds {seeds} "
                      f"--datasets {datasets}`.", "", *table(rows), ""])
    print(text)
    if args.results:
        target = Path(args.results)
        if args.quick and target.resolve() == (HERE / "RESULTS.md").resolve():
            target = HERE / "RESULTS-quick.md"  # one quick run never replaces the full run's table
        write_block(target, text, name="make bench-small")
        print(f"written to {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
