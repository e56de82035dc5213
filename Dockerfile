# syntax=docker/dockerfile:1
# JarlPM API image. The supervisor is PID 1: it forwards signals, drains and stops
# the server processes, and reaps every zombie in the container itself, so no tini
# or dumb-init is needed: it would only forward what the supervisor already handles.
#
#   docker build -t jarlpm .
#   docker run --stop-timeout 45 -e DATABASE_URL=postgresql://... -p 8001:8001 jarlpm
#
# `docker stop` waits only 10 s before SIGKILL by default: give it at least
# GRACEFUL_TIMEOUT + DRAIN_DELAY (30 + 0 s by default) plus a margin with
# --stop-timeout (compose: stop_grace_period). See docs/deployment.md.
#
# The base image is pinned by the digest of its multi-platform index, so a rebuild
# gets the same bytes. To update (monthly, or for a CVE in the base), take the new
# digest of the tag and test the image:
#   docker buildx imagetools inspect python:3.11-slim-bookworm   # "Digest: sha256:..."
FROM python:3.11-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed UID so volumes and Kubernetes' runAsUser/fsGroup can name it.
RUN groupadd --system --gid 10001 jarlpm \
 && useradd --system --uid 10001 --gid jarlpm --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin jarlpm

WORKDIR /app

# The exact dependency versions of requirements/runtime.lock, each checked against its
# hash (wheels only: psycopg2-binary needs no compiler); then the supervisor package
# itself, built with the locked setuptools and no further download. Copied first so a
# change to the backend alone reuses these layers. `make lock` refreshes the locks.
COPY requirements/runtime.lock requirements/build.lock requirements/
RUN pip install --no-cache-dir --require-hashes -r requirements/runtime.lock -r requirements/build.lock
COPY pyproject.toml README.md ./
COPY supervisor/ supervisor/
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

COPY alembic.ini ./
COPY alembic/ alembic/
COPY backend/ backend/
COPY scripts/ scripts/
# The image is read-only at run time for the jarlpm user: compile now.
RUN python -m compileall -q supervisor backend alembic \
 && install -d -o jarlpm -g jarlpm -m 0700 /run/jarlpm

# Where things are, stated explicitly so `jarlpm ...` from `docker exec` (the
# installed package) and `python -m supervisor` (run from /app) agree. The status
# socket behind `jarlpm status` lives in JARLPM_STATE_DIR.
ENV JARLPM_ALEMBIC_INI=/app/alembic.ini \
    JARLPM_APP_DIR=/app/backend \
    JARLPM_STATE_DIR=/run/jarlpm \
    HOST=0.0.0.0 \
    PORT=8001 \
    LOG_FORMAT=json \
    LOG_LEVEL=info

# Numeric, so Kubernetes' runAsNonRoot can verify it without runAsUser (a name cannot
# be checked against the image's /etc/passwd by the kubelet).
USER 10001:10001
EXPOSE 8001

# The supervisor stops gracefully on SIGTERM (readiness 503 for DRAIN_DELAY, then
# GRACEFUL_TIMEOUT for in-flight requests) and exits 0.
STOPSIGNAL SIGTERM

# Liveness of the server, not of the database: /api/health answers without touching
# PostgreSQL. slim has no curl, so Python's urllib does the request (a non-2xx or a
# refused connection raises, and the exit status is 1 = unhealthy). The start period
# covers DB_WAIT_TIMEOUT (60 s) and the migrations.
# Exec form: no shell (the image's /bin/sh is not needed to probe it).
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('PORT', '8001'), timeout=4)"]

# Exec form: the supervisor itself is PID 1 (no shell in between to swallow SIGTERM).
ENTRYPOINT ["python", "-m", "supervisor", "run"]
