# The README's two commands: `make run` (embedded database, development mode) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: setup run test lint bench clean-db lock test-tools

# The exact, hashed versions of requirements/dev.lock; then the project itself, editable.
$(STAMP): pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

# The bench's extra (the gunicorn baseline), only for `make bench`.
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

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

bench: $(BENCH_STAMP)
	$(PY) -m bench

clean-db:
	rm -rf .jarlpm

# Regenerate the locked dependency sets (requirements/*.lock) from pyproject.toml.
lock: setup
	$(PY) -m pip install --quiet 'uv>=0.5'
	$(VENV)/bin/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 \
		--python-platform x86_64-unknown-linux-gnu --quiet -o requirements/runtime.lock
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --extra bench --generate-hashes --python-version 3.11 \
		--python-platform x86_64-unknown-linux-gnu --quiet -o requirements/dev.lock
	echo 'setuptools>=68' | $(VENV)/bin/uv pip compile - --generate-hashes --python-version 3.11 \
		--python-platform x86_64-unknown-linux-gnu --quiet -o requirements/build.lock
