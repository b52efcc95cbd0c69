# Every target sets itself up: scripts/uv installs uv when it is missing (and finds it wherever it went),
# then `uv sync` builds .venv from uv.lock.
SHELL := /bin/bash
UV := ./scripts/uv
RUN := $(UV) run --frozen
ARGS ?=

.PHONY: setup train test test-fast lint format tensorboard bench summary screenshots clean

setup:  ## install uv (if missing) and the locked environment
	$(UV) sync --frozen

train: setup  ## train LeNet-5 on MNIST (DATA_DIR=... points at the data); extra overrides: ARGS="..."
	$(RUN) python -m src.train model=lenet5 data=mnist $(ARGS)

test: setup  ## the whole test suite, real-data tests included (they skip without DATA_DIR data)
	$(RUN) pytest $(ARGS)

test-fast: setup  ## everything but the slow real-data tests
	$(RUN) pytest -m "not slow" $(ARGS)

lint: setup
	$(RUN) ruff check src tests bench scripts
	$(RUN) ruff format --check src tests bench scripts

format: setup
	$(RUN) ruff format src tests bench scripts
	$(RUN) ruff check --fix src tests bench scripts

tensorboard: setup  ## TensorBoard on every run under outputs/
	$(RUN) tensorboard --logdir outputs --host localhost --port $${PORT:-6006}

screenshots: setup  ## README screenshots (docs/img) of a run's TensorBoard via headless Chromium; ARGS="<run dir> --sweep <sweep dir>"
	$(RUN) python scripts/screenshots.py $(ARGS)

summary: setup  ## per-layer shapes, e.g. make summary ARGS="model=alexnet padding=same"
	$(RUN) python -m src.summary $(ARGS)

bench: setup  ## accuracy, speed, keras (TensorFlow via uv) and scaling suites (DATA_DIR needed); writes bench/results/
	$(RUN) python -m src.bench all $(ARGS)

clean:
	rm -rf outputs .cache .pytest_cache .ruff_cache
