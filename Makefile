# Every target sets itself up: scripts/uv installs uv when it is missing (and finds it wherever it went),
# then `uv sync` builds .venv from uv.lock. `--inexact`: an extra installed before (trackers) is kept.
SHELL := /bin/bash
UV := ./scripts/uv
SYNC := $(UV) sync --frozen --inexact
RUN := $(UV) run --frozen
ARGS ?=
# Tests run in parallel by pytest-xdist, one torch thread each (tests/conftest.py); TEST_WORKERS=0 runs
# them one after another in this process.
TEST_WORKERS ?= 2
PYTEST := $(RUN) pytest -n $(TEST_WORKERS) --dist worksteal

.PHONY: setup setup-trackers setup-extras train test test-fast lint format tensorboard bench summary screenshots clean

setup:  ## install uv (if missing) and the locked environment
	$(SYNC)

setup-trackers:  ## setup + the optional trackers extra: Weights & Biases and MLflow (logger=wandb|mlflow|many)
	$(SYNC) --extra trackers

setup-extras:  ## setup + every optional extra: trackers, and export (ONNX, onnxruntime, safetensors for src.export)
	$(SYNC) --extra trackers --extra export

train: setup  ## train LeNet-5 on MNIST (DATA_DIR=... points at the data); extra overrides: ARGS="..."
	$(RUN) python -m src.train model=lenet5 data=mnist $(ARGS)

test: setup-extras  ## the whole test suite, real-data and tracker tests included (data tests skip without DATA_DIR data)
	$(PYTEST) $(ARGS)

test-fast: setup-extras  ## everything but the slow tests (real data, the fresh-machine set-up, ...)
	$(PYTEST) -m "not slow" $(ARGS)

lint: setup  ## ruff, mypy on src/ (pyproject.toml [tool.mypy]), and import-linter's contracts (src/'s layers, no import circles)
	$(RUN) ruff check src tests bench scripts
	$(RUN) ruff format --check src tests bench scripts
	$(RUN) mypy
	$(RUN) lint-imports

format: setup
	$(RUN) ruff format src tests bench scripts
	$(RUN) ruff check --fix src tests bench scripts

tensorboard: setup  ## TensorBoard on every run under outputs/
	$(RUN) tensorboard --logdir outputs --host localhost --port $${PORT:-6006}

screenshots: setup  ## docs/ screenshots (docs/img) of a run's TensorBoard via headless Chromium; ARGS="<run dir> --sweep <sweep dir>"
	$(RUN) python scripts/screenshots.py $(ARGS)

summary: setup  ## per-layer shapes, e.g. make summary ARGS="model=alexnet padding=same"
	$(RUN) python -m src.summary $(ARGS)

bench: setup  ## accuracy, speed, steps, startup, keras (TensorFlow via uv) and scaling suites (DATA_DIR needed); writes bench/results/
	$(RUN) python -m bench all $(ARGS)

clean:
	rm -rf outputs .cache .pytest_cache .ruff_cache
