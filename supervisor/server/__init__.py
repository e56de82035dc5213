"""Code that runs inside a server process: uvicorn on the socket the supervisor hands over.

``worker`` (``python -m supervisor.server.worker``) imports the app, waits for ``go``,
serves, heartbeats and drains on the control channel (its ``load`` and ``serve`` halves);
``forkserver`` (``python -m supervisor.server.forkserver``, JARLPM_FORK_SERVER) imports
uvicorn and the app once and forks server processes that run ``serve`` at once;
``serverlog`` turns stdlib log records (uvicorn's, the app's) into JSON lines for the
supervisor's relay;
``httpmetrics`` (with ``METRICS_PORT``) counts and times every request by route template.

Runs in: each server process, and the fork server.  May import: ``contract``, uvicorn,
prometheus_client and the app; never ``supervision`` (the app must not depend on the supervisor's internals).
"""
