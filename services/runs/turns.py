"""Turns: starting a run (one per session, idempotent) and waiting for it (cancels: ``cancels``).

A turn is started by a task the runtime owns, not by the request that asked for it: the user
message and the RUNNING run are committed there and the agent runs on right after, so a client
that goes away at any moment (even between the commit and the start of the agent) never leaves
a run without a process to finish it. The request only waits for the commit.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncpg
from pydantic_ai.messages import ModelRequest, UserPromptPart

from models import Agent, Message, Role, Run, RunStatus, Session, User
from services import attachments, branches, events, liveness, references, telemetry
from services.attachments import AttachmentRow
from services.conversation import RowDraft, dump
from services.database import acquire, model_from
from services.errors import BadInput, NotFound, RunInProgress, ServiceUnavailable
from services.runs.executor import Execution
from services.runs.handles import RunHandle, TurnResult
from services.runs.telemetry import observed
from services.transcript import MessageRow, append, lock_idle_session, message_from_model

if TYPE_CHECKING:
    from services.runtime import Runtime

log = logging.getLogger("parley.runs")

WAIT_MARGIN_S = 30.0  # a run ends within PARLEY_RUN_TIMEOUT; waiting gives up this much later


@dataclass(frozen=True)
class Ask:
    """What a turn answers: a new user message (``content``), continuing from the head, or
    (``edit``) a new version of that earlier USER message, or (``again``, no content) the user
    message of that USER or ASSISTANT message answered once more (regenerate). ``attachments``:
    the caller's uploads the new user message refers to (regenerate reuses the stored ones)."""

    content: str | None
    metadata: Any = None
    idempotency_key: str | None = None
    edit: uuid.UUID | None = None
    again: uuid.UUID | None = None
    attachments: tuple[uuid.UUID, ...] = ()


@dataclass
class Started:
    run: Run
    user_message: MessageRow | None  # None for an idempotent retry (read with the run's messages)
    created: bool
    handle: RunHandle | None = None
    fresh: bool = True  # the user message is new (False: regenerate answers a stored one)
    attachments: list[AttachmentRow] = field(default_factory=list)  # the user message's


# --- reading --------------------------------------------------------------------------------


async def find_run(user: User, run_id: uuid.UUID) -> Run | None:
    return await Run.get_or_none(id=run_id, session__user_id=user.id)


async def active_runs_for(session_ids: list[uuid.UUID]) -> dict[uuid.UUID, Run]:
    rows = await Run.filter(
        session_id__in=session_ids, status__in=[RunStatus.RUNNING, RunStatus.WAITING_APPROVAL]
    )
    return {r.session_id: r for r in rows}


async def run_messages(run: Run) -> list[MessageRow]:
    """The user message and everything the run persisted, in sequence order."""
    user_message = await Message.get_or_none(id=run.user_message_id) if run.user_message_id else None
    if user_message is None:
        rows = await Message.filter(session_id=run.session_id, run_id=run.id).order_by("sequence")
        return [message_from_model(m) for m in rows]
    # A run's rows follow its user message: the (session, sequence) index finds them.
    later = await Message.filter(
        session_id=run.session_id, sequence__gt=user_message.sequence, run_id=run.id
    ).order_by("sequence")
    return [message_from_model(m) for m in (user_message, *later)]


# --- starting -------------------------------------------------------------------------------


async def session_for(user: User, session_id: uuid.UUID | None, ask: Ask) -> Session:
    """The caller's session a turn runs in: the one named or, for editMessage and regenerate
    (``session_id`` None), the one of the message named. Someone else's is not found."""
    if session_id is None:
        named = ask.edit or ask.again
        assert named is not None
        session, _ = await branches.session_of_message(user, named)
        return session
    found = await Session.filter(id=session_id, user_id=user.id).select_related("agent").first()
    if found is None:
        raise NotFound.of("session", session_id)
    return found


async def start_turn(rt: Runtime, user: User, session_id: uuid.UUID | None, ask: Ask) -> Started:
    """Persist the user message and a RUNNING run, and run the agent in the runtime's hands."""
    return await start(rt, user, await session_for(user, session_id, ask), ask)


async def start(rt: Runtime, user: User, session: Session, ask: Ask) -> Started:
    meta: dict[str, Any] = {}
    attachments.check_ids(ask.attachments)
    if ask.content is not None:
        rt.limits.content(ask.content, allow_empty=bool(ask.attachments))  # a picture alone says enough
        meta = rt.limits.json_value(
            ask.metadata if ask.metadata is not None else {}, "metadata", require_object=True
        )
    if ask.idempotency_key is not None:
        if not 1 <= len(ask.idempotency_key) <= 200:
            raise BadInput("idempotencyKey has 1 to 200 characters")
        rt.limits.json_value(ask.idempotency_key, "idempotencyKey")
    telemetry.bind(session_id=session.id)
    await rt.budgets.check(user, session.id, ask.idempotency_key)  # past it: no message is stored
    rt.check_accepting()
    started: asyncio.Future[Started] = asyncio.get_running_loop().create_future()
    rt.spawn(_turn(rt, user.id, session, ask, meta, started), name="parley-turn")
    # The turn goes on whatever happens to this request: wait for its start without owning it.
    begun = await asyncio.shield(started)
    telemetry.bind(run_id=begun.run.id)
    return begun


async def _turn(
    rt: Runtime,
    user_id: uuid.UUID,
    session: Session,
    ask: Ask,
    metadata: dict[str, Any],
    started: asyncio.Future[Started],
) -> None:
    try:
        begun = await _begin(rt, session, ask, metadata)
    except BaseException as exc:
        if not started.done():
            started.set_exception(exc)
            started.exception()  # retrieved here: its requester may be gone
        if not isinstance(exc, Exception):
            raise
        return
    started.set_result(begun)
    if begun.handle is None or begun.user_message is None:
        return  # an idempotent retry: the first call's run goes on where it runs
    handle = begun.handle
    try:
        agent: Agent = session.agent
        prompt = begun.user_message.content
        with observed(rt, handle):
            await Execution(
                rt,
                handle,
                agent,
                user_id,
                prompt,
                begun.user_message,
                fresh=begun.fresh,
                attachments=begun.attachments,
            ).run()
    finally:
        handle.done.set()
        rt.runs.handles.pop(handle.run.id, None)


async def _begin(rt: Runtime, session: Session, ask: Ask, metadata: dict[str, Any]) -> Started:
    run_id = uuid.uuid4()
    agent: Agent = session.agent
    key = ask.idempotency_key
    try:
        async with acquire() as conn, conn.transaction():
            if key is not None:
                existing = await _by_idempotency_key(rt, conn, session.id, key)
                if existing is not None:
                    return existing
            try:
                await lock_idle_session(conn, session.id)
            except RunInProgress:
                if key is None:
                    raise
                twin = await _by_idempotency_key(rt, conn, session.id, key)
                if twin is None:  # busy with another key's reply
                    raise
                return twin  # a concurrent twin's run, still running
            if key is not None:  # a concurrent twin may have committed and ended meanwhile
                existing = await _by_idempotency_key(rt, conn, session.id, key)
                if existing is not None:
                    return existing
            draft: RowDraft | None = None
            asked: MessageRow | None = None
            attached: list[AttachmentRow] = []
            if ask.again is not None:  # regenerate: the new reply follows the user message
                asked = await branches.asked_by(conn, session.id, ask.again)
                await branches.move_head(conn, session.id, asked.id)
                attached = await attachments.of_message(conn, asked.id)
            else:
                if ask.edit is not None:  # the new version becomes a sibling of the edited one
                    edited = await branches.edited(conn, session.id, ask.edit)
                    await branches.move_head(conn, session.id, edited.parent_id)
                # Someone else's attachment is NOT_FOUND; ours are now held by this transaction.
                attached = await attachments.claim(conn, session.user_id, ask.attachments)
                content = ask.content or ""
                stored = references.stored_prompt(content, attached)
                draft = RowDraft(
                    role=Role.USER,
                    content=content,
                    model_message=dump(ModelRequest(parts=[UserPromptPart(content=stored)])),
                    metadata=metadata,
                )
            try:
                record = await conn.fetchrow(
                    """INSERT INTO runs (id, session_id, status, model, idempotency_key, owner_key, started_at,
                                         partial_text, partial_index, user_message_id)
                       VALUES ($1, $2, 'running', $3, $4, $5, now(), '', 0, $6) RETURNING *""",
                    run_id,
                    session.id,
                    agent.model,
                    key,
                    rt.owner_key,
                    draft.id if draft is not None else asked.id if asked is not None else None,
                )
            except asyncpg.UniqueViolationError as exc:
                raise RunInProgress() from exc
            if draft is not None:
                (user_message,) = await append(conn, session.id, [draft], run_id=run_id)
                await attachments.refer(conn, user_message.id, attached)
            else:
                assert asked is not None
                user_message = asked
            run = model_from(Run, record)
            # Known to this process before anyone else can see the run: a cancel cannot miss it.
            handle = RunHandle(run=run)
            rt.runs.handles[run.id] = handle
    except BaseException:
        rt.runs.handles.pop(run_id, None)
        raise
    rt.emit(session.id, events.RunStarted(run))
    if draft is not None:
        rt.emit(session.id, events.MessageAdded(user_message))
    return Started(
        run=run,
        user_message=user_message,
        created=True,
        handle=handle,
        fresh=draft is not None,
        attachments=attached,
    )


async def _by_idempotency_key(
    rt: Runtime, conn: asyncpg.Connection, session_id: uuid.UUID, key: str
) -> Started | None:
    # On the transaction's own connection: a second one from the pool could deadlock a full pool.
    record = await conn.fetchrow(
        "SELECT * FROM runs WHERE session_id = $1 AND idempotency_key = $2", session_id, key
    )
    if record is None:
        return None
    run = model_from(Run, record)
    return Started(run=run, user_message=None, created=False, handle=rt.runs.get(run.id))


# --- waiting --------------------------------------------------------------------------------


async def wait_finished(rt: Runtime, run: Run, handle: RunHandle | None) -> Run:
    """Wait for a run to end, wherever it runs (a vanished run is NOT_FOUND)."""
    if handle is not None:
        await handle.done.wait()
        if handle.result is not None:
            return handle.result.run
    deadline = time.monotonic() + rt.settings.run_timeout_s + WAIT_MARGIN_S
    delay = 0.02
    while True:
        fresh = await Run.get_or_none(id=run.id)
        if fresh is None:
            raise NotFound.of("run", run.id)
        if fresh.status != RunStatus.RUNNING:
            return fresh
        if fresh.owner_key == rt.owner_key and rt.runs.get(fresh.id) is None:
            # Ours, yet nothing here runs it: it can never end by itself.
            async with acquire() as conn:
                await liveness.mark_interrupted(conn, [fresh.id])
            continue
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"run {run.id} did not end in time; its server may be stuck")
        await asyncio.sleep(delay)  # another process owns it: its row says when it ends
        delay = min(delay * 2, 0.5)


async def send(rt: Runtime, user: User, session_id: uuid.UUID | None, ask: Ask) -> TurnResult:
    """sendMessage, editMessage, regenerate as mutations: the turn, once its run has ended."""
    return await finished(rt, await start_turn(rt, user, session_id, ask))


async def finished(rt: Runtime, started: Started) -> TurnResult:
    """The turn's outcome once its run has ended, wherever it ran."""
    run = await wait_finished(rt, started.run, started.handle)
    if started.handle is not None and started.handle.result is not None:
        return started.handle.result  # ended in this process: everything is in hand
    msgs = await run_messages(run)
    user_message = started.user_message or next((m for m in msgs if m.id == run.user_message_id), None)
    if user_message is None:
        raise NotFound.of("run", run.id)
    reply = next((m for m in msgs if m.id == run.reply_id), None)
    return TurnResult(run=run, user_message=user_message, reply=reply, messages=msgs)
