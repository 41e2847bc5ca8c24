"""Write bench/out/four_classes.jsonl: a four-class task of long and short reviews mixed.

The bundled samples have no star ratings, so 3- or 5-star labels cannot be read from them. This
builds another multi-class task from them instead: the 8,530 Rotten Tomatoes sentences and as many
IMDB reviews drawn at random (seed 36), labelled long-/short- negative/positive, in random order
(seed 37). Then: ``revsent train bench/out/four_classes.jsonl --baseline --seed 36``.
"""
import csv
import json
import random
from pathlib import Path

from revsent.data.sample import csv_path

OUT = Path(__file__).resolve().parent / "out" / "four_classes.jsonl"


def main() -> None:
    with open(csv_path(), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    imdb = [row for row in rows if row["source"] == "imdb"]
    rt = [row for row in rows if row["source"] == "rotten_tomatoes"]
    random.Random(36).shuffle(imdb)
    records = [{"text": row["text"], "label": f"{'long' if row['source'] == 'imdb' else 'short'}-"
                f"{'positive' if row['label'] == '1' else 'negative'}"} for row in imdb[:len(rt)] + rt]
    random.Random(37).shuffle(records)
    OUT.parent.mkdir(exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(record) + "\n" for record in records)
    print(f"{len(records)} records written to {OUT}")


if __name__ == "__main__":
    main()
