"""Which incidents are effects of which: the possible causes grouped into independent incidents, one root each.

Issue #14: a log with two incidents (a pool exhausted by a lock, then a database
outage seconds after it cleared) got one root cause, the outage, which "explained"
the earlier exhaustion.  An effect is explained by a cause only when

- its kind can follow from the cause's kind (``_EFFECTS``): an outage makes
  requests fail and pools run dry, a crash loop leaves a start unfinished;
- the cause came first and was still under way when the effect began (for two
  views of one pool episode, saturation then exhaustion, overlapping is enough);
- the effect's own diagnosis does not name another cause: a pool exhausted by
  ``lock_contention`` is not an outage's effect, nor is a crash loop on an
  ``ImportError``;
- both belong to the same supervisor, when both belong to one.

Pure logic over ``Incident`` records; ``verdict`` scores them and words the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from supervisor.contract import diagnoses
from supervisor.explain.model import Incident

SKEW_S = 2.0  # lines of different processes interleave: an effect logged this much before its cause is still after it
GRACE_S = 5.0  # an effect that starts this soon after its cause ended is still its effect (requests in flight)
EPISODE_S = 60.0  # two views of one pool episode (saturated, then exhausted) are at most this far apart

# A pool diagnosis that names its own cause: the pool ran dry because of what the database or the app did.
SPECIFIC_POOL_DIAGNOSES = frozenset({diagnoses.LOCK_CONTENTION, diagnoses.CONNECTION_LEAK,
                                     diagnoses.LONG_TRANSACTIONS, diagnoses.SLOW_QUERIES})
_DATABASE_ERRORS = ("OperationalError", "could not connect", "Connection refused", "connection refused",
                    "server closed the connection", "InterfaceError", "the database system is")
_POOL = frozenset({"pool_exhausted", "pool_saturated", "pool_timeout", "pool_leak_suspected"})


class HasIncident(Protocol):
    """A possible cause: the incident behind it (a verdict's candidate)."""

    @property
    def incident(self) -> Incident: ...


def _database_error(text: object) -> bool:
    return isinstance(text, str) and any(marker in text for marker in _DATABASE_ERRORS)


def _outage_effect(effect: Incident) -> bool:
    """Whether ``effect``'s own facts allow the database being down as its cause."""
    facts = effect.facts
    if effect.kind in _POOL:
        return facts.get("diagnosis") not in SPECIFIC_POOL_DIAGNOSES
    if effect.kind in ("restarts", "crash_loop", "start_incomplete"):
        return facts.get("exception") is None or _database_error(facts.get("exception"))
    if effect.kind == "app_errors":
        return any(_database_error(name) for name in facts.get("exceptions", {}))
    if effect.kind == "reload_failed":
        failure = facts.get("failure") or facts.get("reload_failed") or {}
        return failure.get("exit_code") == 69 or _database_error(failure.get("error"))
    return effect.kind in ("http_errors", "stop")


def _pool_effect(cause: Incident, effect: Incident) -> bool:
    """A weaker view of the same pool episode: saturation before exhaustion, the timeouts, the leak warnings."""
    if effect.kind == "http_errors":
        return True
    mine, theirs = cause.facts.get("diagnosis"), effect.facts.get("diagnosis")
    if effect.kind == "pool_leak_suspected":
        return mine == diagnoses.CONNECTION_LEAK
    return theirs in (None, mine, diagnoses.UNDERSIZED_POOL)


def _start_failure_effect(cause: Incident, effect: Incident) -> bool:
    failure = cause.facts.get("failure") or {}
    return effect.kind == "db_outage" and failure.get("exit_code") == 69


# cause kind → the kinds it can explain, and the test of the effect's own facts.
_EFFECTS: dict[str, tuple[frozenset[str], Callable[[Incident, Incident], bool]]] = {
    "db_outage": (frozenset({*_POOL, "http_errors", "restarts", "crash_loop", "app_errors", "reload_failed",
                             "start_incomplete", "stop"}), lambda _c, e: _outage_effect(e)),
    "pool_exhausted": (frozenset({"pool_saturated", "pool_timeout", "pool_leak_suspected", "http_errors"}),
                       _pool_effect),
    "pool_leak_suspected": (frozenset({"pool_saturated", "pool_timeout"}), _pool_effect),
    "start_failed": (frozenset({"db_outage"}), _start_failure_effect),
    "crash_loop": (frozenset({"start_incomplete", "app_errors", "http_errors"}), lambda _c, _e: True),
    "restarts": (frozenset({"http_errors", "app_errors"}), lambda _c, _e: True),
    "hang": (frozenset({"http_errors", "restarts"}), lambda _c, e: e.kind == "http_errors" or "SIGKILL" in str(
        e.facts.get("causes", {}))),
}


def _same_replica(cause: Incident, effect: Incident) -> bool:
    if cause.supervisor is None or effect.supervisor is None:
        return True  # database and pool incidents belong to every replica that shares the database
    return (cause.supervisor, cause.origin) == (effect.supervisor, effect.origin)


def _in_time(cause: Incident, effect: Incident) -> bool:
    """The cause came first and was still under way (within ``GRACE_S``) when the effect began."""
    if cause.start is None or effect.start is None:
        return False
    end = cause.end if cause.end is not None else cause.start
    if cause.kind in _POOL and effect.kind in _POOL:  # one episode seen twice: overlapping is enough
        return cause.start - EPISODE_S <= effect.start <= end + EPISODE_S
    return cause.start - SKEW_S <= effect.start <= end + GRACE_S


def explains(cause: Incident, effect: Incident) -> bool:
    """Whether ``effect`` is accounted for by ``cause`` (see the module's docstring)."""
    if cause is effect:
        return False
    rule = _EFFECTS.get(cause.kind)
    if rule is None or effect.kind not in rule[0]:
        return False
    return _same_replica(cause, effect) and _in_time(cause, effect) and rule[1](cause, effect)


C = TypeVar("C", bound=HasIncident)


def independent(candidates: Sequence[C], rank: Callable[[C], tuple[float, ...]]) -> list[tuple[C, list[C]]]:
    """The roots (explained by no other candidate), best ``rank`` first, each with what it explains.

    An effect explained by several roots is listed under the best-ranked one.  A
    chain (an outage explains an exhaustion that explains the saturation before it)
    is followed, so an effect's effects belong to the same root.
    """
    explained_by: dict[int, list[int]] = {i: [] for i in range(len(candidates))}
    for i, cause in enumerate(candidates):
        for j, effect in enumerate(candidates):
            if explains(cause.incident, effect.incident):
                explained_by[j].append(i)
    roots = [i for i, causes in explained_by.items() if not causes]
    if not roots and candidates:  # explanations in a circle: the best-ranked one is the root
        roots = [max(range(len(candidates)), key=lambda i: rank(candidates[i]))]
    roots.sort(key=lambda i: rank(candidates[i]), reverse=True)
    owner: dict[int, int] = {}
    for root in roots:
        stack = [root]
        while stack:
            node = stack.pop()
            for j, causes in explained_by.items():
                if node in causes and j not in owner and j not in roots:
                    owner[j] = root
                    stack.append(j)
    return [(candidates[r], [candidates[j] for j in sorted(owner) if owner[j] == r]) for r in roots]
