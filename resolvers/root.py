"""The root types, bound to their resolvers, and the schema built from them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from functools import partial
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig

from resolvers import agents, attachments, mapping, memory, messages, runs, sessions, stats, subscriptions
from resolvers.context import Context
from resolvers.documents import OneOperation, ParserCacheOrErrors
from resolvers.operations import Operations
from schema.agent import Agent
from schema.attachment import Attachment
from schema.enums import MemoryScope
from schema.errors import Authenticate, ErrorCodes, is_expected
from schema.events import AgentEvent
from schema.fields import described_field, described_mutation
from schema.inputs import (
    AgentInput,
    AgentUpdateInput,
    CreateSessionInput,
    MessageInput,
    SessionFilter,
    UpdateSessionInput,
)
from schema.memory import MemoryEntry
from schema.message import Message, MessageConnection
from schema.payloads import SendMessagePayload
from schema.run import Run
from schema.session import SearchHit, Session, SessionConnection
from schema.stats import AgentUsage, UsageStats
from schema.tools import ApprovalDecision
from schema.user import User
from services.settings import Settings

Info = strawberry.Info[Context, None]
# ids of the caller's uploads (uploadAttachment), at most 10 per message
_Attachments = Annotated[
    list[uuid.UUID] | None,
    strawberry.argument(description="ids of the caller's uploads (uploadAttachment), at most 10"),
]


@strawberry.type
class Query:
    @strawberry.field
    def viewer(self, info: Info) -> User:
        return mapping.user(info.context.user)

    @strawberry.field
    async def agents(self, info: Info) -> list[Agent]:
        return await agents.agent_list(info.context)

    @strawberry.field
    async def agent(self, info: Info, name: str) -> Agent | None:
        return await agents.agent(info.context, name)

    @strawberry.field
    async def session(
        self, info: Info, id: uuid.UUID | None = None, external_id: str | None = None
    ) -> Session | None:
        return await sessions.session(info.context, id, external_id)

    @described_field("most recent activity first")
    async def sessions(
        self,
        info: Info,
        first: int | None = 20,
        after: str | None = None,
        filter: SessionFilter | None = None,
    ) -> SessionConnection:
        return await sessions.session_list(info.context, first, after, filter)

    @strawberry.field
    async def messages(
        self,
        info: Info,
        session_id: uuid.UUID,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> MessageConnection:
        return await messages.message_list(info.context, session_id, first, after, last, before)

    @strawberry.field
    async def run(self, info: Info, id: uuid.UUID) -> Run | None:
        return await runs.run(info.context, id)

    @strawberry.field
    async def stats(self, info: Info, days: int | None = 30) -> UsageStats:
        return await stats.usage(info.context, 30 if days is None else days)

    @described_field("admins: everyone's; others: their own")
    async def popular_agents(
        self, info: Info, days: int | None = 30, limit: int | None = 10
    ) -> list[AgentUsage]:
        return await stats.popular_agents(
            info.context, 30 if days is None else days, 10 if limit is None else limit
        )

    @strawberry.field
    async def memory(
        self, info: Info, scope: MemoryScope | None = MemoryScope.USER, session_id: uuid.UUID | None = None
    ) -> list[MemoryEntry]:
        return await memory.entries(info.context, scope or MemoryScope.USER, session_id)

    @strawberry.field
    async def search_messages(
        self, info: Info, query: str, first: int | None = 20, session_id: uuid.UUID | None = None
    ) -> list[SearchHit]:
        return await stats.search_messages(info.context, query, 20 if first is None else first, session_id)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def create_session(self, info: Info, input: CreateSessionInput) -> Session:
        return await sessions.create(info.context, input)

    @strawberry.mutation
    async def get_or_create_session(
        self, info: Info, external_id: str, agent_name: str | None = None
    ) -> Session:
        return await sessions.get_or_create(info.context, external_id, agent_name)

    @strawberry.mutation
    async def update_session(self, info: Info, id: uuid.UUID, input: UpdateSessionInput) -> Session:
        return await sessions.update(info.context, id, input)

    @strawberry.mutation
    async def update_session_state(
        self,
        info: Info,
        id: uuid.UUID,
        set: JSON | None = None,
        unset: list[str] | None = None,
        expected_version: int | None = None,
    ) -> Session:
        return await sessions.update_state(info.context, id, set, unset, expected_version)

    @strawberry.mutation
    async def clear_session_history(self, info: Info, id: uuid.UUID) -> Session:
        return await sessions.clear_history(info.context, id)

    @strawberry.mutation
    async def delete_session(self, info: Info, id: uuid.UUID) -> bool:
        return await sessions.delete(info.context, id)

    @strawberry.mutation
    async def send_message(
        self,
        info: Info,
        session_id: uuid.UUID,
        content: str,
        metadata: JSON | None = None,
        idempotency_key: str | None = None,
        attachments: _Attachments = None,
    ) -> SendMessagePayload:
        return await runs.send_message(
            info.context, session_id, content, metadata, idempotency_key, attachments
        )

    @described_mutation(
        "a file of a GraphQL multipart request: a PNG, JPEG, GIF or WebP image, a PDF, or UTF-8 text "
        "(plain, Markdown, CSV, JSON), at most PARLEY_MAX_ATTACHMENT_BYTES; send its id with a message"
    )
    async def upload_attachment(self, info: Info, file: Upload) -> Attachment:
        return await attachments.upload(info.context, file)

    @described_mutation(
        "content sent as a new version of an earlier USER message: the new message becomes its "
        "sibling, the head moves to it and the agent replies"
    )
    async def edit_message(
        self,
        info: Info,
        message_id: uuid.UUID,
        content: str,
        metadata: JSON | None = None,
        idempotency_key: str | None = None,
        attachments: _Attachments = None,
    ) -> SendMessagePayload:
        return await runs.edit_message(
            info.context, message_id, content, metadata, idempotency_key, attachments
        )

    @described_mutation(
        "a new reply to the USER message named (or to the one an ASSISTANT message answers): "
        "a sibling of the old reply; the head moves to it"
    )
    async def regenerate(
        self, info: Info, message_id: uuid.UUID, idempotency_key: str | None = None
    ) -> SendMessagePayload:
        return await runs.regenerate(info.context, message_id, idempotency_key)

    @described_mutation(
        "make the branch through the message active: the head becomes the newest message reachable "
        "from it (the most recently created child at each step)"
    )
    async def switch_branch(self, info: Info, message_id: uuid.UUID) -> Session:
        return await sessions.switch_branch(info.context, message_id)

    @described_mutation(
        "a new session of the same user and agent whose history is a copy of the path up to and "
        "including the message; state and SESSION memory are copied too"
    )
    async def fork_session(self, info: Info, message_id: uuid.UUID, title: str | None = None) -> Session:
        return await sessions.fork(info.context, message_id, title)

    @described_mutation(
        "resumes a WAITING_APPROVAL run: approved calls run, denied ones return `message` (or a "
        "default refusal) to the model as the tool's result; returns once the run has ended or paused again"
    )
    async def resolve_approvals(
        self, info: Info, run_id: uuid.UUID, decisions: list[ApprovalDecision]
    ) -> Run:
        return await runs.resolve(info.context, run_id, decisions)

    @strawberry.mutation
    async def add_messages(
        self, info: Info, session_id: uuid.UUID, messages: list[MessageInput]
    ) -> list[Message]:
        return await _messages.add_messages(info.context, session_id, messages)

    @strawberry.mutation
    async def cancel_run(self, info: Info, id: uuid.UUID) -> Run:
        return await runs.cancel_run(info.context, id)

    @strawberry.mutation
    async def save_memory(
        self,
        info: Info,
        key: str,
        value: JSON,
        scope: MemoryScope | None = MemoryScope.USER,
        session_id: uuid.UUID | None = None,
    ) -> MemoryEntry:
        return await memory.save(info.context, key, value, scope or MemoryScope.USER, session_id)

    @strawberry.mutation
    async def delete_memory(
        self,
        info: Info,
        key: str,
        scope: MemoryScope | None = MemoryScope.USER,
        session_id: uuid.UUID | None = None,
    ) -> bool:
        return await memory.delete(info.context, key, scope or MemoryScope.USER, session_id)

    @strawberry.mutation
    async def clear_memory(
        self, info: Info, scope: MemoryScope | None = None, session_id: uuid.UUID | None = None
    ) -> int:
        return await memory.clear(info.context, scope, session_id)

    @described_mutation("admin")
    async def create_agent(self, info: Info, input: AgentInput) -> Agent:
        return await agents.create(info.context, input)

    @described_mutation("admin")
    async def update_agent(self, info: Info, name: str, input: AgentUpdateInput) -> Agent:
        return await agents.update(info.context, name, input)

    @described_mutation("admin")
    async def cleanup_sessions(self, info: Info, inactive_days: int) -> int:
        return await stats.cleanup(info.context, inactive_days)


_messages = messages  # the mutation's argument named `messages` shadows the module inside it


@strawberry.type
class Subscription:
    # The resolvers' generators are returned as they are: no generator layer more per event.
    @strawberry.subscription
    def chat(
        self,
        info: Info,
        session_id: uuid.UUID,
        content: str,
        metadata: JSON | None = None,
        idempotency_key: str | None = None,
        attachments: _Attachments = None,
    ) -> AsyncGenerator[AgentEvent]:
        return subscriptions.chat(info.context, session_id, content, metadata, idempotency_key, attachments)

    @strawberry.subscription
    def edit_message(
        self,
        info: Info,
        message_id: uuid.UUID,
        content: str,
        metadata: JSON | None = None,
        idempotency_key: str | None = None,
        attachments: _Attachments = None,
    ) -> AsyncGenerator[AgentEvent]:
        return subscriptions.edit_message(
            info.context, message_id, content, metadata, idempotency_key, attachments
        )

    @strawberry.subscription
    def regenerate(
        self, info: Info, message_id: uuid.UUID, idempotency_key: str | None = None
    ) -> AsyncGenerator[AgentEvent]:
        return subscriptions.regenerate(info.context, message_id, idempotency_key)

    @strawberry.subscription
    def session_events(
        self, info: Info, session_id: uuid.UUID, after_sequence: int | None = None
    ) -> AsyncGenerator[AgentEvent]:
        return subscriptions.session_events(info.context, session_id, after_sequence)


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        # Strawberry logs every error with its traceback; NOT_FOUND or a bad token is no news.
        super().process_errors([e for e in errors if not is_expected(e)], execution_context)


def build_schema(settings: Settings, execution_context_class: type[Any] | None = None) -> strawberry.Schema:
    """The schema; ``execution_context_class``: graphql-core's executor for it (the web layer
    passes one that renders subscription events by compiled projection)."""
    # The limiters' rule classes are made once: new classes per request would make every
    # request miss the validation cache (its key includes the rules).
    rules = [
        *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    # Factories, not instances: every operation gets its own extension objects.
    extensions: list[Any] = [
        partial(ErrorCodes, hide_suggestions=not settings.introspection),
        partial(AddValidationRules, rules),
        partial(MaxTokensLimiter, max_token_count=settings.max_query_tokens),
        partial(ParserCacheOrErrors, maxsize=256),
        partial(ValidationCache, maxsize=256),
        OneOperation,  # after the validation cache: its verdict on the document alone is not enough
        Authenticate,
        Operations,  # after Authenticate: the rate limit counts the caller's operations
    ]
    if not settings.introspection:
        extensions.append(DisableIntrospection)
    return _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
        execution_context_class=execution_context_class,
    )


def print_sdl(settings: Settings) -> str:
    return build_schema(settings).as_str() + "\n"
