"""Cancelling a run: wherever it runs, paused or stuck; the run is returned once it has ended."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import TYPE_CHECKING

from models import Run, RunStatus, User
from services import events, liveness
from services.database import acquire, model_from
from services.errors import NotFound
from services.notices import cancel_run as notify_cancel
from services.runs.turns import find_run, wait_finished

if TYPE_CHECKING:
    from services.runtime import Runtime

log = logging.getLogger("parley.runs")

CANCEL_RESEND_S = 1.0  # a cancel notification is sent again this often (one may be lost) ...
FORCE_CANCEL_AFTER_S = 5.0  # ... and past this, the run is ended here (its owner is stuck)


async def cancel_run(rt: Runtime, user: User, run_id: uuid.UUID) -> Run:
    """Stop a running reply wherever it runs; return the run once it has ended."""
    run = await find_run(user, run_id)
    if run is None:
        raise NotFound.of("run", run_id)
    if run.status == RunStatus.WAITING_APPROVAL:
        return await _cancel_paused(rt, run)
    if run.status != RunStatus.RUNNING:
        return run
    handle = rt.runs.get(run.id)
    if handle is not None:
        handle.cancel("user")
        return await wait_finished(rt, run, handle)
    # Another process owns it: signal it (again, should a notification be lost) until it ends.
    deadline = time.monotonic() + FORCE_CANCEL_AFTER_S
    while time.monotonic() < deadline:
        async with acquire() as conn:
            await notify_cancel(conn, run.id)
        try:
            return await asyncio.wait_for(wait_finished(rt, run, None), CANCEL_RESEND_S)
        except TimeoutError:
            continue
    return await _force_cancel(rt, run)


async def _cancel_paused(rt: Runtime, run: Run) -> Run:
    """A run waiting for approval runs nowhere: it is ended here."""
    async with acquire() as conn, rt.fanout.exclusive(), conn.transaction():
        await conn.execute("SELECT 1 FROM sessions WHERE id = $1 FOR UPDATE", run.session_id)
        record = await conn.fetchrow(
            """UPDATE runs SET status = 'cancelled', finished_at = now(), pending_approvals = '[]'
               WHERE id = $1 AND status = 'waiting_approval' RETURNING *""",
            run.id,
        )
        if record is not None:
            await rt.fanout.announce_ended(conn, [liveness.EndedRun(run.id, run.session_id)])
    if record is None:  # decided (or cancelled) meanwhile
        fresh = await Run.get_or_none(id=run.id)
        if fresh is None:
            raise NotFound.of("run", run.id)
        return (
            await wait_finished(rt, fresh, rt.runs.get(fresh.id))
            if fresh.status == RunStatus.RUNNING
            else fresh
        )
    ended = model_from(Run, record)
    rt.hub.deliver(ended.session_id, events.RunFinished(ended))
    return ended


async def _force_cancel(rt: Runtime, run: Run) -> Run:
    """End a run whose owner does not answer: its later writes are refused (they check the row)."""
    async with acquire() as conn, conn.transaction():
        record = await conn.fetchrow(
            """UPDATE runs SET status = 'cancelled', finished_at = now()
               WHERE id = $1 AND status = 'running' RETURNING *""",
            run.id,
        )
        if record is not None:
            await rt.fanout.announce_ended(conn, [liveness.EndedRun(run.id, run.session_id)])
    if record is None:  # it ended meanwhile
        fresh = await Run.get_or_none(id=run.id)
        if fresh is None:
            raise NotFound.of("run", run.id)
        return fresh
    ended = model_from(Run, record)
    log.warning("run %s did not answer its cancel; ended here", run.id)
    rt.hub.deliver(ended.session_id, events.RunFinished(ended))
    return ended
