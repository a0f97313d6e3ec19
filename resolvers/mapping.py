"""Domain objects → GraphQL types: the one place rows become what clients see."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

from strawberry.scalars import JSON

import models
from schema.agent import Agent
from schema.enums import MemoryScope, MessageRole, RunStatus
from schema.events import (
    AgentEvent,
    ApprovalRequested,
    MessageAdded,
    RunFinished,
    RunStarted,
    TextDelta,
    TextSnapshot,
    ThinkingDelta,
    ToolCallFinished,
    ToolCallStarted,
)
from schema.memory import MemoryEntry
from schema.message import ErrorInfo, Message, MessageConnection, MessageEdge, ToolCall, Usage
from schema.pagination import PageInfo
from schema.payloads import SendMessagePayload
from schema.run import Run
from schema.session import SearchHit, Session, SessionConnection, SessionEdge
from schema.stats import AgentUsage, SessionStats, UsageStats
from schema.tools import ApprovalRequest, McpServer, ToolInfo
from schema.user import User
from services import events, figures, search, stats, tools
from services.pagination import Page
from services.runs import TurnResult
from services.transcript import MessageRow

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T")


def user(row: models.User) -> User:
    return User(id=row.id, name=row.name, is_admin=row.is_admin)


def agent(row: models.Agent) -> Agent:
    return Agent(
        id=row.id,
        name=row.name,
        model=row.model,
        instructions=row.instructions,
        memory_enabled=row.memory_enabled,
        history_limit=row.history_limit,
        created_at=row.created_at,
        mcp_servers=[
            McpServer(
                url=raw["url"],
                allowed_tools=raw.get("allowed_tools"),
                tool_prefix=raw.get("tool_prefix"),
                has_headers=bool(raw.get("headers")),
            )
            for raw in row.mcp_servers
        ],
        approval_required=list(row.approval_required),
    )


def tool_info(info: tools.ToolInfo) -> ToolInfo:
    return ToolInfo(
        name=info.name,
        description=info.description,
        parameters=JSON(info.parameters),
        requires_approval=info.requires_approval,
        server=info.server,
    )


def approval_request(request: events.ApprovalRequest) -> ApprovalRequest:
    return ApprovalRequest(
        tool_call_id=request.tool_call_id, tool_name=request.tool_name, arguments=JSON(request.arguments)
    )


def session(row: models.Session) -> Session:
    return Session(
        id=row.id,
        external_id=row.external_id,
        title=row.title,
        state=JSON(row.state),
        state_version=row.state_version,
        metadata=JSON(row.metadata),
        is_active=row.is_active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_activity_at=row.last_activity_at,
        message_count=row.message_count,
        head_message_id=row.head_id,
        agent_id=row.agent_id,
        forked_from_id=row.forked_from_id,
    )


def _usage(requests: int | None, input_tokens: int | None, output_tokens: int | None) -> Usage | None:
    if input_tokens is None and output_tokens is None:
        return None
    return Usage(requests=requests or 0, input_tokens=input_tokens or 0, output_tokens=output_tokens or 0)


def message(row: MessageRow) -> Message:
    return Message(
        id=row.id,
        session_id=row.session_id,
        sequence=row.sequence,
        role=MessageRole(row.role.value),
        content=row.content,
        tool_call_id=row.tool_call_id,
        tool_name=row.tool_name,
        run_id=row.run_id,
        model=row.model,
        cost=row.cost,
        processing_time_ms=row.processing_time_ms,
        metadata=JSON(row.metadata),
        created_at=row.created_at,
        tool_calls=[
            ToolCall(id=c["id"], name=c["name"], arguments=c.get("arguments")) for c in row.tool_calls or []
        ],
        usage=_usage(row.requests, row.input_tokens, row.output_tokens)
        if row.role is models.Role.ASSISTANT
        else None,
        parent_id=row.parent_id,
    )


def run(row: models.Run) -> Run:
    return Run(
        id=row.id,
        session_id=row.session_id,
        status=RunStatus(row.status.value),
        model=row.model,
        started_at=row.started_at,
        finished_at=row.finished_at,
        cost=row.cost,
        usage=_usage(row.requests, row.input_tokens, row.output_tokens),
        error=ErrorInfo(code=row.error_code, message=row.error_message or "") if row.error_code else None,
        user_message_id=row.user_message_id,
        reply_id=row.reply_id,
        pending_approvals=[approval_request(events.ApprovalRequest.stored(r)) for r in row.pending_approvals],
    )


def memory_entry(row: models.MemoryEntry) -> MemoryEntry:
    return MemoryEntry(
        key=row.key,
        value=JSON(row.value),
        scope=MemoryScope(row.scope.value),
        session_id=row.session_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _page_info(page: Page[Any]) -> PageInfo:
    return PageInfo(
        has_next_page=page.has_next,
        has_previous_page=page.has_previous,
        start_cursor=page.cursors[0] if page.cursors else None,
        end_cursor=page.cursors[-1] if page.cursors else None,
    )


def message_page(page: Page[MessageRow]) -> MessageConnection:
    edges = [MessageEdge(cursor=c, node=message(m)) for c, m in zip(page.cursors, page.items, strict=True)]
    return MessageConnection(edges=edges, page_info=_page_info(page), total_count=page.total_count)


def session_page(page: Page[models.Session]) -> SessionConnection:
    edges = [SessionEdge(cursor=c, node=session(s)) for c, s in zip(page.cursors, page.items, strict=True)]
    return SessionConnection(edges=edges, page_info=_page_info(page), total_count=page.total_count)


def _derived(cls: type[T], value: DataclassInstance) -> T:
    """A GraphQL type that derives from ``value``'s dataclass, with the same field values."""
    return cls(**{f.name: getattr(value, f.name) for f in dataclasses.fields(value)})


def session_stats(value: figures.SessionStats) -> SessionStats:
    return _derived(SessionStats, value)


def usage_stats(value: figures.UsageStats) -> UsageStats:
    return _derived(UsageStats, value)


def agent_usage(value: stats.AgentUsage) -> AgentUsage:
    return AgentUsage(
        agent=agent(value.agent), sessions=value.sessions, users=value.users, messages=value.messages
    )


def search_hit(hit: search.Hit) -> SearchHit:
    return SearchHit(
        message=message(hit.message), session=session(hit.session), snippet=hit.snippet, rank=hit.rank
    )


def turn(result: TurnResult) -> SendMessagePayload:
    return SendMessagePayload(
        run=run(result.run),
        user_message=message(result.user_message),
        reply=message(result.reply) if result.reply is not None else None,
        messages=[message(m) for m in result.messages],
    )


def event(value: events.AgentEvent) -> AgentEvent:
    """A streamed event as its GraphQL type."""
    if isinstance(value, events.TextDelta):
        return TextDelta(run_id=value.run_id, index=value.index, delta=value.delta)
    if isinstance(value, events.MessageAdded):
        return MessageAdded(message=message(value.message))
    if isinstance(value, events.RunStarted):
        return RunStarted(run=run(value.run))
    if isinstance(value, events.RunFinished):
        return RunFinished(run=run(value.run))
    if isinstance(value, events.TextSnapshot):
        return TextSnapshot(run_id=value.run_id, index=value.index, text=value.text)
    if isinstance(value, events.ThinkingDelta):
        return ThinkingDelta(run_id=value.run_id, delta=value.delta)
    if isinstance(value, events.ToolCallStarted):
        return ToolCallStarted(
            run_id=value.run_id,
            tool_call_id=value.tool_call_id,
            tool_name=value.tool_name,
            arguments=value.arguments,
        )
    if isinstance(value, events.ApprovalRequested):
        return ApprovalRequested(run_id=value.run_id, requests=[approval_request(r) for r in value.requests])
    return ToolCallFinished(
        run_id=value.run_id, tool_call_id=value.tool_call_id, tool_name=value.tool_name, result=value.result
    )
