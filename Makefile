# kvmarm-bot — one entry point for humans and CI (.ci/run calls `make ci`).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared/data
export KVMARM_SHARED_DATA ?= $(abspath $(SHARED))

.PHONY: install digest demo test lint format bench ci clean

$(BIN)/kvmarm: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/kvmarm

# The main job: last week's digest (pulls from lore first; prints when no Slack token is set).
digest: install
	$(BIN)/kvmarm digest --last 7d

# The same offline, on one month of the shared archive.
demo: install
	$(BIN)/kvmarm --db $(VENV)/demo.db ingest $(SHARED)/kvmarm-archive/kvmarm-2022-02.mbox.gz
	$(BIN)/kvmarm --db $(VENV)/demo.db digest --week 2022-W06 --offline

# mypy checks bot/ ingest/ storage/ tests/ ([tool.mypy] in pyproject.toml).
# pytest exits 5 when it collected nothing: that is not a failure of the code.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then rc=0; fi; exit $$rc

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Speed checks: each prints its figures and a ratio against a baseline run in the same process.
bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/digest.py
	$(BIN)/python bench/commands.py
	$(BIN)/python bench/sync.py

ci: test

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache
