# Two commands do all set-up on a fresh machine with Python 3.11 and pip:
#   make run    creates .venv, installs SimSearch, runs every step on examples/data (simsearch run)
#   make test   creates .venv if needed, installs the test extras, runs the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run similar test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[tui,test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/simsearch run examples/sample_run.yaml

similar: $(STAMP)
	$(BIN)/python examples/find_similar.py --out out/similar

test: $(STAMP)
	$(BIN)/python -m pytest -q -n logical --maxprocesses 4 --dist worksteal

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_embedding.py
	$(BIN)/python benchmarks/bench_curation.py

clean:
	rm -rf out simsearch-project .pytest_cache
