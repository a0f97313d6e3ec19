"""Domain errors. Every error a client may see derives from :class:`ParleyError`.

The tree (``code`` is what reaches clients as ``extensions.code``)::

    ParleyError
    ├── Unauthenticated      UNAUTHENTICATED
    ├── Forbidden            FORBIDDEN
    ├── NotFound             NOT_FOUND
    ├── BadInput             BAD_USER_INPUT
    ├── Conflict             CONFLICT
    ├── RunInProgress        RUN_IN_PROGRESS
    ├── ServiceUnavailable   SERVICE_UNAVAILABLE
    ├── SubscriberTooSlow    SUBSCRIBER_TOO_SLOW  (a stream dropped for falling behind)
    └── TooManyConnections   TOO_MANY_CONNECTIONS (PARLEY_MAX_CONNECTIONS_PER_USER open sockets)
"""

from __future__ import annotations

from typing import ClassVar


class ParleyError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class SubscriberTooSlow(ParleyError):
    """The subscriber fell too far behind the events; it resumes with ``afterSequence``."""

    code = "SUBSCRIBER_TOO_SLOW"


class TooManyConnections(ParleyError):
    """The user already holds PARLEY_MAX_CONNECTIONS_PER_USER open WebSockets."""

    code = "TOO_MANY_CONNECTIONS"
