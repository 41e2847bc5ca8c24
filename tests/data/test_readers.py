"""revsent.data: Yelp files (current and older releases, gzip, the tar), JSON lines, CSV, TSV,
Parquet; label schemes; the category join; bad records; read_labelled and the split."""
from __future__ import annotations

import csv
import gzip
import io
import json
import re
import tarfile
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.model_selection import train_test_split

from revsent.config import Config, DataConfig
from revsent.data import RecordReader, read_labelled, split
from revsent.data.records import describe_counts, describe_labels
from revsent.errors import DataError

# --- writers: every test file is written by the tests --------------------------------------------

# Current releases: review_id, float stars, flat votes.
CURRENT = [
    {"review_id": "KU_O5udG6zpxOg-VcAEodg", "user_id": "u1", "business_id": "b_rest", "stars": 3.0,
     "useful": 0, "funny": 0, "cool": 0, "text": "If you decide to eat here, be aware.", "date": "2018-07-07 22:09:11"},
    {"review_id": "BiTunyQ73aT9WBnpR9DZGw", "user_id": "u2", "business_id": "b_shop", "stars": 5.0,
     "useful": 1, "funny": 0, "cool": 1, "text": "I've taken a lot of spin classes.\nLove it!", "date": "2012-01-03 15:28:18"},
    {"review_id": "saUsX_uimxRlCVr67Z4Jig", "user_id": "u3", "business_id": "b_rest", "stars": 1.0,
     "useful": 0, "funny": 0, "cool": 0, "text": "Cold food 😞, rude staff.", "date": "2014-02-05 20:30:30"},
    {"review_id": "AqPFMleE6RsU23_auESxiA", "user_id": "u4", "business_id": "b_bar", "stars": 4.0,
     "useful": 1, "funny": 0, "cool": 1, "text": "Wow!  Yummy, different,  delicious.", "date": "2015-01-04 00:01:03"},
    {"review_id": "Sx8TMOWLNuJBWer-0pcmoA", "user_id": "u5", "business_id": "b_nocat", "stars": 2.0,
     "useful": 1, "funny": 0, "cool": 1, "text": "Très décevant. Не рекомендую.", "date": "2017-01-14 20:54:15"},
]
CURRENT_TEXTS = [r["text"] for r in CURRENT]
CURRENT_IDS = [r["review_id"] for r in CURRENT]
CURRENT_STARS = ["3", "5", "1", "4", "2"]

# The Dataset Challenge era: "type", nested votes, int stars, no review_id, short dates.
OLD = [
    {"votes": {"funny": 0, "useful": 5, "cool": 2}, "user_id": "rLtl8ZkDX5vH5nAx9C3q5Q", "stars": 5,
     "date": "2011-01-26", "text": "My wife took me here on my birthday for breakfast.", "type": "review",
     "business_id": "9yKzy9PApeiPPOUJEtnvkg"},
    {"votes": {"funny": 0, "useful": 0, "cool": 0}, "user_id": "0a2KyEL0d3Yb1V6aivbIuQ", "stars": 3,
     "date": "2011-07-27", "text": "Okay food, nothing special.", "type": "review",
     "business_id": "ZRJwVLyzEJq1VAihDhYiow"},
    {"votes": {"funny": 1, "useful": 2, "cool": 0}, "user_id": "uZetl9T0NcROGOyFfughhg", "stars": 2,
     "date": "2011-04-19", "text": "Meh.", "type": "review", "business_id": "6oRAC4uyJCsJl1X0WZpVSA"},
]

BUSINESSES = [
    # current releases: one comma-separated string
    {"business_id": "b_rest", "name": "Turning Point", "stars": 3.0, "attributes": None, "hours": None,
     "categories": "Restaurants, Breakfast & Brunch, Food"},
    {"business_id": "b_shop", "name": "Spin City", "stars": 4.5, "attributes": {"x": "True"},
     "categories": "Active Life, Fitness & Instruction"},
    # older releases: a JSON list
    {"business_id": "b_bar", "name": "The Bar", "stars": 4.0, "categories": ["Nightlife", "Bars", "Restaurants"]},
    # no categories at all
    {"business_id": "b_nocat", "name": "Nowhere", "stars": 2.0, "categories": None},
]


def jsonl_bytes(rows) -> bytes:
    return b"".join(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n" for row in rows)


def write_bytes(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def write_jsonl(path, rows) -> str:
    return write_bytes(path, jsonl_bytes(rows))


def write_lines(path, lines: list[bytes]) -> str:
    return write_bytes(path, b"\n".join(lines) + b"\n")


def write_delimited(path, header, rows, delimiter=",") -> str:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def write_tar(path, members: dict[str, bytes], mode="w") -> str:
    with tarfile.open(path, mode) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def yelp_tar(tmp_path, reviews=CURRENT, name="yelp_dataset.tar", review_member="yelp_academic_dataset_review.json"):
    return write_tar(tmp_path / name, {
        "Dataset_User_Agreement.pdf": b"%PDF-1.4 not really",
        "yelp_academic_dataset_business.json": jsonl_bytes(BUSINESSES),
        "yelp_academic_dataset_checkin.json": b'{"business_id": "b_rest", "date": "2016-04-26 19:49:16"}\n',
        review_member: jsonl_bytes(reviews) if not review_member.endswith(".gz") else gzip.compress(jsonl_bytes(reviews)),
        "yelp_academic_dataset_user.json": b'{"user_id": "u1", "name": "Walker"}\n',
    })


def read(**kwargs):
    """All records and the reader (for its tally and classes)."""
    reader = RecordReader(DataConfig(**kwargs))
    records = list(reader)
    return records, reader


def texts(records):
    return [r.text for r in records]


def labels(records):
    return [r.label for r in records]


# --- Yelp review files ---------------------------------------------------------------------------

def test_current_yelp_reviews_binary_labels_ids_and_text_kept_verbatim(tmp_path):
    path = write_jsonl(tmp_path / "yelp_academic_dataset_review.json", CURRENT)
    records, reader = read(paths=(path,))
    assert texts(records) == CURRENT_TEXTS  # newlines, emoji, double spaces, Cyrillic untouched
    assert labels(records) == ["negative", "positive", "negative", "positive", "negative"]  # 3.0 -> negative
    assert [r.id for r in records] == CURRENT_IDS
    assert reader.star_scheme == "binary"
    assert reader.classes(set(labels(records))) == ["negative", "positive"]
    assert (reader.tally.read, reader.tally.kept) == (5, 5)
    assert reader.tally.skipped == Counter() and reader.tally.filtered == Counter()


def test_older_yelp_generation_int_stars_nested_votes_no_review_id(tmp_path):
    path = write_jsonl(tmp_path / "yelp_academic_dataset_review.json", OLD)
    records, reader = read(paths=(path,), labels="stars")
    assert texts(records) == [r["text"] for r in OLD]
    assert labels(records) == ["5", "3", "2"]
    assert [r.id for r in records] == [None, None, None]
    records, _ = read(paths=(path,))
    assert labels(records) == ["positive", "negative", "negative"]


def test_both_generations_in_one_run(tmp_path):
    new = write_jsonl(tmp_path / "new.json", CURRENT)
    old = write_jsonl(tmp_path / "old.json", OLD)
    records, reader = read(paths=(new, old), labels="stars")
    assert labels(records) == CURRENT_STARS + ["5", "3", "2"]
    assert [r.id for r in records] == CURRENT_IDS + [None, None, None]
    assert (reader.tally.read, reader.tally.kept) == (8, 8)


@pytest.mark.filterwarnings("error::ResourceWarning", "error::pytest.PytestUnraisableExceptionWarning")
def test_gzipped_json_lines_closes_its_file(tmp_path):
    path = write_bytes(tmp_path / "yelp_academic_dataset_review.json.gz", gzip.compress(jsonl_bytes(CURRENT)))
    records, _ = read(paths=(path,), labels="stars")
    assert texts(records) == CURRENT_TEXTS
    assert labels(records) == CURRENT_STARS


def test_yelp_tar_read_by_pointing_at_the_archive(tmp_path):
    path = yelp_tar(tmp_path)
    records, reader = read(paths=(path,), labels="stars")
    assert texts(records) == CURRENT_TEXTS  # the review file, not business.json or user.json
    assert labels(records) == CURRENT_STARS
    assert [r.id for r in records] == CURRENT_IDS


def test_yelp_tar_in_a_folder_and_gzip_compressed_tar(tmp_path):
    nested = write_tar(tmp_path / "yelp.tar", {
        "Yelp JSON/yelp_dataset/yelp_academic_dataset_business.json": jsonl_bytes(BUSINESSES),
        "Yelp JSON/yelp_dataset/yelp_academic_dataset_review.json": jsonl_bytes(OLD),
    })
    assert labels(read(paths=(nested,), labels="stars")[0]) == ["5", "3", "2"]
    compressed = write_tar(tmp_path / "yelp.tar.gz", {"yelp_academic_dataset_review.json": jsonl_bytes(OLD)}, mode="w:gz")
    assert labels(read(paths=(compressed,), labels="stars")[0]) == ["5", "3", "2"]


def test_yelp_tar_holding_a_gzipped_review_file(tmp_path):
    path = yelp_tar(tmp_path, review_member="yelp_academic_dataset_review.json.gz")
    records, _ = read(paths=(path,), labels="stars")
    assert texts(records) == CURRENT_TEXTS
    assert labels(records) == CURRENT_STARS


def test_tar_without_a_review_file_lists_what_it_holds(tmp_path):
    path = write_tar(tmp_path / "other.tar", {"readme.txt": b"hello", "photos.json": b"{}\n"})
    with pytest.raises(DataError, match=re.escape(f"{path}: no review file (*review*.json) inside the archive; it holds: readme.txt, photos.json")):
        read(paths=(path,))


# --- generic formats -----------------------------------------------------------------------------

def test_generic_json_lines_with_label_and_id(tmp_path):
    path = write_jsonl(tmp_path / "data.jsonl", [
        {"id": 7, "text": "good", "label": "pos"},
        {"id": 8, "text": "bad", "label": "neg"},
        {"id": 9, "text": "fine", "label": "neutral"},
    ])
    records, reader = read(paths=(path,))
    assert labels(records) == ["pos", "neg", "neutral"]
    assert [r.id for r in records] == ["7", "8", "9"]  # ids are strings
    assert reader.star_scheme is None
    assert reader.classes({"pos", "neg", "neutral"}) == ["neg", "neutral", "pos"]


def test_integer_labels_are_strings_ordered_numerically(tmp_path):
    path = write_jsonl(tmp_path / "data.ndjson", [
        {"text": "a", "label": 10}, {"text": "b", "label": 2.0}, {"text": "c", "label": " 1 "},
    ])
    records, reader = read(paths=(path,))
    assert labels(records) == ["10", "2", "1"]
    assert reader.classes(set(labels(records))) == ["1", "2", "10"]  # not "1", "10", "2"


def test_csv_with_header_quoted_commas_and_newlines(tmp_path):
    path = write_delimited(tmp_path / "reviews.csv", ["review_id", "text", "stars"], [
        ["r1", "Great, really great", "5"],
        ["r2", "Two lines\nof text", "2"],
        ["r3", 'He said "ok"', "3"],
    ])
    records, _ = read(paths=(path,))
    assert texts(records) == ["Great, really great", "Two lines\nof text", 'He said "ok"']
    assert labels(records) == ["positive", "negative", "negative"]
    assert [r.id for r in records] == ["r1", "r2", "r3"]


def test_csv_with_bom_and_padded_header(tmp_path):
    path = write_bytes(tmp_path / "excel.csv", "\ufefftext , label\nnice,1\nawful,0\n".encode("utf-8"))
    records, _ = read(paths=(path,))
    assert texts(records) == ["nice", "awful"]
    assert labels(records) == ["1", "0"]


def test_tsv_with_header(tmp_path):
    path = write_delimited(tmp_path / "reviews.tsv", ["text", "label"], [
        ["commas, inside, tsv", "positive"], ["tab-free text", "negative"],
    ], delimiter="\t")
    records, _ = read(paths=(path,))
    assert texts(records) == ["commas, inside, tsv", "tab-free text"]
    assert labels(records) == ["positive", "negative"]


def test_parquet(tmp_path):
    path = str(tmp_path / "reviews.parquet")
    pq.write_table(pa.table({
        "review_id": ["p1", "p2", "p3"],
        "text": ["Lovely place", "Never again", "Okay"],
        "stars": [5.0, 1.0, 3.0],
    }), path)
    records, reader = read(paths=(path,), labels="polarity")
    assert texts(records) == ["Lovely place", "Never again"]
    assert labels(records) == ["positive", "negative"]
    assert [r.id for r in records] == ["p1", "p2"]
    assert reader.tally.filtered == Counter({"neutral_3_stars": 1})


def test_parquet_null_text_is_a_bad_record_with_its_row(tmp_path):
    path = str(tmp_path / "reviews.parquet")
    pq.write_table(pa.table({"text": ["fine", None, "good"], "label": ["a", "b", "a"]}), path)
    with pytest.raises(DataError, match=re.escape(f"{path}:2: missing text field 'text'")):
        read(paths=(path,))
    records, reader = read(paths=(path,), skip_bad=True)
    assert texts(records) == ["fine", "good"]
    assert reader.tally.skipped == Counter({"missing_text": 1})


def test_several_inputs_of_different_formats(tmp_path):
    jsonl = write_jsonl(tmp_path / "a.json", CURRENT[:2])
    table = write_delimited(tmp_path / "b.csv", ["text", "stars"], [["csv one", "4"], ["csv two", "1"]])
    gz = write_bytes(tmp_path / "c.json.gz", gzip.compress(jsonl_bytes(OLD[:1])))
    records, reader = read(paths=(jsonl, table, gz), labels="stars")
    assert texts(records) == CURRENT_TEXTS[:2] + ["csv one", "csv two", OLD[0]["text"]]
    assert labels(records) == ["3", "5", "4", "1", "5"]
    assert (reader.tally.read, reader.tally.kept) == (5, 5)


def test_inputs_with_labels_and_stars_cannot_be_mixed(tmp_path):
    stars = write_jsonl(tmp_path / "stars.json", CURRENT[:1])
    plain = write_jsonl(tmp_path / "plain.json", [{"text": "x", "label": "positive"}])
    with pytest.raises(DataError, match=re.escape(f"{plain}: its labels are read differently than those of {stars}")):
        read(paths=(stars, plain))


@pytest.mark.parametrize("name", ["reviews.dat", "reviews", "reviews.txt"])
def test_format_detected_from_content_for_json_lines(tmp_path, name):
    path = write_jsonl(tmp_path / name, CURRENT)
    assert labels(read(paths=(path,), labels="stars")[0]) == CURRENT_STARS


def test_format_detected_from_content_for_csv_tsv_parquet_gzip_and_tar(tmp_path):
    csv_path = write_delimited(tmp_path / "a.data", ["text", "stars"], [["one, two", "5"], ["three", "1"]])
    assert texts(read(paths=(csv_path,))[0]) == ["one, two", "three"]
    tsv_path = write_delimited(tmp_path / "b.data", ["text", "stars"], [["one, two, three", "5"]], delimiter="\t")
    assert texts(read(paths=(tsv_path,))[0]) == ["one, two, three"]
    pq_path = str(tmp_path / "c.data")
    pq.write_table(pa.table({"text": ["from parquet"], "stars": [4]}), pq_path)
    assert labels(read(paths=(pq_path,))[0]) == ["positive"]
    gz_path = write_bytes(tmp_path / "d.data", gzip.compress(jsonl_bytes(OLD)))
    assert labels(read(paths=(gz_path,), labels="stars")[0]) == ["5", "3", "2"]
    tar_path = yelp_tar(tmp_path, name="download.bin")
    assert texts(read(paths=(tar_path,))[0]) == CURRENT_TEXTS


def test_explicit_format_overrides_the_extension(tmp_path):
    path = write_delimited(tmp_path / "looks_like.json", ["text", "label"], [["x", "a"]])
    assert labels(read(paths=(path,), format="csv")[0]) == ["a"]
    with pytest.raises(DataError, match=re.escape(f"{path}:1: malformed JSON")):
        read(paths=(path,))


# --- label schemes and fields --------------------------------------------------------------------

STAR_ROWS = [{"text": f"{s} star review", "stars": s} for s in (1, 2, 3, 4, 5, 3.0, 4.0)]


def test_binary_scheme_three_stars_negative(tmp_path):
    records, reader = read(paths=(write_jsonl(tmp_path / "s.json", STAR_ROWS),), labels="binary")
    assert labels(records) == ["negative", "negative", "negative", "positive", "positive", "negative", "positive"]
    assert reader.classes({"positive"}) == ["negative", "positive"]


def test_polarity_scheme_drops_three_stars_and_counts_them(tmp_path):
    records, reader = read(paths=(write_jsonl(tmp_path / "s.json", STAR_ROWS),), labels="polarity")
    assert texts(records) == ["1 star review", "2 star review", "4 star review", "5 star review", "4.0 star review"]
    assert labels(records) == ["negative", "negative", "positive", "positive", "positive"]
    assert reader.tally.filtered == Counter({"neutral_3_stars": 2})
    assert reader.tally.skipped == Counter()
    assert (reader.tally.read, reader.tally.kept) == (7, 5)
    assert reader.classes(set(labels(records))) == ["negative", "positive"]


def test_stars_scheme_five_classes_in_star_order(tmp_path):
    records, reader = read(paths=(write_jsonl(tmp_path / "s.json", STAR_ROWS),), labels="stars")
    assert labels(records) == ["1", "2", "3", "4", "5", "3", "4"]
    assert reader.classes({"4", "1"}) == ["1", "2", "3", "4", "5"]  # fixed, whatever was seen


def test_stars_scheme_rejects_half_stars(tmp_path):
    path = write_jsonl(tmp_path / "s.json", [{"text": "a", "stars": 4}, {"text": "b", "stars": 3.5}])
    with pytest.raises(DataError, match=re.escape(f"{path}:2: star rating 3.5 is not a whole number of stars in field 'stars'")):
        read(paths=(path,), labels="stars")
    assert labels(read(paths=(path,), labels="binary")[0]) == ["positive", "positive"]


def test_label_field_is_preferred_to_stars_by_default(tmp_path):
    path = write_jsonl(tmp_path / "both.json", [{"text": "a", "stars": 5, "label": "meh"}, {"text": "b", "stars": 1, "label": "ok"}])
    records, reader = read(paths=(path,))
    assert labels(records) == ["meh", "ok"]
    assert reader.star_scheme is None
    records, reader = read(paths=(path,), stars_field="stars")
    assert labels(records) == ["positive", "negative"]
    assert reader.star_scheme == "binary"


def test_label_field_option_uses_values_as_they_are(tmp_path):
    path = write_jsonl(tmp_path / "l.json", [{"text": "a", "sentiment": "pos", "stars": 1.0}, {"text": "b", "sentiment": "neg", "stars": 5.0}])
    records, reader = read(paths=(path,), label_field="sentiment")
    assert labels(records) == ["pos", "neg"]
    records, _ = read(paths=(path,), label_field="stars")  # stars as plain labels: 1.0 -> "1"
    assert labels(records) == ["1", "5"]


def test_stars_field_option_with_a_scheme(tmp_path):
    path = write_delimited(tmp_path / "r.csv", ["body", "rating", "label"], [["a", "5", "x"], ["b", "3", "y"], ["c", "2", "z"]])
    records, reader = read(paths=(path,), text_field="body", stars_field="rating", labels="polarity")
    assert texts(records) == ["a", "c"]
    assert labels(records) == ["positive", "negative"]
    assert reader.tally.filtered == Counter({"neutral_3_stars": 1})


def test_id_field_option_and_default(tmp_path):
    path = write_jsonl(tmp_path / "y.json", CURRENT[:2])
    assert [r.id for r in read(paths=(path,))[0]] == CURRENT_IDS[:2]
    assert [r.id for r in read(paths=(path,), id_field="user_id")[0]] == ["u1", "u2"]
    with pytest.raises(DataError, match=re.escape(f"{path}: no id field 'uuid'; fields are: review_id, user_id, business_id")):
        read(paths=(path,), id_field="uuid")


def test_texts_only_when_labels_are_not_needed(tmp_path):
    path = write_jsonl(tmp_path / "unlabelled.json", [{"text": "a"}, {"text": "b"}])
    reader = RecordReader(DataConfig(paths=(path,)), need_labels=False)
    records = list(reader)
    assert texts(records) == ["a", "b"] and labels(records) == [None, None]


# --- limit ---------------------------------------------------------------------------------------

def test_limit_counts_kept_records_and_stops_reading(tmp_path):
    path = write_jsonl(tmp_path / "s.json", STAR_ROWS)
    records, reader = read(paths=(path,), labels="polarity", limit=3)
    assert texts(records) == ["1 star review", "2 star review", "4 star review"]
    assert (reader.tally.read, reader.tally.kept) == (4, 3)
    assert reader.tally.filtered == Counter({"neutral_3_stars": 1})
    # dropped and skipped records do not count towards the limit
    path = write_jsonl(tmp_path / "t.json", [{"text": "n1", "stars": 3}, {"text": "n2", "stars": 3}, {"stars": 1},
                                              {"text": "a", "stars": 1}, {"text": "b", "stars": 5}, {"text": "c", "stars": 4}])
    records, reader = read(paths=(path,), labels="polarity", limit=2, skip_bad=True)
    assert texts(records) == ["a", "b"]
    assert (reader.tally.read, reader.tally.kept) == (5, 2)


def test_limit_spans_several_files(tmp_path):
    a = write_jsonl(tmp_path / "a.json", STAR_ROWS[:2])
    b = write_jsonl(tmp_path / "b.json", STAR_ROWS[2:])
    records, reader = read(paths=(a, b), limit=3)
    assert texts(records) == ["1 star review", "2 star review", "3 star review"]
    assert reader.tally.kept == 3


# --- the category join ---------------------------------------------------------------------------

def test_category_with_business_file_string_list_and_null_categories(tmp_path):
    reviews = write_jsonl(tmp_path / "yelp_academic_dataset_review.json", CURRENT)
    business = write_jsonl(tmp_path / "yelp_academic_dataset_business.json", BUSINESSES)
    records, reader = read(paths=(reviews,), business=business, category="Restaurants")
    # b_rest (string form) twice and b_bar (list form); b_shop and b_nocat (null) left out
    assert [r.id for r in records] == [CURRENT_IDS[0], CURRENT_IDS[2], CURRENT_IDS[3]]
    assert labels(records) == ["negative", "negative", "positive"]
    assert reader.tally.filtered == Counter({"other_category": 2})
    assert (reader.tally.read, reader.tally.kept) == (5, 3)


def test_category_matching_ignores_case_and_surrounding_spaces(tmp_path):
    reviews = write_jsonl(tmp_path / "r.json", CURRENT)
    business = write_jsonl(tmp_path / "b.json", BUSINESSES)
    records, _ = read(paths=(reviews,), business=business, category="  breakfast & brunch ")
    assert [r.id for r in records] == [CURRENT_IDS[0], CURRENT_IDS[2]]
    records, _ = read(paths=(reviews,), business=business, category="bars")  # list form only
    assert [r.id for r in records] == [CURRENT_IDS[3]]


def test_category_through_the_tar(tmp_path):
    path = yelp_tar(tmp_path)
    records, reader = read(paths=(path,), category="Restaurants")
    assert [r.id for r in records] == [CURRENT_IDS[0], CURRENT_IDS[2], CURRENT_IDS[3]]
    assert reader.tally.filtered == Counter({"other_category": 2})
    # the tar also serves as --business for review files given apart
    reviews = write_jsonl(tmp_path / "reviews.json", CURRENT)
    records, _ = read(paths=(reviews,), business=path, category="Fitness & Instruction")
    assert [r.id for r in records] == [CURRENT_IDS[1]]


def test_category_nobody_is_in(tmp_path):
    reviews = write_jsonl(tmp_path / "r.json", CURRENT)
    business = write_jsonl(tmp_path / "b.json", BUSINESSES)
    with pytest.raises(DataError, match=re.escape(f"{business}: none of its 4 businesses is in the category 'Hotels'")):
        read(paths=(reviews,), business=business, category="Hotels")


def test_category_needs_business_id_in_reviews(tmp_path):
    reviews = write_jsonl(tmp_path / "r.json", [{"text": "x", "stars": 5}])
    business = write_jsonl(tmp_path / "b.json", BUSINESSES)
    with pytest.raises(DataError, match=re.escape(f"{reviews}: --category needs a 'business_id' field in the reviews")):
        read(paths=(reviews,), business=business, category="Restaurants")


def test_business_file_that_is_not_business_json(tmp_path):
    reviews = write_jsonl(tmp_path / "r.json", CURRENT)
    business = write_jsonl(tmp_path / "b.json", [{"name": "x"}])
    with pytest.raises(DataError, match=re.escape(f"{business}:1: no 'business_id' field; is this Yelp's business.json? fields are: name")):
        read(paths=(reviews,), business=business, category="Restaurants")


# --- bad records ---------------------------------------------------------------------------------

GOOD = b'{"review_id": "g1", "stars": 5.0, "text": "good"}'
GOOD2 = b'{"review_id": "g2", "stars": 1.0, "text": "bad"}'
BAD_JSON_LINES = [
    # (line, reason, message)
    (b'{"review_id": "x", "stars": 4.0, "text": "cut off', "malformed_json", "malformed JSON"),
    (b'[1, 2, 3]', "malformed_json", "expected a JSON object, got a JSON list"),
    (b'"just a string"', "malformed_json", "expected a JSON object, got a JSON str"),
    (b'{"stars": 4.0}', "missing_text", "missing text field 'text'"),
    (b'{"stars": 4.0, "text": null}', "missing_text", "missing text field 'text'"),
    (b'{"stars": 4.0, "text": 12}', "missing_text", "text field 'text' holds int '12', not a string"),
    (b'{"stars": 4.0, "text": ""}', "empty_text", "empty text"),
    (b'{"stars": 4.0, "text": " \\n\\t "}', "empty_text", "empty text"),
    (b'{"text": "no stars"}', "missing_label", "missing star rating in field 'stars'"),
    (b'{"stars": null, "text": "null stars"}', "missing_label", "missing star rating in field 'stars'"),
    (b'{"stars": "five", "text": "x"}', "bad_label", "non-numeric star rating 'five' in field 'stars'"),
    (b'{"stars": 0, "text": "x"}', "label_out_of_range", "star rating 0 out of range 1-5 in field 'stars'"),
    (b'{"stars": 6, "text": "x"}', "label_out_of_range", "star rating 6 out of range 1-5 in field 'stars'"),
    (b'{"stars": 5.5, "text": "x"}', "label_out_of_range", "star rating 5.5 out of range 1-5 in field 'stars'"),
    (b'{"stars": 4.0, "text": "caf\xe9 latin-1"}', "bad_encoding", "undecodable bytes (not UTF-8) at byte 27"),
]


@pytest.mark.parametrize("bad,reason,message", BAD_JSON_LINES, ids=[f"{i}-{r}" for i, (_, r, _) in enumerate(BAD_JSON_LINES)])
def test_bad_json_record_stops_the_run_with_file_and_line(tmp_path, bad, reason, message):
    path = write_lines(tmp_path / "reviews.json", [GOOD, b"", bad, GOOD2])  # line 2 is blank: still counted
    with pytest.raises(DataError, match=rf"^{re.escape(f'{path}:3: {message}')}.*\(use --skip-bad to skip bad records\)$") as info:
        read(paths=(path,))
    assert info.value.reason == reason
    assert (info.value.source, info.value.line) == (path, 3)


def test_skip_bad_skips_and_counts_every_bad_json_record(tmp_path):
    lines = [GOOD] + [bad for bad, _, _ in BAD_JSON_LINES] + [GOOD2]
    path = write_lines(tmp_path / "reviews.json", lines)
    records, reader = read(paths=(path,), skip_bad=True)
    assert [r.id for r in records] == ["g1", "g2"]
    assert labels(records) == ["positive", "negative"]
    assert reader.tally.skipped == Counter({
        "malformed_json": 3, "missing_text": 3, "empty_text": 2, "missing_label": 2,
        "bad_label": 1, "label_out_of_range": 3, "bad_encoding": 1,
    })
    assert (reader.tally.read, reader.tally.kept) == (17, 2)
    assert reader.tally.filtered == Counter()
    assert reader.tally.as_dict()["records_skipped"]["label_out_of_range"] == 3


def test_missing_plain_label_and_non_scalar_label(tmp_path):
    path = write_jsonl(tmp_path / "l.json", [
        {"text": "a", "label": "x"}, {"text": "b", "label": "  "}, {"text": "c", "label": ["x"]}, {"text": "d"}, {"text": "e", "label": "y"},
    ])
    with pytest.raises(DataError, match=re.escape(f"{path}:2: missing label in field 'label'")):
        read(paths=(path,))
    records, reader = read(paths=(path,), skip_bad=True)
    assert texts(records) == ["a", "e"]
    assert reader.tally.skipped == Counter({"missing_label": 2, "bad_label": 1})


CSV_LINES = [
    b"review_id,text,stars",
    b"c1,good,5",  # line 2
    b"c2,\"two\nlines\",1",  # lines 3-4
    b"c3,too,many,fields",  # line 5
    b"c4,caf\xe9,5",  # line 6: latin-1
    b"c5,,4",  # line 7: empty text
    b"c6,no stars,",  # line 8
    b"c7,seven stars,7",  # line 9
    b"c8,lots of stars,many",  # line 10
    b"c9,short",  # line 11
    b"c10,last,4",  # line 12
]


@pytest.mark.parametrize("line,message", [
    (5, "expected 3 fields, got 4"),
    (6, "undecodable bytes (not UTF-8)"),
    (7, "empty text"),
    (8, "missing star rating in field 'stars'"),
    (9, "star rating '7' out of range 1-5 in field 'stars'"),
    (10, "non-numeric star rating 'many' in field 'stars'"),
    (11, "expected 3 fields, got 2"),
])
def test_bad_csv_record_stops_the_run_with_file_and_line(tmp_path, line, message):
    # header, c1, c2 (lines 3-4), then the row that sits on `line` in CSV_LINES: now line 5
    lines = CSV_LINES[:3] + [CSV_LINES[line - 2]]
    path = write_lines(tmp_path / "reviews.csv", lines)
    with pytest.raises(DataError, match=rf"^{re.escape(f'{path}:5: {message}')} \(use --skip-bad to skip bad records\)$"):
        read(paths=(path,))


def test_bad_csv_lines_are_numbered_in_the_whole_file(tmp_path):
    path = write_lines(tmp_path / "reviews.csv", CSV_LINES)
    with pytest.raises(DataError, match=re.escape(f"{path}:5: expected 3 fields, got 4")):
        read(paths=(path,))
    path = write_lines(tmp_path / "latin1.csv", CSV_LINES[:3] + CSV_LINES[4:5])
    with pytest.raises(DataError, match=re.escape(f"{path}:5: undecodable bytes (not UTF-8)")) as info:
        read(paths=(path,))
    assert info.value.reason == "bad_encoding"


def test_skip_bad_skips_and_counts_every_bad_csv_record(tmp_path):
    path = write_lines(tmp_path / "reviews.csv", CSV_LINES)
    records, reader = read(paths=(path,), skip_bad=True)
    assert [r.id for r in records] == ["c1", "c2", "c10"]
    assert texts(records) == ["good", "two\nlines", "last"]
    assert reader.tally.skipped == Counter({
        "malformed_csv": 2, "bad_encoding": 1, "empty_text": 1, "missing_label": 1,
        "label_out_of_range": 1, "bad_label": 1,
    })
    assert (reader.tally.read, reader.tally.kept) == (10, 3)


def test_undecodable_csv_header(tmp_path):
    path = write_lines(tmp_path / "h.csv", [b"t\xe9xt,stars", b"a,5"])
    with pytest.raises(DataError, match=re.escape(f"{path}:1: undecodable bytes (not UTF-8) in the header")):
        read(paths=(path,), skip_bad=True)


def test_missing_file_and_directory(tmp_path):
    missing = str(tmp_path / "nope.json")
    with pytest.raises(DataError, match=rf"^{re.escape(missing)}: no such file$"):
        read(paths=(missing,))
    with pytest.raises(DataError, match=rf"^{re.escape(str(tmp_path))}: is a directory; give the data file itself$"):
        read(paths=(str(tmp_path),))


def test_wrong_text_field_lists_the_fields(tmp_path):
    path = write_jsonl(tmp_path / "y.json", OLD)
    fields = "votes, user_id, stars, date, text, type, business_id"
    with pytest.raises(DataError, match=re.escape(f"{path}: no text field 'review'; fields are: {fields} (use --text-field)")):
        read(paths=(path,), text_field="review")
    table = write_delimited(tmp_path / "t.csv", ["body", "stars"], [["x", "5"]])
    with pytest.raises(DataError, match=re.escape(f"{table}: no text field 'text'; fields are: body, stars (use --text-field)")):
        read(paths=(table,))
    records, _ = read(paths=(table,), text_field="body")
    assert texts(records) == ["x"]


def test_no_label_or_stars_field(tmp_path):
    path = write_jsonl(tmp_path / "u.json", [{"text": "x", "rating": 5}])
    with pytest.raises(DataError, match=re.escape(f"{path}: no 'label' or 'stars' field; fields are: text, rating (use --label-field or --stars-field)")):
        read(paths=(path,))
    with pytest.raises(DataError, match=re.escape(f"{path}: no label field 'score'; fields are: text, rating")):
        read(paths=(path,), stars_field="score")
    assert labels(read(paths=(path,), stars_field="rating")[0]) == ["positive"]


# --- read_labelled and split ---------------------------------------------------------------------

def cfg_for(*paths, **data):
    return Config(data=DataConfig(paths=tuple(paths), **data))


def test_read_labelled_class_ids(tmp_path):
    path = write_jsonl(tmp_path / "y.json", CURRENT)
    data = read_labelled(cfg_for(path, labels="stars"))
    assert data.texts == CURRENT_TEXTS
    assert data.classes == ["1", "2", "3", "4", "5"]
    assert data.y.tolist() == [2, 4, 0, 3, 1]
    assert data.y.dtype == np.int64
    assert data.tally.kept == 5
    data = read_labelled(cfg_for(path))
    assert data.classes == ["negative", "positive"] and data.y.tolist() == [0, 1, 0, 1, 0]


def test_read_labelled_empty_input(tmp_path):
    empty = write_bytes(tmp_path / "empty.json", b"\n\n")
    with pytest.raises(DataError, match=re.escape(f"{empty}: no usable records (read 0: the input is empty)")):
        read_labelled(cfg_for(empty))
    neutral = write_jsonl(tmp_path / "n.json", [{"text": "x", "stars": 3}, {"text": "y", "stars": 3.0}])
    with pytest.raises(DataError, match=re.escape(f"{neutral}: no usable records (read 2: 2 neutral_3_stars)")):
        read_labelled(cfg_for(neutral, labels="polarity"))


def test_read_labelled_single_class(tmp_path):
    path = write_jsonl(tmp_path / "one.json", [{"text": "x", "stars": 5}, {"text": "y", "stars": 4}])
    with pytest.raises(DataError, match=re.escape(f"{path}: only one class ('positive') in 2 records; a classifier needs at least two")):
        read_labelled(cfg_for(path))


def test_read_labelled_with_fixed_classes(tmp_path):
    path = write_jsonl(tmp_path / "val.json", [{"text": "x", "label": "pos"}, {"text": "y", "label": "pos"}])
    data = read_labelled(cfg_for(), paths=[path], classes=["neg", "pos"])  # one class is fine here
    assert data.classes == ["neg", "pos"] and data.y.tolist() == [1, 1]
    other = write_jsonl(tmp_path / "other.json", [{"text": "x", "label": "pos"}, {"text": "y", "label": "meh"}, {"text": "z", "label": "bah"}])
    with pytest.raises(DataError, match=re.escape(f"{other}: labels ['bah', 'meh'] are not among the model's classes ['neg', 'pos']")):
        read_labelled(cfg_for(), paths=[other], classes=["neg", "pos"])


def test_read_labelled_paths_argument_ignores_the_limit(tmp_path):
    path = write_jsonl(tmp_path / "s.json", STAR_ROWS)
    assert len(read_labelled(cfg_for(path, limit=4)).texts) == 4
    assert len(read_labelled(cfg_for(limit=4), paths=[path]).texts) == 7


@pytest.mark.parametrize("n", [2, 5, 10, 101, 1000])
def test_split_is_sklearn_train_test_split_of_the_tutorial(n):
    train_idx, val_idx = split(n, 0.2, 36)
    expected_train, expected_val = train_test_split(np.arange(n), test_size=0.2, random_state=36)
    assert train_idx.tolist() == sorted(expected_train.tolist())
    assert val_idx.tolist() == sorted(expected_val.tolist())
    assert len(val_idx) == int(np.ceil(0.2 * n))
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(n))


def test_split_seed_matters_and_needs_two_records():
    assert split(50, 0.2, 36)[1].tolist() != split(50, 0.2, 37)[1].tolist()
    with pytest.raises(DataError, match=re.escape("data: 1 record(s) cannot be split with --test-split 0.2")):
        split(1, 0.2, 36)


# --- the bundled sample --------------------------------------------------------------------------

def test_bundled_sample_by_default():
    reader = RecordReader(DataConfig(limit=200))
    records = list(reader)
    assert len(records) == 200
    counts = Counter(labels(records))
    assert set(counts) == {"negative", "positive"}
    assert min(counts.values()) >= 60  # shuffled, not the class-sorted file order
    assert reader.classes(set(counts)) == ["negative", "positive"]
    assert all(r.text.strip() for r in records)
    assert reader.paths == ("imdb",)
    assert (reader.tally.read, reader.tally.kept) == (200, 200)


def test_a_bad_first_record_is_a_bad_record_not_a_wrong_field(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"stars": 5}\n{"text": "good", "stars": 5}\n{"text": "bad", "stars": 1}\n')
    with pytest.raises(DataError, match=r"r\.json:1: missing text field 'text'"):
        list(RecordReader(DataConfig(paths=(str(path),))))
    reader = RecordReader(DataConfig(paths=(str(path),), skip_bad=True))
    assert [r.label for r in reader] == ["positive", "negative"]
    assert dict(reader.tally.skipped) == {"missing_text": 1}


# --- what the console says of the labels and the counts ----------------------------------------------

def _counts(reader):
    return reader.tally.as_dict()


def test_describe_labels_binary_polarity_and_stars_with_the_counts(tmp_path):
    path = write_jsonl(tmp_path / "s.json", STAR_ROWS)  # stars 1, 2, 3, 4, 5, 3.0, 4.0
    _, reader = read(paths=(path,), labels="binary")
    assert _counts(reader)["records_per_class"] == {"negative": 4, "positive": 3}
    assert describe_labels("binary", _counts(reader)) == "stars > 3 → positive (3), ≤ 3 → negative (4)"
    _, reader = read(paths=(path,), labels="polarity")
    assert describe_labels("polarity", _counts(reader)) == (
        "stars > 3 → positive (3), < 3 → negative (2); 3 stars dropped: 2")
    assert describe_counts(_counts(reader)) == "5 kept, 2 dropped (3 stars)"
    _, reader = read(paths=(path,), labels="stars")
    assert describe_labels("stars", _counts(reader)) == "stars as classes: 1 (1), 2 (1), 3 (2), 4 (2), 5 (1)"
    big = {"records_per_class": {"positive": 13131, "negative": 5077}}
    assert describe_labels("binary", big) == "stars > 3 → positive (13,131), ≤ 3 → negative (5,077)"


def test_describe_labels_as_given_in_a_label_field(tmp_path):
    path = write_jsonl(tmp_path / "l.json", [{"text": "a", "sentiment": "pos"}, {"text": "b", "sentiment": "neg"},
                                             {"text": "c", "sentiment": "pos"}])
    records, reader = read(paths=(path,), label_field="sentiment")
    classes = reader.classes(set(labels(records)))
    assert describe_labels(reader.star_scheme or "labels", _counts(reader), classes) == (
        "labels as given: neg (1), pos (2)")
    # a dataset prepared before the counts were kept: the mapping alone
    assert describe_labels("labels", {"records_read": 3}, ["neg", "pos"]) == "labels as given: neg, pos"
    assert describe_labels("binary", {}) == "stars > 3 → positive, ≤ 3 → negative"


def test_describe_counts_names_skipped_and_dropped_records_apart(tmp_path):
    lines = [GOOD] + [bad for bad, _, _ in BAD_JSON_LINES[:2]] + [GOOD2]
    _, reader = read(paths=(write_lines(tmp_path / "r.json", lines),), skip_bad=True)
    counts = _counts(reader)
    skipped = sum(counts["records_skipped"].values())
    assert describe_counts(counts).startswith(f"2 kept, {skipped} skipped as bad (")
    assert counts["records_read"] == 2 + skipped
    assert describe_counts({"records_read": 4, "records_kept": 4, "records_skipped": {}, "records_filtered": {}}) == (
        "4 kept")


def test_prepare_console_counts_are_the_manifests(tmp_path):
    """`revsent prepare --labels polarity`: the console's read / kept / dropped and per-class counts are the
    dataset's manifest.json counts, which metrics.json copies."""
    from typer.testing import CliRunner

    from revsent.cli import app

    rows = [[f"review number {i} was {'good' if s > 3 else 'bad'}", s] for i, s in enumerate([1, 2, 3, 4, 5] * 6)]
    data = write_delimited(tmp_path / "reviews.csv", ["text", "stars"], rows)
    result = CliRunner().invoke(app, ["prepare", data, "--out", str(tmp_path / "ds"), "--labels", "polarity",
                                      "--preset", "seed"])
    assert result.exit_code == 0, result.output
    counts = json.loads((tmp_path / "ds" / "manifest.json").read_text())["counts"]
    assert counts == {"records_read": 30, "records_kept": 24, "records_skipped": {},
                      "records_filtered": {"neutral_3_stars": 6}, "records_per_class": {"negative": 12, "positive": 12}}
    assert re.search(r"read 30 records from \S+reviews\.csv in [\d.]+s: 24 kept, 6 dropped \(3 stars\)", result.output)
    assert "read 30 records: 24 kept, 6 dropped (3 stars)\n" in result.output  # the summary `prepare` prints last
    assert "labels: stars > 3 → positive (12), < 3 → negative (12); 3 stars dropped: 6" in result.output
    assert describe_labels("polarity", counts) == (
        "stars > 3 → positive (12), < 3 → negative (12); 3 stars dropped: 6")
    # training from that dataset: its console line and metrics.json give the same counts
    result = CliRunner().invoke(app, ["train", str(tmp_path / "ds"), "--out", str(tmp_path / "model"), "--epochs", "1",
                                      "--embedding-dim", "8", "--hidden-size", "8", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "24 reviews (read 30 records: 24 kept, 6 dropped (3 stars))" in result.output
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert {key: metrics[key] for key in counts} == counts
