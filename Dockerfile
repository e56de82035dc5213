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
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed UID so volumes and Kubernetes' runAsUser/fsGroup can name it.
RUN groupadd --system --gid 10001 jarlpm \
 && useradd --system --uid 10001 --gid jarlpm --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin jarlpm

WORKDIR /app

# Dependencies and the supervisor package (wheels only: psycopg2-binary needs no
# compiler); copied first so a change to the backend alone reuses this layer.
COPY pyproject.toml README.md ./
COPY supervisor/ supervisor/
RUN pip install .

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

USER jarlpm:jarlpm
EXPOSE 8001

# The supervisor stops gracefully on SIGTERM (readiness 503 for DRAIN_DELAY, then
# GRACEFUL_TIMEOUT for in-flight requests) and exits 0.
STOPSIGNAL SIGTERM

# Liveness of the server, not of the database: /api/health answers without touching
# PostgreSQL. slim has no curl, so Python's urllib does the request (a non-2xx or a
# refused connection raises, and the exit status is 1 = unhealthy). The start period
# covers DB_WAIT_TIMEOUT (60 s) and the migrations.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/health' % os.environ.get('PORT', '8001'), timeout=4)" || exit 1

# Exec form: the supervisor itself is PID 1 (no shell in between to swallow SIGTERM).
ENTRYPOINT ["python", "-m", "supervisor", "run"]
