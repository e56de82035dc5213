# The README's two commands: `make run` (embedded database, development mode) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench clean-db test-tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	JARLPM_ENV=development LOG_FORMAT=$${LOG_FORMAT:-console} scripts/start.sh

# Tools some tests use, installed when we can (root with apt); each such test skips, saying why, without.
test-tools:
	@if ! command -v promtool >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 \
		|| echo "make: promtool (Debian's prometheus package) could not be installed; its test will say so"; \
	fi

test: setup test-tools
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check supervisor backend alembic tests bench
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench

clean-db:
	rm -rf .jarlpm
