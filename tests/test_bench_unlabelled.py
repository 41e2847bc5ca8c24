"""The unlabelled IMDB text for pretraining leaves out every review of the bundled sample."""
import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "unlabelled.py"
spec = importlib.util.spec_from_file_location("bench_unlabelled", SCRIPT)
unlabelled = importlib.util.module_from_spec(spec)
spec.loader.exec_module(unlabelled)


def test_copies_of_a_review_differ_only_in_line_breaks_and_spaces():
    assert unlabelled.normalised("A  fine<br /><br />film.\n") == unlabelled.normalised("A fine film.") == "A fine film."
    assert unlabelled.normalised("A fine<BR>film") == "A fine film"
    assert unlabelled.normalised("A Fine film") != unlabelled.normalised("A fine film")  # case is kept


def test_reviews_of_the_sample_and_repeats_are_left_out():
    known = {unlabelled.normalised("held out review"), unlabelled.normalised("a training review")}
    texts = ["held out<br />review", "new one", "a  training review", "new  one", "", "another"]
    assert list(unlabelled.unseen(texts, known)) == ["new one", "another"]
    assert len(known) == 2  # the caller's set is not changed


def test_the_bundled_sample_is_read_whole():
    known = unlabelled.sample_texts()
    assert 24_800 < len(known) <= 25_000  # 25,000 reviews, a few of them copies of others
