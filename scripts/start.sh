#!/bin/sh
# Production entrypoint: exec the supervisor in the project's Python environment.
# Uses $VIRTUAL_ENV when set, else the repo's .venv; installs nothing.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "${VIRTUAL_ENV}/bin/python" ]; then
    python="${VIRTUAL_ENV}/bin/python"
elif [ -x "${repo}/.venv/bin/python" ]; then
    python="${repo}/.venv/bin/python"
else
    printf '{"timestamp":"%s","level":"error","event":"start.no_environment","message":"No Python environment found for the supervisor","source":"supervisor","pid":%s,"error":"no Python environment found","hint":"activate a virtualenv with the project installed (pip install -e .) or run make setup to create %s/.venv"}\n' "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" "$$" "$repo"
    exit 78
fi
cd "$repo"
exec "$python" -m supervisor run "$@"
