"""Domain errors, and the one place that classifies infrastructure failures.

Every error a client may see derives from :class:`ParleyError`; ``code`` is what reaches
clients as ``extensions.code``::

    ParleyError
    ├── Unauthenticated      UNAUTHENTICATED
    ├── Forbidden            FORBIDDEN
    ├── NotFound             NOT_FOUND
    ├── BadInput             BAD_USER_INPUT
    ├── Conflict             CONFLICT
    ├── RunInProgress        RUN_IN_PROGRESS
    ├── ServiceUnavailable   SERVICE_UNAVAILABLE  (the database is unreachable, or the process is stopping)
    ├── SubscriberTooSlow    SUBSCRIBER_TOO_SLOW  (a stream dropped for falling behind)
    ├── TooManyConnections   TOO_MANY_CONNECTIONS (PARLEY_MAX_CONNECTIONS_PER_USER open sockets)
    ├── QuotaExceeded        QUOTA_EXCEEDED       (the user's daily budget is spent)
    └── RateLimited          RATE_LIMITED         (too many operations; ``extensions.retryAfter``)

:func:`infrastructure_failure` tells what a driver or ORM exception means (the database is
unavailable, or it refused a value). It looks at standard attributes only (OS errors, the
SQLSTATE every PostgreSQL error carries), so this module needs neither the driver nor the ORM:
the GraphQL layer, the CLI, runs and the pool all ask it.
"""

from __future__ import annotations

from typing import ClassVar, Literal


class ParleyError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, object]:
        """What clients get in ``extensions`` besides ``code``."""
        return {}


class Unauthenticated(ParleyError):
    code = "UNAUTHENTICATED"


class Forbidden(ParleyError):
    code = "FORBIDDEN"


class NotFound(ParleyError):
    code = "NOT_FOUND"

    @classmethod
    def of(cls, what: str, ident: object) -> NotFound:
        return cls(f"{what} {ident} not found")


class BadInput(ParleyError):
    code = "BAD_USER_INPUT"


class Conflict(ParleyError):
    code = "CONFLICT"


class RunInProgress(ParleyError):
    code = "RUN_IN_PROGRESS"

    def __init__(self, message: str = "the session is busy with a reply; retry when it ends") -> None:
        super().__init__(message)


class ServiceUnavailable(ParleyError):
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str = "the database cannot be reached right now; retry") -> None:
        super().__init__(message)


class SubscriberTooSlow(ParleyError):
    """The subscriber fell too far behind the events; it resumes with ``afterSequence``."""

    code = "SUBSCRIBER_TOO_SLOW"


class TooManyConnections(ParleyError):
    """The user already holds PARLEY_MAX_CONNECTIONS_PER_USER open WebSockets."""

    code = "TOO_MANY_CONNECTIONS"


class QuotaExceeded(ParleyError):
    """The user's PARLEY_USER_DAILY_TOKENS / PARLEY_USER_DAILY_COST over the last 24 hours is spent."""

    code = "QUOTA_EXCEEDED"


class RateLimited(ParleyError):
    """More than PARLEY_RATE_LIMIT operations a minute; ``retry_after`` seconds until the next one."""

    code = "RATE_LIMITED"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many operations; retry in {retry_after} s")
        self.retry_after = retry_after

    @property
    def extensions(self) -> dict[str, object]:
        return {"retryAfter": self.retry_after}


class RunGone(Exception):
    """Internal: a run's row was ended elsewhere or deleted; its process must stop writing."""


Failure = Literal["unavailable", "refused_value"]

# SQLSTATE classes: 08 connection exception, 53 insufficient resources (too many connections),
# 57P operator intervention (shutdown, cannot connect now), 58 system error (I/O), and a
# database that cannot be used as configured: 28 authorization, 3D000 no such database.
_UNAVAILABLE_STATES = ("08", "53", "57P", "58", "28", "3D000")
_REFUSED_VALUE_STATES = ("22",)  # data exception: invalid text, out of range, ...
# The driver's client-side errors that mean the link is gone (no SQLSTATE of their own).
_LINK_ERRORS = {"InterfaceError", "ConnectionDoesNotExistError", "DBConnectionError", "PoolClosedError"}


def infrastructure_failure(exc: BaseException | None) -> tuple[Failure, BaseException] | None:
    """What ``exc`` (or the exception behind it) says about the database, if anything.

    ``unavailable``: the database is down, restarting, out of connections or the link broke;
    the client may retry. ``refused_value``: PostgreSQL or the driver refused a value (text it
    cannot store, a number out of range); the client sent bad input. Drivers and the ORM wrap
    each other, so the cause chain is followed.
    """
    for _ in range(10):
        if exc is None:
            return None
        if isinstance(exc, ServiceUnavailable | OSError | TimeoutError):
            return "unavailable", exc
        if isinstance(exc, UnicodeError):
            return "refused_value", exc
        state = getattr(exc, "sqlstate", None)
        if isinstance(state, str):
            if state.startswith(_UNAVAILABLE_STATES):
                return "unavailable", exc
            if state.startswith(_REFUSED_VALUE_STATES):
                return "refused_value", exc
        name = type(exc).__name__
        if name in _LINK_ERRORS:
            return "unavailable", exc
        if name == "DataError":  # the driver could not encode a value for PostgreSQL
            return "refused_value", exc
        exc = exc.__cause__ or exc.__context__
    return None


def is_unavailable(exc: BaseException | None) -> bool:
    found = infrastructure_failure(exc)
    return found is not None and found[0] == "unavailable"
