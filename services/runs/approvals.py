"""Approvals: a run paused for a person's decision on tool calls, and going on after it.

A paused run (WAITING_APPROVAL) belongs to no process: its messages, the calls waiting and the
text it streamed so far are in PostgreSQL, so any process resumes it, after any restart. The
decisions become pydantic-ai ``DeferredToolResults``: approved calls run (with edited arguments
if given), denied ones return their message to the model as the tool's result.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic_ai import DeferredToolResults, ToolApproved, ToolDenied

from models import Agent, Run, RunStatus, Session, User
from services.database import acquire, model_from
from services.errors import BadInput, NotFound
from services.runs.executor import Execution
from services.runs.handles import RunHandle
from services.runs.turns import find_run, wait_finished
from services.transcript import COLUMNS, message_from_record

if TYPE_CHECKING:
    from services.runtime import Runtime

DEFAULT_DENIAL = "The user denied this tool call."


@dataclass(frozen=True)
class Decision:
    tool_call_id: str
    approve: bool
    message: str | None = None
    arguments: Any = None  # approve with these arguments instead


def _results(rt: Runtime, pending: list[dict[str, Any]], decisions: list[Decision]) -> DeferredToolResults:
    waiting = {p["tool_call_id"] for p in pending}
    given = [d.tool_call_id for d in decisions]
    if len(set(given)) != len(given):
        raise BadInput("one decision per tool call: a toolCallId is given twice")
    if set(given) != waiting:
        missing, unknown = sorted(waiting - set(given)), sorted(set(given) - waiting)
        raise BadInput(
            "decide every pending call, and only those"
            + (f"; missing: {', '.join(missing)}" if missing else "")
            + (f"; not pending: {', '.join(unknown)}" if unknown else "")
        )
    approvals: dict[str, bool | ToolApproved | ToolDenied] = {}
    for d in decisions:
        if d.message is not None:
            rt.limits.content(d.message)
        if not d.approve:
            approvals[d.tool_call_id] = ToolDenied(d.message or DEFAULT_DENIAL)
        elif d.arguments is not None:
            args = rt.limits.json_value(d.arguments, "arguments", require_object=True)
            approvals[d.tool_call_id] = ToolApproved(override_args=args)
        else:
            approvals[d.tool_call_id] = True
    return DeferredToolResults(approvals=approvals)


async def resolve_approvals(rt: Runtime, user: User, run_id: uuid.UUID, decisions: list[Decision]) -> Run:
    """Decide the paused run's calls; it goes on here. Returns once it has ended or paused again."""
    run = await find_run(user, run_id)
    if run is None:
        raise NotFound.of("run", run_id)
    if run.status != RunStatus.WAITING_APPROVAL:
        raise BadInput(f"run {run_id} is not waiting for approval (it is {run.status.name})")
    results = _results(rt, run.pending_approvals, decisions)
    session = await Session.filter(id=run.session_id).select_related("agent").first()
    if session is None:
        raise NotFound.of("run", run_id)
    rt.check_accepting()
    started: asyncio.Future[RunHandle] = asyncio.get_running_loop().create_future()
    rt.spawn(_go_on(rt, user.id, session, run_id, results, started), name="parley-resume")
    handle = await asyncio.shield(started)
    return await wait_finished(rt, handle.run, handle)


async def _go_on(
    rt: Runtime,
    user_id: uuid.UUID,
    session: Session,
    run_id: uuid.UUID,
    results: DeferredToolResults,
    started: asyncio.Future[RunHandle],
) -> None:
    try:
        async with acquire() as conn, conn.transaction():
            # The session row first, as every writer of the session does.
            await conn.execute("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", session.id)
            record = await conn.fetchrow(
                """UPDATE runs SET status = 'running', owner_key = $2, pending_approvals = '[]'
                   WHERE id = $1 AND status = 'waiting_approval' RETURNING *""",
                run_id,
                rt.owner_key,
            )
            if record is None:
                raise BadInput(
                    f"run {run_id} is no longer waiting for approval (decided or cancelled meanwhile)"
                )
            run = model_from(Run, record)
            asked = await conn.fetchrow(f"SELECT {COLUMNS} FROM messages WHERE id = $1", run.user_message_id)
            if asked is None:
                raise NotFound.of("run", run_id)
            handle = RunHandle.resumed(run)
            rt.runs.handles[run.id] = handle
    except BaseException as exc:
        rt.runs.handles.pop(run_id, None)
        started.set_exception(exc)
        started.exception()  # retrieved here: its requester may be gone
        if not isinstance(exc, Exception):
            raise
        return
    rt.fanout.resume(run.id, session.id, len(run.partial_text), run.partial_index)
    started.set_result(handle)
    try:
        agent: Agent = session.agent
        user_message = message_from_record(asked)
        await Execution(rt, handle, agent, user_id, None, user_message, fresh=False, resume=results).run()
    finally:
        handle.done.set()
        rt.runs.handles.pop(handle.run.id, None)
