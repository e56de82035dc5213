"""``python -m supervisor …`` is the same as ``jarlpm …``."""

from supervisor.main import entrypoint

entrypoint()
