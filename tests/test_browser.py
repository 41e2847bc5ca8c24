"""The web page in a real browser: Debian's chromium, driven by Selenium through chromium-driver.

`revsent serve` runs on 127.0.0.1 with a model trained on real IMDB reviews; the test types a
review, submits it with the keyboard, and checks the label, the probability bars and the
highlighted words. A screenshot goes to bench/out/screenshots/ (not in git). A smaller model
checks that the page names the model it serves and says when a text has no word the model knows.
"""
import shutil
from pathlib import Path

import pytest

from .serve.conftest import start_server

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def wait_for_model_line(browser) -> str:
    """The page's line naming the model, once /v1/model has answered."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "model").text)
    return browser.find_element(By.ID, "model").text


@pytest.fixture(scope="module")
def small_imdb_model(tmp_path_factory):
    """A small model trained by `revsent train` on 300 IMDB reviews: it has a metrics.json to name."""
    from typer.testing import CliRunner

    from revsent.cli import app

    out = tmp_path_factory.mktemp("small") / "imdb"
    result = CliRunner().invoke(app, [
        "train", "imdb", "--limit", "300", "--preset", "seed", "--epochs", "2", "--vocab-size", "2000",
        "--out", str(out), "--quiet", "--threads", "1"])
    assert result.exit_code == 0, result.output
    return out


def test_page_names_its_model_and_flags_a_text_it_cannot_read(small_imdb_model, browser):
    import json

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    metrics = json.loads((small_imdb_model / "metrics.json").read_text())
    proc, url = start_server(small_imdb_model)
    try:
        browser.get(url + "/")
        assert wait_for_model_line(browser) == (
            "Model: trained on IMDB movie reviews (the bundled sample); classes: negative, positive; "
            f"test accuracy {100 * metrics['accuracy']:.1f}% on {metrics['n_test']} held-out reviews.")
        examples = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "button.example")]
        assert len(examples) == 3 and "film" in " ".join(examples)  # movie reviews for a movie-review model

        browser.find_element(By.ID, "text").send_keys("Zzyzx qwxv blorft!")
        browser.find_element(By.ID, "submit").click()
        note = WebDriverWait(browser, 60).until(ready.visibility_of_element_located((By.ID, "no-known-words")))
        assert note.text == "No word of this text is in the model's vocabulary: this label is a guess."
        assert browser.find_element(By.ID, "label").text in ("negative", "positive")

        box = browser.find_element(By.ID, "text")
        box.clear()
        box.send_keys("A wonderful film, the acting was great.")
        browser.find_element(By.ID, "submit").click()
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "words").text.startswith("A wonderful"))
        assert not browser.find_elements(By.ID, "no-known-words")  # a text it reads has no such note
    finally:
        proc.terminate()
        proc.wait(30)


def test_page_predicts_and_highlights_words(imdb_model, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    proc, url = start_server(imdb_model)
    try:
        browser.get(url + "/")
        assert browser.title.startswith("revsent")
        box = browser.find_element(By.ID, "text")
        assert browser.find_element(By.CSS_SELECTOR, "label[for=text]").text == "Review"
        review = "A wonderful film: brilliant acting, a moving story and a superb ending. I loved it."
        box.click()
        box.send_keys(review)
        box.send_keys(Keys.CONTROL, Keys.ENTER)  # submitting from the keyboard
        label = WebDriverWait(browser, 60).until(ready.visibility_of_element_located((By.ID, "label")))
        assert label.text == "positive"
        bars = browser.find_elements(By.CSS_SELECTOR, "[role=progressbar]")
        values = {b.get_attribute("aria-label"): float(b.get_attribute("aria-valuenow")) for b in bars}
        assert set(values) == {"probability of negative", "probability of positive"}
        assert values["probability of positive"] > 50 and abs(sum(values.values()) - 100) < 0.5
        words = browser.find_element(By.ID, "words")
        assert words.text.split() == review.split()  # the review as typed, punctuation and all
        toward = [w.text for w in browser.find_elements(By.CSS_SELECTOR, "#words span.for")]
        assert {"wonderful", "brilliant", "superb", "loved"} & {w.strip(",.:").lower() for w in toward}, toward
        assert browser.find_element(By.CSS_SELECTOR, "section#result").get_attribute("aria-live") == "polite"

        # an example (a movie review: the model learnt from IMDB), chosen with the keyboard, replaces the result
        wait_for_model_line(browser)
        example = browser.find_elements(By.CSS_SELECTOR, "button.example")[0]
        assert example.text.startswith("A dull")
        example.send_keys(Keys.ENTER)
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "words").text.startswith("A dull"))
        assert browser.find_element(By.ID, "label").text in ("negative", "positive")

        shots = ROOT / "bench" / "out" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        box = browser.find_element(By.ID, "text")
        box.clear()
        box.send_keys(review)
        browser.find_element(By.ID, "submit").click()
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "words").text.startswith("A wonderful"))
        assert browser.save_screenshot(str(shots / "page.png"))
    finally:
        proc.terminate()
        proc.wait(30)


def test_page_with_the_onnx_backend_shows_the_prediction_alone(imdb_model, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    from revsent.export import export

    export(imdb_model, tmp_path / "onnx")
    proc, url = start_server(tmp_path / "onnx", "--backend", "onnx")
    try:
        browser.get(url + "/")
        assert wait_for_model_line(browser).startswith("Model: trained on IMDB movie reviews (the bundled sample);")
        browser.find_element(By.ID, "text").send_keys("A dull, lifeless film. The acting was awful and I hated the ending.")
        browser.find_element(By.ID, "submit").click()
        label = WebDriverWait(browser, 60).until(ready.visibility_of_element_located((By.ID, "label")))
        assert label.text == "negative"
        assert len(browser.find_elements(By.CSS_SELECTOR, "[role=progressbar]")) == 2
        assert browser.find_element(By.ID, "no-words").text == "This server gives no word-level explanations."
        assert not browser.find_elements(By.CSS_SELECTOR, "#result .error")
    finally:
        proc.terminate()
        proc.wait(30)
