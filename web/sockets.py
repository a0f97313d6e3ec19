"""The graphql-transport-ws handler with Parley's rules for sockets.

* Every error sent on a socket carries ``extensions.code`` (Strawberry's own protocol errors,
  such as the subscription limit, come without one).
* The subscription limit per connection answers ``BAD_USER_INPUT``.
* A user's sockets are counted across processes (``services.connections``); past the limit the
  connection is refused with close code 4429 at ``connection_init``.
* The socket can be closed from outside (tokens revoked, user deleted): its operations are
  cancelled first, then it closes with 4403.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import BaseGraphQLTransportWSHandler
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
    SubscribeMessage,
)

from services.errors import ParleyError, TooManyConnections

CLOSE_TOO_MANY = 4429
CLOSE_FORBIDDEN = 4403
CLOSE_INTERNAL = 1011
log = logging.getLogger("parley.sockets")
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def strip_suggestions(message: str) -> str:
    """Without "Did you mean ...?": field names must not leak when introspection is off."""
    return _SUGGESTION.sub("", message)


class ParleyTransportWS(BaseGraphQLTransportWSHandler[Any, None]):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The view's on_ws_connect registers the socket with this closer.
        self.context.close_socket = self.terminate

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except TooManyConnections as exc:
            await self.websocket.close(code=CLOSE_TOO_MANY, reason=exc.message[:120])
        except ParleyError as exc:  # e.g. the database is unreachable: the client may retry
            await self.websocket.close(code=CLOSE_INTERNAL, reason=f"{exc.code}: {exc.message}"[:120])
        except Exception:
            log.exception("connection_init failed")
            await self.websocket.close(code=CLOSE_INTERNAL, reason="internal server error")

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            error = GraphQLError(
                f"at most {limit} subscriptions per connection; complete one first",
                extensions={"code": "BAD_USER_INPUT"},
            )
            await self.send_message({"id": message["id"], "type": "error", "payload": [error.formatted]})
            return
        await super().handle_subscribe(message)

    async def send_message(self, message: Message) -> None:
        if message["type"] == "error":
            _add_codes(message["payload"], "BAD_USER_INPUT", self._hide_suggestions)
        elif message["type"] == "next" and message["payload"].get("errors"):
            _add_codes(message["payload"]["errors"], "INTERNAL_SERVER_ERROR", self._hide_suggestions)
        await super().send_message(message)

    @property
    def _hide_suggestions(self) -> bool:
        return not self.context.settings.introspection

    async def shutdown(self) -> None:
        await super().shutdown()
        await self.context.release_socket()

    async def terminate(self, reason: str) -> None:
        """Close the socket from outside: stop its operations, then close with 4403."""
        for operation_id in list(self.operations):
            await self.cleanup_operation(operation_id)
        await self.websocket.close(code=CLOSE_FORBIDDEN, reason=reason[:120])


def _add_codes(errors: Any, default: str, hide_suggestions: bool) -> None:
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        extensions = error.setdefault("extensions", {})
        if not extensions.get("code"):
            extensions["code"] = default
            if default == "INTERNAL_SERVER_ERROR":
                error["message"] = "Internal server error"
        if hide_suggestions and isinstance(error.get("message"), str):
            error["message"] = strip_suggestions(error["message"])
