"""Agent runs: one reply of the session's agent to a user message.

A turn persists the user message and a RUNNING run in one transaction (the session row lock
and a partial unique index keep it to one run per session across processes), then runs the
agent in a server-side task that outlives any client. Messages are appended as pydantic-ai
completes them; the run row gets its final status, usage and cost last.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import asyncpg
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import AgentRunResultEvent, CancellationToken, RunContext
from pydantic_ai.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelHTTPError,
    ModelRateLimitError,
    ModelRequestTimeout,
    ModelTimeoutError,
    RunCancelled,
    RunTimedOut,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)
from pydantic_ai.messages import (
    AgentStreamEvent,
    FunctionToolCallEvent,
    FunctionToolResultEvent,
    ModelMessage,
    ModelRequest,
    ModelResponse,
    PartDeltaEvent,
    PartStartEvent,
    RetryPromptPart,
    TextPart,
    TextPartDelta,
    ThinkingPart,
    ThinkingPartDelta,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
    repair_messages,
)
from pydantic_ai.models import Model
from pydantic_ai.toolsets import FunctionToolset
from pydantic_ai.usage import RunUsage
from tortoise.exceptions import DBConnectionError

from models import Agent, Message, Role, Run, RunStatus, Session, User
from services import events, limits, llm, memory, notices, runtime
from services.conversation import RowDraft, drafts_from, dump, to_history, tool_arguments, window
from services.database import acquire
from services.errors import BadInput, NotFound, RunInProgress, ServiceUnavailable
from services.memory_model import MemoryModel
from services.sessions import require_session
from services.transcript import (
    AnyMessage,
    MessageRow,
    append,
    lock_idle_session,
    mark_interrupted,
    owner_alive,
    stored_rows,
)

log = logging.getLogger("parley.runs")

CANCEL_WAIT_S = 15.0
RANGE_TEXT_TTL_S = 60.0  # how long a finished run keeps text that notifications point into


@dataclass
class TurnResult:
    run: Run
    user_message: AnyMessage
    reply: AnyMessage | None
    messages: list[AnyMessage]


@dataclass
class RunHandle:
    """A reply running in this process."""

    run: Run
    token: CancellationToken = field(default_factory=CancellationToken)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    cancel_reason: str | None = None
    text: str = ""  # the run's text so far, for watchers that join late
    index: int = 0  # model text deltas so far
    result: TurnResult | None = None  # set when the run has ended

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self.token.cancel()


# --- reading --------------------------------------------------------------------------------


async def find_run(user: User, run_id: uuid.UUID) -> Run | None:
    return await Run.get_or_none(id=run_id, session__user_id=user.id)


async def active_runs_for(session_ids: list[uuid.UUID]) -> dict[uuid.UUID, Run]:
    rows = await Run.filter(session_id__in=session_ids, status=RunStatus.RUNNING)
    return {r.session_id: r for r in rows}


async def run_messages(run: Run) -> list[AnyMessage]:
    """The user message and everything the run persisted, in sequence order."""
    user_message = await Message.get_or_none(id=run.user_message_id) if run.user_message_id else None
    if user_message is None:
        rows: list[AnyMessage] = [
            *await Message.filter(session_id=run.session_id, run_id=run.id).order_by("sequence")
        ]
        return rows
    # A run's rows follow its user message: the (session, sequence) index finds them.
    later = await Message.filter(
        session_id=run.session_id, sequence__gt=user_message.sequence, run_id=run.id
    ).order_by("sequence")
    return [user_message, *later]


# --- starting a turn ------------------------------------------------------------------------


@dataclass
class Started:
    run: Run
    user_message: AnyMessage | None
    created: bool
    handle: RunHandle | None = None


async def start_turn(
    user: User, session_id: uuid.UUID, content: str, metadata: Any, idempotency_key: str | None
) -> Started:
    """Persist the user message and a RUNNING run; start the agent in the background."""
    limits.content(content)
    meta = limits.json_value(metadata if metadata is not None else {}, "metadata", require_object=True)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise BadInput("idempotencyKey has 1 to 200 characters")
    session = await Session.filter(id=session_id, user_id=user.id).select_related("agent").first()
    if session is None:
        raise NotFound.of("session", session_id)
    agent: Agent = session.agent
    rt = runtime.current()
    run_id = uuid.uuid4()
    try:
        async with acquire() as conn, conn.transaction():
            if idempotency_key is not None:
                existing = await _by_idempotency_key(conn, session.id, idempotency_key)
                if existing is not None:
                    return existing
            await lock_idle_session(conn, session.id)
            if idempotency_key is not None:  # a concurrent twin may have committed meanwhile
                existing = await _by_idempotency_key(conn, session.id, idempotency_key)
                if existing is not None:
                    return existing
            try:
                await conn.execute(
                    """INSERT INTO runs (id, session_id, status, model, idempotency_key, owner_key, started_at,
                                         partial_text, partial_index)
                       VALUES ($1, $2, 'running', $3, $4, $5, now(), '', 0)""",
                    run_id,
                    session.id,
                    agent.model,
                    idempotency_key,
                    rt.owner_key,
                )
            except asyncpg.UniqueViolationError as exc:
                raise RunInProgress() from exc
            draft = RowDraft(
                role=Role.USER,
                content=content,
                model_message=dump(ModelRequest(parts=[UserPromptPart(content=content)])),
                metadata=meta,
            )
            (user_message,) = await append(conn, session.id, [draft], run_id=run_id)
            record = await conn.fetchrow(
                "UPDATE runs SET user_message_id = $2 WHERE id = $1 RETURNING *", run_id, user_message.id
            )
            run = _run_from(record)
            # Known to this process before anyone else can see the run: a cancel cannot miss it.
            handle = RunHandle(run=run)
            rt.handles[run.id] = handle
    except BaseException:
        rt.handles.pop(run_id, None)
        raise
    rt.hub.emit(session.id, events.RunStarted(run))
    rt.hub.emit(session.id, events.MessageAdded(user_message))
    rt.spawn(_execute(handle, agent, user.id, session, content, user_message))
    return Started(run=run, user_message=user_message, created=True, handle=handle)


def _run_from(record: asyncpg.Record) -> Run:
    data = {k: record[k] for k in Run._meta.fields_db_projection if k in record}
    data["status"] = RunStatus(data["status"])
    run = Run(**data)
    run._saved_in_db = True
    return run


async def _by_idempotency_key(conn: asyncpg.Connection, session_id: uuid.UUID, key: str) -> Started | None:
    run_id = await conn.fetchval(
        "SELECT id FROM runs WHERE session_id = $1 AND idempotency_key = $2", session_id, key
    )
    if run_id is None:
        return None
    run = await Run.get(id=run_id)
    # The user message is read with the run's other messages when the caller needs them.
    return Started(run=run, user_message=None, created=False, handle=runtime.current().handles.get(run.id))


async def wait_finished(run: Run, handle: RunHandle | None) -> Run:
    """Wait for a run to end, wherever it runs."""
    if handle is not None:
        await handle.done.wait()
        return handle.result.run if handle.result is not None else await Run.get(id=run.id)
    delay = 0.02
    while True:
        fresh = await Run.get(id=run.id)
        if fresh.status != RunStatus.RUNNING:
            return fresh
        async with acquire() as conn:
            if not await owner_alive(conn, fresh.owner_key):
                await mark_interrupted(conn, [fresh.id])
                continue
        await asyncio.sleep(delay)  # another process owns it: poll its row
        delay = min(delay * 2, 0.5)


async def send_message(
    user: User, session_id: uuid.UUID, content: str, metadata: Any, idempotency_key: str | None
) -> TurnResult:
    started = await start_turn(user, session_id, content, metadata, idempotency_key)
    run = await wait_finished(started.run, started.handle)
    if started.handle is not None and started.handle.result is not None:
        return started.handle.result  # ended in this process: everything is in hand
    msgs = await run_messages(run)
    user_message = started.user_message or next(m for m in msgs if m.id == run.user_message_id)
    reply = next((m for m in msgs if m.id == run.reply_id), None)
    return TurnResult(run=run, user_message=user_message, reply=reply, messages=msgs)


# --- running the agent ----------------------------------------------------------------------


@dataclass
class _Progress:
    """What a run has persisted so far of pydantic-ai's messages."""

    history_len: int
    user_message: AnyMessage
    started: float = field(default_factory=time.monotonic)
    persisted: int = 0  # new messages persisted (the user request counts once updated)
    messages: list[AnyMessage] = field(default_factory=list)
    reply: AnyMessage | None = None


async def _execute(
    handle: RunHandle,
    agent: Agent,
    user_id: uuid.UUID,
    session: Session,
    prompt: str,
    user_message: AnyMessage,
) -> None:
    rt = runtime.current()
    run = handle.run
    progress = _Progress(history_len=0, user_message=user_message)
    usage: RunUsage | None = None
    final: list[ModelMessage] = []  # what is left to store when the run ends
    status, error = RunStatus.COMPLETED, None
    stream: Any = None
    try:
        history = await _history(session.id, agent.history_limit, user_message.sequence)
        progress.history_len = len(history)
        pa_agent = _WITH_MEMORY if agent.memory_enabled else _WITHOUT_MEMORY
        instructions: list[Any] = [agent.instructions] if agent.instructions else []
        model: Model | str = llm.resolve(agent.model)
        if agent.memory_enabled:
            model = MemoryModel(model, user_id, session.id)
        async with pa_agent.run_stream_events(
            prompt,
            model=model,
            deps=_Deps(user_id, session.id),
            message_history=history,
            conversation_id=str(session.id),
            instructions=instructions or None,
            cancellation_token=handle.token,
            timeout=rt.settings.run_timeout_s,
        ) as stream:
            async for event in stream:
                # Messages are stored as soon as pydantic-ai has completed them.
                if isinstance(event, FunctionToolCallEvent):
                    await _persist(progress, run, stream.all_messages(), ModelResponse)
                elif isinstance(event, PartStartEvent) and progress.persisted > 0:
                    await _persist(progress, run, stream.all_messages(), ModelRequest)
                _relay(handle, session.id, event)
                if isinstance(event, AgentRunResultEvent):
                    usage = event.result.usage
                    final = event.result.all_messages()
    except RunCancelled as exc:
        usage = exc.usage
        if isinstance(exc, RunTimedOut):
            status, error = (
                RunStatus.FAILED,
                ("TIMEOUT", f"the reply took longer than {rt.settings.run_timeout_s:g}s"),
            )
        elif handle.cancel_reason == "shutdown":
            status, error = (
                RunStatus.FAILED,
                ("INTERRUPTED", "the server shut down before the reply finished"),
            )
        else:
            status = RunStatus.CANCELLED
        msgs = exc.all_messages()
        final = msgs if status is RunStatus.CANCELLED and _has_text(msgs) else _complete(msgs)
    except Exception as exc:
        status, error = RunStatus.FAILED, _error_info(exc)
        if error[0] == "INTERNAL_SERVER_ERROR":
            log.exception("run %s failed", run.id)
        else:
            # The class and status only: provider error bodies may carry secrets.
            log.warning("run %s failed: %s (%s)", run.id, error[0], _describe(exc))
        final = _completed_so_far(stream)
        usage = _usage_so_far(stream)  # requests already made were billed
    finally:
        try:
            await _retried(
                lambda: _finish(handle, session.id, status, error, usage, progress, final), progress, run.id
            )
        finally:
            handle.done.set()
            rt.handles.pop(run.id, None)


FINISH_RETRIES_S = (0.2, 1.0, 5.0)


async def _retried(finish: Callable[[], Awaitable[None]], progress: _Progress, run_id: uuid.UUID) -> None:
    """Ending a run must not be lost to a database hiccup: a RUNNING row blocks its session."""
    for delay in (*FINISH_RETRIES_S, None):
        saved = (progress.persisted, list(progress.messages), progress.reply)
        try:
            await finish()
            return
        except Exception:
            progress.persisted, progress.messages, progress.reply = saved  # rolled back: redo
            if delay is None:
                log.exception("could not record the end of run %s", run_id)
                return
            log.warning("could not record the end of run %s; retrying in %.1fs", run_id, delay)
            await asyncio.sleep(delay)


def _describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    return f"{type(exc).__name__}{f' HTTP {status}' if status else ''}"


def _usage_so_far(stream: Any) -> RunUsage | None:
    try:
        return stream.usage if stream is not None else None
    except Exception:  # no usage before the first request
        return None


def _completed_so_far(stream: Any) -> list[ModelMessage]:
    """Messages a failed run completed before failing (tool calls and returns are history)."""
    if stream is None:
        return []
    try:
        return _complete(stream.all_messages())
    except Exception:  # the run failed before pydantic-ai had any messages
        return []


def _has_text(msgs: list[ModelMessage]) -> bool:
    last = msgs[-1] if msgs else None
    return isinstance(last, ModelResponse) and any(isinstance(p, TextPart) and p.content for p in last.parts)


def _complete(msgs: list[ModelMessage]) -> list[ModelMessage]:
    """Drop an interrupted response at the end: the failure lives on the run, not as a message."""
    if msgs and isinstance(msgs[-1], ModelResponse) and msgs[-1].state == "interrupted":
        return msgs[:-1]
    return msgs


async def _history(session_id: uuid.UUID, limit: int, before_sequence: int) -> list[ModelMessage]:
    async with acquire() as conn:
        rows = await stored_rows(conn, session_id, limit + 1)
    rows = [r for r in rows if r.sequence < before_sequence]
    history = to_history(window(rows, limit))
    # Turns recorded with addMessages may leave a tool call unanswered, which pydantic-ai refuses:
    # close such calls out (only then, so a well-formed history is sent exactly as stored).
    return repair_messages(history) if _dangling_calls(history) else history


def _dangling_calls(history: list[ModelMessage]) -> bool:
    calls = {
        p.tool_call_id
        for m in history
        if isinstance(m, ModelResponse)
        for p in m.parts
        if isinstance(p, ToolCallPart)
    }
    answered = {
        p.tool_call_id
        for m in history
        if isinstance(m, ModelRequest)
        for p in m.parts
        if isinstance(p, ToolReturnPart | RetryPromptPart)
    }
    return bool(calls - answered)


async def _persist(progress: _Progress, run: Run, all_messages: list[ModelMessage], upto: type) -> None:
    """Mid-run: store the completed messages not yet stored, up to the last one of kind ``upto``."""
    async with acquire() as conn, conn.transaction():
        added = await _store(conn, progress, run, all_messages, upto)
    hub = runtime.current().hub
    for message in added:
        hub.emit(run.session_id, events.MessageAdded(message))


async def _store(
    conn: asyncpg.Connection,
    progress: _Progress,
    run: Run,
    all_messages: list[ModelMessage],
    upto: type | None,
) -> list[MessageRow]:
    new = all_messages[progress.history_len :]
    if upto is not None:
        last = max((i for i, m in enumerate(new) if isinstance(m, upto)), default=-1)
        new = new[: last + 1]
    pending = new[progress.persisted :]
    if not pending:
        return []
    count = len(pending)
    if progress.persisted == 0:
        # The user's request as pydantic-ai built it (instructions, run id): same turn, same row.
        first = pending.pop(0)
        await conn.execute(
            "UPDATE messages SET model_message = $2 WHERE id = $1",
            progress.user_message.id,
            json.dumps(dump(first), separators=(",", ":"), ensure_ascii=False),
        )
    drafts = [d for m in pending for d in drafts_from(m)]
    elapsed = int((time.monotonic() - progress.started) * 1000)
    added = await append(conn, run.session_id, drafts, run_id=run.id, processing_time_ms=elapsed)
    progress.persisted += count
    progress.messages.extend(added)
    for message in added:
        if message.role == Role.ASSISTANT and message.content:
            progress.reply = message  # the reply is text; a message that only calls tools is not
    return added


def _relay(handle: RunHandle, session_id: uuid.UUID, event: AgentStreamEvent | Any) -> None:
    """Translate pydantic-ai stream events to Parley events."""
    hub = runtime.current().hub
    run_id = handle.run.id
    if isinstance(event, PartStartEvent):
        part = event.part
        if isinstance(part, TextPart) and part.content:
            _text(handle, session_id, part.content)
        elif isinstance(part, ThinkingPart) and part.content:
            hub.emit(session_id, events.ThinkingDelta(run_id, part.content))
    elif isinstance(event, PartDeltaEvent):
        delta = event.delta
        if isinstance(delta, TextPartDelta) and delta.content_delta:
            _text(handle, session_id, delta.content_delta)
        elif isinstance(delta, ThinkingPartDelta) and delta.content_delta:
            hub.emit(session_id, events.ThinkingDelta(run_id, delta.content_delta))
    elif isinstance(event, FunctionToolCallEvent):
        part = event.part
        hub.emit(
            session_id,
            events.ToolCallStarted(run_id, part.tool_call_id, part.tool_name, tool_arguments(part)),
        )
    elif isinstance(event, FunctionToolResultEvent):
        result = event.part
        content = result.content if isinstance(result, ToolReturnPart) else result.model_response()
        hub.emit(
            session_id,
            events.ToolCallFinished(run_id, result.tool_call_id, result.tool_name, _jsonable(content)),
        )


def _text(handle: RunHandle, session_id: uuid.UUID, delta: str) -> None:
    handle.text += delta
    handle.index += 1
    runtime.current().hub.emit(session_id, events.TextDelta(handle.run.id, handle.index, delta))


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


async def _finish(
    handle: RunHandle,
    session_id: uuid.UUID,
    status: RunStatus,
    error: tuple[str, str] | None,
    usage: RunUsage | None,
    progress: _Progress,
    final: list[ModelMessage],
) -> None:
    """Store the last messages and the final status in one commit, then announce them."""
    rt = runtime.current()
    cost = usage.cost if usage is not None else None
    async with acquire() as conn, conn.transaction():
        added = await _store(conn, progress, handle.run, final, None) if final else []
        # Other processes learn of the end in the same commit as the final status.
        for message in added:
            rt.fanout.publish(session_id, handle.run.id, events.MessageAdded(message))
        rt.fanout.publish(session_id, handle.run.id, events.RunFinished(handle.run))
        ranged = await rt.fanout.flush(handle.run.id, conn)
        # The streamed text is kept only while a notification may still point into it.
        record = await conn.fetchrow(
            """UPDATE runs SET status = $2, finished_at = now(), requests = $3, input_tokens = $4,
                   output_tokens = $5, cost = $6, error_code = $7, error_message = $8, reply_id = $9,
                   partial_text = CASE WHEN $10 THEN partial_text ELSE '' END
               WHERE id = $1 AND status = 'running' RETURNING *""",
            handle.run.id,
            status.value,
            usage.requests if usage else None,
            usage.input_tokens if usage else None,
            usage.output_tokens if usage else None,
            float(cost) if isinstance(cost, Decimal | float | int) else None,
            error[0] if error else None,
            error[1] if error else None,
            progress.reply.id if progress.reply and status is not RunStatus.FAILED else None,
            ranged,
        )
    if ranged:
        asyncio.get_running_loop().call_later(RANGE_TEXT_TTL_S, lambda: rt.spawn(_forget_text(handle.run.id)))
    # Marked INTERRUPTED meanwhile (our liveness lock was lost): keep what the database says.
    run = _run_from(record) if record is not None else await Run.get(id=handle.run.id)
    for message in added:
        rt.hub.deliver(session_id, events.MessageAdded(message))
    rt.hub.deliver(session_id, events.RunFinished(run))
    handle.result = TurnResult(
        run=run,
        user_message=progress.user_message,
        reply=progress.reply if status is not RunStatus.FAILED else None,
        messages=[progress.user_message, *progress.messages],
    )


async def _forget_text(run_id: uuid.UUID) -> None:
    async with acquire() as conn:
        await conn.execute("UPDATE runs SET partial_text = '' WHERE id = $1 AND status <> 'running'", run_id)


def _error_info(exc: BaseException) -> tuple[str, str]:
    """A code and a message safe to show a client (no secrets, no provider bodies)."""
    if isinstance(
        exc, ServiceUnavailable | OSError | DBConnectionError | asyncpg.InterfaceError
    ) or isinstance(
        exc,
        asyncpg.PostgresConnectionError | asyncpg.InsufficientResourcesError | asyncpg.CannotConnectNowError,
    ):
        return "SERVICE_UNAVAILABLE", "the database could not be reached during the reply; retry"
    if isinstance(exc, ModelTimeoutError | ModelRequestTimeout | TimeoutError):
        return "TIMEOUT", "the model did not answer in time"
    if isinstance(exc, ModelRateLimitError):
        return "RATE_LIMITED", "the model provider is rate limiting requests; retry later"
    if isinstance(exc, ModelAuthenticationError):
        return "PROVIDER_AUTH", "the model provider rejected Parley's credentials"
    if isinstance(exc, ModelHTTPError):
        return "PROVIDER_ERROR", f"the model provider answered HTTP {exc.status_code}"
    if isinstance(exc, ModelConnectionError):
        return "PROVIDER_UNREACHABLE", "the model provider could not be reached or the stream broke"
    if isinstance(exc, ModelAPIError):
        return "PROVIDER_ERROR", "the model provider failed"
    if isinstance(exc, UsageLimitExceeded):
        return "USAGE_LIMIT", "the reply exceeded its usage limits"
    if isinstance(exc, UnexpectedModelBehavior):
        return "MODEL_ERROR", "the model answered in an unexpected way"
    if isinstance(exc, UserError):
        return "MODEL_CONFIG", "the agent's model is not usable: check its model string and provider settings"
    return "INTERNAL_SERVER_ERROR", "the reply failed unexpectedly"


# --- memory tools ---------------------------------------------------------------------------


@dataclass
class _Deps:
    user_id: uuid.UUID
    session_id: uuid.UUID


async def save_memory(
    ctx: RunContext[_Deps], key: str, value: Any, scope: Literal["user", "session"] = "user"
) -> str:
    """Remember a fact. scope "user": for all of this user's sessions; "session": this one only."""
    try:
        limits.json_value(value, "value")
    except BadInput as exc:
        return f"not saved: {exc.message}"
    key = key.strip()
    if not key or len(key) > 200:
        return "not saved: the key must have 1 to 200 characters"
    session_id = ctx.deps.session_id if scope == "session" else None
    try:
        await memory.upsert(ctx.deps.user_id, session_id, key, value)
    except BadInput as exc:  # e.g. memory is full: the model can read why and act on it
        return f"not saved: {exc.message}"
    return f"saved {key!r} ({scope})"


async def delete_memory(ctx: RunContext[_Deps], key: str, scope: Literal["user", "session"] = "user") -> str:
    """Forget a fact saved with save_memory."""
    session_id = ctx.deps.session_id if scope == "session" else None
    removed = await memory.remove(ctx.deps.user_id, session_id, key.strip())
    return f"deleted {key!r} ({scope})" if removed else f"nothing saved under {key!r} ({scope})"


# Built once: the model, instructions and caller are given per run.
_WITH_MEMORY: PydanticAgent[_Deps, str] = PydanticAgent(
    deps_type=_Deps, toolsets=[FunctionToolset([save_memory, delete_memory])]
)
_WITHOUT_MEMORY: PydanticAgent[_Deps, str] = PydanticAgent(deps_type=_Deps)


# --- cancel and delete ----------------------------------------------------------------------


async def cancel_run(user: User, run_id: uuid.UUID) -> Run:
    """Stop a running reply wherever it runs; return the run once it has ended."""
    run = await find_run(user, run_id)
    if run is None:
        raise NotFound.of("run", run_id)
    if run.status != RunStatus.RUNNING:
        return run
    handle = runtime.current().handles.get(run.id)
    if handle is not None:
        handle.cancel("user")
        return await wait_finished(run, handle)
    # Another process owns it: signal it (again, should a notification be lost) until it ends.
    deadline = time.monotonic() + CANCEL_WAIT_S
    while time.monotonic() < deadline:
        async with acquire() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", runtime.CANCEL_CHANNEL, str(run.id))
        try:
            return await asyncio.wait_for(wait_finished(run, None), 1.0)
        except TimeoutError:
            continue
    return await Run.get(id=run.id)


async def delete_session(user: User, session_id: uuid.UUID) -> bool:
    """Delete a session with its messages, runs and memory, cancelling a running reply first."""
    session = await require_session(user, session_id)
    active = await Run.get_or_none(session_id=session.id, status=RunStatus.RUNNING)
    if active is not None:
        await cancel_run(user, active.id)
    async with acquire() as conn, conn.transaction():
        status = await conn.execute("DELETE FROM sessions WHERE id = $1", session.id)
        await notices.sessions_deleted(conn, [session.id])  # its streams end on every process
    return status != "DELETE 0"


__all__ = [
    "RunHandle",
    "TurnResult",
    "cancel_run",
    "delete_session",
    "find_run",
    "send_message",
    "start_turn",
]
