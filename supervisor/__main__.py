"""``python -m supervisor …`` is the same as ``jarlpm …``."""

from .main import entrypoint

entrypoint()
