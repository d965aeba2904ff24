# Two commands do all set-up on a fresh Debian machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYSTEM_STAMP := $(VENV)/.system-installed
DEMO := demo-output

.PHONY: install system demo test lint typecheck pytest bench fuzz clean

install: $(SYSTEM_STAMP) $(STAMP)

$(SYSTEM_STAMP): scripts/debian-packages.txt scripts/install-system.sh
	@bash scripts/install-system.sh scripts/debian-packages.txt
	@mkdir -p $(VENV) && touch $@

$(STAMP): pyproject.toml $(SYSTEM_STAMP)
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check -U pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@# byte-compiled once, as a wheel install does: an editable install would otherwise compile
	@# every module at each start where PYTHONDONTWRITEBYTECODE is set (~0.1 s of start-up)
	@$(PY) -m compileall -q src >/dev/null
	@touch $@

demo: install
	@bash scripts/demo.sh $(DEMO)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

# Two workers, a test file each at a time (its module fixtures built once); the lab's ports
# come from a range of each worker's own (tests/conftest.py), so workers never collide.
PYTEST_WORKERS ?= 2
pytest: install
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

test: lint typecheck pytest

bench: install
	@bash bench/run.sh

# The deid campaign (not part of `make test`): N mutants of the sample corpus and of
# pydicom's test files; escapes / quarantined / written / crashes per strategy.
N ?= 10000
FUZZ_REPRO ?= fuzz-repro
FUZZ_ARGS ?=
fuzz: install
	@rm -rf $(FUZZ_REPRO) && $(PY) scripts/fuzz.py -n $(N) --repro $(FUZZ_REPRO) \
		--json $(FUZZ_REPRO)/summary.json --markdown $(FUZZ_REPRO)/summary.md $(FUZZ_ARGS)

clean:
	rm -rf $(DEMO) $(DEMO).* .pytest_cache .mypy_cache .ruff_cache fuzz-repro
