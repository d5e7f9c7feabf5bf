# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make run    creates .venv, installs SimSearch, runs the main job on examples/data
#   make test   creates .venv if needed, installs the test extras, runs the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python examples/find_similar.py --out out/sample

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_embedding.py

clean:
	rm -rf out simsearch-project .pytest_cache
