# Two entry points, each self-contained on a machine with only Python >= 3.11:
#   make run    -- create .venv, install cr2des, run the main study into out/
#   make test   -- create .venv, install cr2des with its test tools, run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
RUN_ARGS ?= resnet50
OUT ?= out

.PHONY: run test bench profile lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,plot]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/cr2des run $(RUN_ARGS) --out $(OUT)

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q

bench: $(VENV)/.installed
	$(BIN)/python -m pytest -q -s tests/benchmarks

# cProfile of one command; summary in profile/profile.txt (PROFILE_ARGS: cr2des arguments)
PROFILE_ARGS ?= run resnet50 --json
profile: $(VENV)/.installed
	$(BIN)/python -m tests.benchmarks.profile_run --out profile -- $(PROFILE_ARGS)

lint: $(VENV)/.installed
	$(BIN)/ruff check cr2des tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
