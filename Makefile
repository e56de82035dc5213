# The README's two commands: `make run` (embedded database, development mode) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: setup run test lint bench clean-db

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# The bench's extra (the gunicorn baseline), only for `make bench`.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

run: setup
	JARLPM_ENV=development LOG_FORMAT=$${LOG_FORMAT:-console} scripts/start.sh

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check supervisor backend alembic tests bench
	$(VENV)/bin/mypy

bench: $(BENCH_STAMP)
	$(PY) -m bench

clean-db:
	rm -rf .jarlpm
