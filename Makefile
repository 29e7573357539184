# One Makefile for humans and CI. Every target sets up .venv itself on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
DATA ?= penchant-data

.PHONY: demo test fuzz bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch is pinned to the CPU build; installing it first keeps pip from choosing a CUDA one.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[all,dev]"
	# The Open Bandit Pipeline, to check the off-policy estimators against: it pins libraries
	# years old, so it comes without its dependencies (dev holds the few it imports).
	$(BIN)/python -m pip install --quiet --no-deps "obp==0.4.1"
	touch $(STAMP)

# The peer libraries the model benchmark compares against (LensKit, cornac), for `make bench` only.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[all,dev,bench]"
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/penchant demo --data-dir $(DATA)
	@echo "(The penchant command lives in $(BIN)/; 'source $(BIN)/activate' puts it on your PATH.)"

test: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

# Schemathesis over the service's own OpenAPI spec, as `make test` runs it (10 examples per
# operation) but longer; prints each operation's requests and statuses.
FUZZ_EXAMPLES ?= 500
fuzz: $(STAMP)
	PENCHANT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/service/test_fuzz_api.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --repeat 3

clean:
	rm -rf $(VENV) $(DATA) bench/out .pytest_cache .mypy_cache .ruff_cache
