# Two commands set everything up on a fresh machine:
#   make demo   installs genlab into .venv, trains the default VAE on the embedded digits
#               (offline, about a minute on a 2-core CPU), then samples and evaluates it
#   make test   installs genlab with its test extras into .venv and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
DEMO = outputs/demo

.PHONY: install demo test test-slow clean

$(BIN)/genlab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[test]"
	touch $@

install: $(BIN)/genlab

demo: install
	$(BIN)/genlab train hydra.run.dir=$(DEMO)
	$(BIN)/genlab sample ckpt=$(DEMO)
	$(BIN)/genlab eval ckpt=$(DEMO)

test: install
	$(BIN)/python -m pytest -n auto --dist worksteal

test-slow: install
	$(BIN)/python -m pytest -m slow -n auto --dist worksteal

clean:
	rm -rf $(VENV) outputs multirun build *.egg-info
