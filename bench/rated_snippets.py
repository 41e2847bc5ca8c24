"""3- and 5-class labels on real review text: revsent's default against TF-IDF + LR.

    python bench/rated_snippets.py [--seeds 36 37 38] [--tasks movie-5 amazon-3 ...] [--quick]

The bundled samples carry binary labels only. The source distribution of the PyPI package
`vaderSentiment` (3.3.2, MIT licence) ships the human ratings of Hutto & Gilbert (ICWSM 2014):
sentence-level snippets, each rated by at least 20 people from -4 (most negative) to +4, the file
giving their mean. Two sets are reviews: 10,605 movie-review snippets (Pang & Lee's Rotten
Tomatoes sentences) and 3,708 Amazon product-review snippets (Hu & Liu 2004: five products).
The mean rating is binned into five classes (below -2, -2 to -0.5, -0.5 to 0.5, 0.5 to 2, above 2:
very negative .. very positive, as SST-5 bins its scores) and into three (below -0.5, -0.5 to 0.5,
above 0.5). pip fetches the package from the registry once (into bench/out); nothing else is
downloaded.

Each task is written as JSON lines and trained with the default preset and `--baseline` (TF-IDF
1-2 grams + logistic regression on the same training rows, its C chosen on the same validation
slice), per seed: the tutorial's 80/20 split at seed 36, a 10% validation slice of the 80% that
depends on the seed, the test part scored once. Prints a Markdown table of test accuracy and
macro F1.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out" / "rated"
PACKAGE = "vaderSentiment==3.3.2"
SOURCES = {"movie": "movieReviewSnippets_GroundTruth.txt", "amazon": "amazonReviewSnippets_GroundTruth.txt"}
FIVE = ("very negative", "negative", "neutral", "positive", "very positive")


def five(rating: float) -> str:
    return FIVE[0 if rating < -2 else 1 if rating < -0.5 else 2 if rating <= 0.5 else 3 if rating <= 2 else 4]


def three(rating: float) -> str:
    return "negative" if rating < -0.5 else "neutral" if rating <= 0.5 else "positive"


def fetch() -> tarfile.TarFile:
    """The package's source distribution (pip download, once) and the ratings archive inside it."""
    OUT.mkdir(parents=True, exist_ok=True)
    found = sorted(OUT.glob("vaderSentiment-*.tar.gz"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        "--dest", str(OUT), PACKAGE], check=True)
        found = sorted(OUT.glob("vaderSentiment-*.tar.gz"))
    outer = tarfile.open(found[-1])
    inner = next(m for m in outer.getmembers() if m.name.endswith("hutto_ICWSM_2014.tar.gz"))
    return tarfile.open(fileobj=outer.extractfile(inner))


def prepare() -> dict[str, Path]:
    """Write ``{movie,amazon}-{3,5}.jsonl``: the snippets in the file's order, one label per task."""
    ratings = fetch()
    paths = {}
    for source, name in SOURCES.items():
        member = next(m for m in ratings.getmembers() if m.name.endswith(name))
        rows = []
        for number, line in enumerate(ratings.extractfile(member).read().decode("utf-8-sig").splitlines(), 1):
            parts = line.split("\t")
            if len(parts) != 3:
                raise SystemExit(f"{name}:{number}: expected ID, rating and text separated by tabs")
            rows.append((float(parts[1]), parts[2]))
        for classes, bin_ in ((3, three), (5, five)):
            path = OUT / f"{source}-{classes}.jsonl"
            labels = [bin_(rating) for rating, _ in rows]
            path.write_text("".join(json.dumps({"text": text, "label": label}) + "\n"
                                    for (_, text), label in zip(rows, labels)), encoding="utf-8")
            print(f"{path}: {len(labels)} snippets, "
                  + ", ".join(f"{label} {labels.count(label)}" for label in sorted(set(labels))))
            paths[f"{source}-{classes}"] = path
    return paths


def train(task: str, path: Path, seed: int) -> dict:
    out = OUT / "models" / f"{task}_{seed}"
    subprocess.run([sys.executable, "-m", "revsent", "train", str(path), "--baseline", "--seed", str(seed),
                    "--out", str(out), "--force", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[36, 37, 38])
    parser.add_argument("--tasks", nargs="+", default=["movie-5", "movie-3", "amazon-5", "amazon-3"])
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--quick", action="store_true", help="one seed, the Amazon tasks only (CI runs this)")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.tasks = args.seeds[:1], [task for task in args.tasks if task.startswith("amazon")]
    paths = prepare()
    if args.prepare_only:
        return
    print("| task | seed | revsent default: **test** acc. / macro F1 | TF-IDF + LR: **test** acc. / macro F1 (C) "
          "| revsent validation loss / acc. | whole command s |")
    print("|---|---:|---|---|---|---:|")
    for task in args.tasks:
        ours, theirs = [], []
        for seed in args.seeds:
            m = train(task, paths[task], seed)
            b = m["baseline_tfidf_lr"]
            ours.append(m["accuracy"])
            theirs.append(b["accuracy"])
            print(f"| {task} | {seed} | {m['accuracy']:.2%} / {m['f1_macro']:.2%} | {b['accuracy']:.2%} / "
                  f"{b['f1_macro']:.2%} (C {b.get('C', '?')}) | {m['validation']['loss']:.4f} / "
                  f"{m['validation']['accuracy']:.2%} | {m['total_seconds']:.1f} |", flush=True)
        sd = statistics.stdev(ours) if len(ours) > 1 else 0.0
        print(f"| {task} | mean | **{statistics.mean(ours):.2%} ± {sd * 100:.2f}** | {statistics.mean(theirs):.2%} | | |",
              flush=True)


if __name__ == "__main__":
    main()
