"""The model card each model directory gets (README.md, Hugging Face's layout), from its own files."""
import json
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from revsent import ArtifactError, Classifier
from revsent.cli import app
from revsent.modelcard import MARKER, languages, model_card, write_model_card

from .conftest import NEGATIVE, POSITIVE

runner = CliRunner()
FLAGS = ["--preset", "seed", "--vocab-size", "100", "--embedding-dim", "8", "--hidden-size", "8", "--epochs", "2",
         "--val-fraction", "0.2", "--threads", "1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained by the CLI on star-rated reviews (3-star ones among them) with the baseline."""
    folder = tmp_path_factory.mktemp("card")
    rows = [{"stars": stars, "text": text} for _ in range(5)
            for stars, texts in ((5, POSITIVE), (1, NEGATIVE), (3, ["it was fine i guess"])) for text in texts]
    data = folder / "reviews.json"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = runner.invoke(app, ["train", str(data), "--out", str(folder / "m"), *FLAGS, "--labels", "polarity",
                                 "--baseline"])
    assert result.exit_code == 0, result.output
    return folder / "m"


def _front_matter(text):
    head, _, body = text.partition("\n---\n")
    assert head.startswith("---\n")
    return yaml.safe_load(head[4:]), body


def test_every_trained_model_has_a_card_from_its_own_files(trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    config = json.loads((trained / "config.json").read_text())
    meta, body = _front_matter((trained / "README.md").read_text())
    assert meta["library_name"] == "revsent" and meta["pipeline_tag"] == "text-classification"
    assert "language" not in meta and "no language revsent recognises" in body  # 20 words: too few to tell
    (result,) = meta["model-index"][0]["results"]
    figures = {m["type"]: m["value"] for m in result["metrics"]}
    assert figures["accuracy"] == pytest.approx(metrics["accuracy"], abs=5e-5)
    assert figures["f1"] == pytest.approx(metrics["f1_macro"], abs=5e-5)
    assert MARKER in body and "the reviews in reviews.json" in body
    assert "stars > 3 → positive (30), < 3 → negative (30); 3 stars dropped: 5" in body  # the polarity scheme
    assert f"{metrics['n_train']:,} training, {metrics['n_validation']:,} validation, {metrics['n_test']:,} test" in body
    assert f"| accuracy | {metrics['validation']['accuracy']:.4f} | {metrics['accuracy']:.4f} | " \
           f"{metrics['baseline_tfidf_lr']['accuracy']:.4f} |" in body
    assert f"`{config['preset']}`" in body and metrics["hardware"] in body
    assert len([line for line in body.splitlines() if line.startswith("| 1 | ") or line.startswith("| 2 | ")]) == 2
    for name, row in metrics["per_class"].items():
        assert f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} |" in body


def test_the_card_is_rewritten_from_the_files(trained, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(trained, model)
    metrics = json.loads((model / "metrics.json").read_text())
    metrics["accuracy"] = 0.123456
    (model / "metrics.json").write_text(json.dumps(metrics))
    write_model_card(model)
    assert "| 0.1235 |" in (model / "README.md").read_text() and model_card(model) == (model / "README.md").read_text()


def test_a_users_readme_is_never_overwritten(trained, tmp_path):
    model = tmp_path / "m"
    shutil.copytree(trained, model)
    (model / "README.md").write_text("# my notes\n")
    with pytest.raises(ArtifactError, match="a README.md revsent did not write"):
        write_model_card(model)
    data = tmp_path / "r.json"
    data.write_text("\n".join(json.dumps({"stars": s, "text": t}) for s, t in
                              [(5, POSITIVE[0]), (1, NEGATIVE[0])] * 10) + "\n")
    refused = runner.invoke(app, ["train", str(data), "--out", str(model), *FLAGS, "--force"])
    assert refused.exit_code != 0 and "holds files revsent did not write (README.md)" in refused.output
    assert (model / "README.md").read_text() == "# my notes\n"
    (model / "README.md").unlink()
    shutil.copy(trained / "README.md", model / "README.md")  # our own card: --force replaces it
    replaced = runner.invoke(app, ["train", str(data), "--out", str(model), *FLAGS, "--force"])
    assert replaced.exit_code == 0, replaced.output
    assert "3 stars dropped" not in (model / "README.md").read_text()  # the new model's card


def test_a_model_saved_from_python_has_a_card_without_figures(tmp_path):
    clf = Classifier("seed", vocab_size=50, embedding_dim=8, hidden_size=8, epochs=1, threads=1)
    clf.fit(POSITIVE * 3 + NEGATIVE * 3, ["positive"] * 18 + ["negative"] * 18)
    card = (clf.save(tmp_path / "m") / "README.md").read_text()
    meta, body = _front_matter(card)
    assert "model-index" not in meta and "No held-out figures were recorded" in body


def test_languages_come_from_the_vocabularys_common_words():
    english = "the and is was this that with for not but are have they you very were had there what would".split()
    french = "le la les et est une des pas que pour dans avec très mais nous sur plus du était qui".split()
    german = "der die und ist das nicht ein eine mit sehr auch wir war für es ich sie zu den auf".split()
    filler = [f"word{i}" for i in range(5000)]
    assert languages(english + filler) == ["en"]
    assert languages(french + filler) == ["fr"]
    assert languages(english + filler[:500] + german + filler) == ["en", "de"]
    assert languages(english[:5] + french[:5] + filler) == []
    assert languages(english + filler + french) == ["en"]  # rare words in a large vocabulary's tail do not count


def test_a_model_of_real_reviews_names_their_language_and_domain(tmp_path):
    out = tmp_path / "imdb"
    result = runner.invoke(app, ["train", "--out", str(out), "--preset", "seed", "--limit", "400", "--vocab-size",
                                 "3000", "--embedding-dim", "8", "--hidden-size", "8", "--epochs", "1",
                                 "--max-len", "100", "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    meta, body = _front_matter((out / "README.md").read_text())
    assert meta["language"] == ["en"] and "IMDB movie reviews (the bundled sample)" in body
    assert "its vocabulary is English." in body and "labels as given" in body
