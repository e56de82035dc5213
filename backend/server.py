"""ASGI entry point for ``uvicorn server:app --app-dir backend``, by hand or by the supervisor."""

from jarlpm.app import create_app

app = create_app()
