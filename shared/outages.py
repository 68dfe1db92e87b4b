"""Which dependency an exception says is down: the database, the broker, or neither.

One place decides it for every edge: the HTTP API turns an outage into ``503`` problem details
with ``Retry-After`` (``shared.problems``), the NATS commands into a typed ``unavailable`` reply
(``shared.bus``), the pages into a "temporarily unavailable, your work is kept" page, and the
background loops wait it out (``DATABASE_OR_BROKER_DOWN``). Anything else stays a bug: a 500,
logged, not hidden behind a retryable answer.
"""

from __future__ import annotations

import enum
import types

import asyncpg
import nats.errors
import nats.js.errors

from shared.errors import Unavailable

# Seconds a client is told to wait before trying again: PostgreSQL restarts and NATS reconnects
# (every 0.5 s) in a few seconds; a shorter hint only adds load while it comes back.
RETRY_AFTER_SECONDS = 5

# What a background loop waits out in place (the outbox relay, the workers): broad on purpose,
# a loop that retries a bug costs a log line, one that dies silently loses events. asyncpg
# raises InterfaceError, not a PostgresError, when the connection dies inside a transaction.
DATABASE_OR_BROKER_DOWN = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    TimeoutError,
)


class Dependency(enum.StrEnum):
    """What was unavailable, as an answer may name it (never an address or a query)."""

    DATABASE = "database"
    BROKER = "broker"
    SERVICE = "service"  # a connection failed, and nothing says to what

    @property
    def heading(self) -> str:
        return {
            Dependency.DATABASE: "Database unavailable",
            Dependency.BROKER: "Message broker unavailable",
            Dependency.SERVICE: "Service unavailable",
        }[self]

    @property
    def detail(self) -> str:
        what = {
            Dependency.DATABASE: "This node's database",
            Dependency.BROKER: "This node's message broker (NATS)",
            Dependency.SERVICE: "A service this node depends on",
        }[self]
        return (
            f"{what} is not reachable at the moment; nothing was changed by this request."
            f" Try again in {RETRY_AFTER_SECONDS} seconds (same Idempotency-Key for a create)."
        )


class DependencyDown(Unavailable):
    """``Unavailable`` naming the dependency that is down: its problem details and NATS error
    reply carry ``dependency``, and say nothing of the dependency's address or subject."""

    def __init__(self, dependency: Dependency) -> None:
        super().__init__(dependency.detail)
        self.dependency = dependency
        self.title = dependency.heading

    def extensions(self) -> dict[str, object]:
        return {"dependency": self.dependency.value}


# The SQLSTATE classes that mean "the server cannot serve now", not "this query is wrong":
# 08 connection exceptions, 57P01-57P03 shutdown / starting up, 53 insufficient resources
# (too many connections, disk full).
_DATABASE_DOWN: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InsufficientResourcesError,
)
# Client-side InterfaceErrors that are bugs (a wrong argument count, a configuration error, a
# connection used by two tasks at once), not outages: only a closed connection or pool is one.
_CLOSED = ("closed", "closing")
_INTERRUPTED = "cannot switch to state"
_BROKER_DOWN: tuple[type[Exception], ...] = (
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.NoRespondersError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.TimeoutError,
    nats.js.errors.ServiceUnavailableError,
)
_CONNECTION_LOST = (ConnectionError, TimeoutError)


def unavailable(exc: BaseException) -> Dependency | None:
    """The dependency ``exc`` says is down, or None if it is not an outage (a bug, bad input).

    Follows ``__cause__``/``__context__``: a wrapper raised while handling an outage is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _direct(current)
        if found is not None:
            return found
        current = current.__cause__ or current.__context__
    return None


def _direct(exc: BaseException) -> Dependency | None:
    if isinstance(exc, _DATABASE_DOWN):
        return Dependency.DATABASE
    if isinstance(exc, asyncpg.InterfaceError):
        if isinstance(
            exc, asyncpg.ClientConfigurationError | asyncpg.UnsupportedClientFeatureError
        ):
            return None
        return Dependency.DATABASE if any(w in str(exc) for w in _CLOSED) else None
    if isinstance(exc, asyncpg.InternalClientError) and _INTERRUPTED in str(exc):
        # The protocol still in the middle of an operation the server's crash cut short, seen
        # at the next COMMIT or query on that connection (the chaos suite's PostgreSQL kills).
        return Dependency.DATABASE
    if isinstance(exc, _BROKER_DOWN):
        return Dependency.BROKER
    if isinstance(exc, OSError):
        # A refused connection, a timeout (a pool's acquire), a socket file that vanished with
        # its server: which dependency is told by the code it came from.
        origin = _origin(exc.__traceback__)
        if origin is not None:
            return origin
        return Dependency.SERVICE if isinstance(exc, _CONNECTION_LOST) else None
    return None


def _origin(tb: types.TracebackType | None) -> Dependency | None:
    """The dependency whose client library raised, from the deepest frame that names one."""
    found: Dependency | None = None
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module == "asyncpg" or module.startswith("asyncpg."):
            found = Dependency.DATABASE
        elif module == "nats" or module.startswith("nats."):
            found = Dependency.BROKER
        tb = tb.tb_next
    return found
