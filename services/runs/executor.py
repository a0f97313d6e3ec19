"""A run of the agent: history in, events out, every message persisted as soon as it completes.

The agent loop is pydantic-ai's ``agent.iter``: after each model request the request and its
response are stored (the user's own request replaces the draft row stored when the turn
began); the run's messages are always those pydantic-ai reports as new, never a slice by
position (pydantic-ai merges consecutive requests of the history). Every write checks that the
run is still RUNNING, so a run ended elsewhere (its process lost its liveness lock, a forced
cancel, a deleted session) never writes on. The run's end (last messages, status, usage, its
last events for other processes) is one transaction, retried until it lands or the process
stops: a RUNNING row would block its session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai import DeferredToolRequests, DeferredToolResults
from pydantic_ai.exceptions import RunCancelled
from pydantic_ai.messages import (
    ModelMessage,
    ToolCallPart,
    UserContent,
    repair_messages,
)
from pydantic_ai.models import Model
from pydantic_ai.usage import RunUsage, UsageLimits

from models import Agent, Role, Run, RunStatus
from services import attachments, events, references
from services.attachments import AttachmentRow
from services.conversation import RowDraft, drafts_from, dump, tool_arguments, window
from services.database import acquire, model_from
from services.errors import RunGone
from services.memory import MemoryBounds
from services.runs import failures, outcome
from services.runs.agent import MemoryModel, RunDeps
from services.runs.handles import RunHandle, TurnResult
from services.runs.relay import Relay
from services.tools import McpServer
from services.transcript import MessageRow, append, stored_rows

if TYPE_CHECKING:
    from pydantic_ai.run import AgentRun

    from services.runtime import Runtime

log = logging.getLogger("parley.runs")

FINISH_RETRY_S = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass
class _Stored:
    """What the run has persisted so far of pydantic-ai's new messages."""

    user_message: MessageRow
    count: int = 0  # new messages persisted (the user's request counts once it replaced the draft)
    messages: list[MessageRow] = field(default_factory=list)
    reply: MessageRow | None = None


class Execution:
    def __init__(
        self,
        rt: Runtime,
        handle: RunHandle,
        agent: Agent,
        user_id: uuid.UUID,
        prompt: str | None,
        user_message: MessageRow,
        *,
        fresh: bool = True,
        resume: DeferredToolResults | None = None,
        attachments: list[AttachmentRow] | None = None,
    ) -> None:
        self.rt = rt
        self.handle = handle
        self.agent = agent
        self.user_id = user_id
        self.prompt = prompt
        self.fresh = fresh  # False: regenerate answers a stored user message, left as it is
        # A paused run going on: the decisions on its calls; its history is the whole branch and
        # its first new message (the calls' results) has no row yet.
        self.resume = resume
        self.attachments = attachments or []  # the user message's, in its order
        self.stored = _Stored(user_message)
        self.session_id = handle.session_id
        self.run_id = handle.run.id
        self.started = time.monotonic()

    async def run(self) -> None:
        status, error = RunStatus.COMPLETED, None
        usage: RunUsage | None = None
        final: list[ModelMessage] = []
        agent_run: AgentRun[RunDeps, str | DeferredToolRequests] | None = None
        waiting: DeferredToolRequests | None = None
        try:
            history = await self._history()
            agent = self.agent
            toolsets = await self.rt.tools.for_run(
                [McpServer.parse(raw) for raw in agent.mcp_servers],
                self.rt.agents.memory if agent.memory_enabled else None,
                agent.approval_required,
            )
            model = self._model()
            async with (
                outcome.entered(model),
                self.rt.agents.agent.iter(
                    await self._prompt(),
                    model=model,
                    toolsets=toolsets,
                    deferred_tool_results=self.resume,
                    deps=RunDeps(
                        self.user_id, self.session_id, self.rt.limits, MemoryBounds.of(self.rt.settings)
                    ),
                    message_history=history,
                    conversation_id=str(self.session_id),
                    instructions=self.agent.instructions or None,
                    cancellation_token=self.handle.token,
                    timeout=self.rt.settings.run_timeout_s,
                    usage_limits=UsageLimits(request_limit=self.agent.max_requests_per_run),
                ) as agent_run,
            ):
                relay = Relay(self.rt, self.handle)
                async for node in agent_run:
                    if PydanticAgent.is_model_request_node(node):
                        async with node.stream(agent_run.ctx) as stream:
                            async for event in stream:
                                relay(event)
                    elif PydanticAgent.is_call_tools_node(node):
                        # Tool calls are stored before any tool runs (a reply of text alone is
                        # stored with the run's end, in one transaction).
                        if any(isinstance(p, ToolCallPart) for p in node.model_response.parts):
                            await self._persist(agent_run.new_messages())
                        async with node.stream(agent_run.ctx) as stream:
                            async for event in stream:
                                relay(event)
                usage, final = agent_run.usage, agent_run.new_messages()
                output = agent_run.result.output if agent_run.result is not None else None
                if isinstance(output, DeferredToolRequests) and output.approvals:
                    status, waiting = RunStatus.WAITING_APPROVAL, output
        except RunGone:
            log.info("run %s was ended elsewhere; it stops writing", self.run_id)
            await self._gone()
            return
        except RunCancelled as exc:
            usage = exc.usage
            status, error = outcome.cancelled(exc, self.handle.cancel_reason, self.rt.settings.run_timeout_s)
            messages = exc.new_messages()
            # Stopped on purpose (cancel, clean stop): what it said so far is its reply.
            final = (
                messages
                if outcome.keeps_partial(error) and outcome.ends_with_text(messages)
                else outcome.complete(messages)
            )
        except Exception as exc:
            status, error = RunStatus.FAILED, failures.classify(exc)
            if error.code == "INTERNAL_SERVER_ERROR":
                log.exception("run %s failed", self.run_id)
            else:
                log.warning("run %s failed: %s (%s)", self.run_id, error.code, failures.describe(exc))
            if agent_run is not None:  # requests already made were billed; completed messages are history
                usage, final = agent_run.usage, outcome.complete(agent_run.new_messages())
        await self._finish(status, error, usage, final, waiting)

    def _model(self) -> Model | str:
        model = self.rt.models.resolve(self.agent.model)
        if self.agent.memory_enabled:
            return MemoryModel(model, self.user_id, self.session_id)
        return model

    async def _history(self) -> list[ModelMessage]:
        limit = self.agent.history_limit
        async with acquire() as conn:
            rows = await stored_rows(conn, self.session_id, limit + 1)
        if self.resume is None:  # (a paused run goes on with the whole branch, up to its calls)
            before = self.stored.user_message.sequence
            rows = [r for r in rows if r.sequence < before]
        history = self.rt.history.to_history(window(rows, limit))
        if referred := references.ids_in(history):  # stored as references: the bytes go back in
            history = references.fill(history, await attachments.blobs(referred, [self.user_id]))
        # Turns recorded with addMessages may leave a tool call unanswered, which pydantic-ai refuses:
        # close such calls out (only then, so a well-formed history is sent exactly as stored). The
        # calls a paused run waits on are answered by the decisions instead.
        if self.resume is None and outcome.dangling_calls(history):
            return repair_messages(history)
        return history

    async def _prompt(self) -> str | list[UserContent] | None:
        """The user's words, with the attachments' bytes read now (only for as long as the run)."""
        if not self.attachments:
            return self.prompt
        found = await attachments.blobs({a.id for a in self.attachments}, [self.user_id])
        return references.prompt(self.prompt or "", [found[a.id] for a in self.attachments if a.id in found])

    async def _persist(self, new: list[ModelMessage]) -> None:
        """Mid-run: store the new messages not stored yet (a model request has just completed)."""
        pending = new[self.stored.count :]
        if not pending:
            return
        drafts = self._drafts(pending)
        async with acquire() as conn, conn.transaction():
            added = await self._write(conn, pending, drafts, guard=True)
        self._stored_more(len(pending), added, outcome.reply_of(added))
        for message in added:
            self.rt.emit(self.session_id, events.MessageAdded(message))

    def _drafts(self, pending: list[ModelMessage]) -> list[RowDraft]:
        """Rows for the new messages (the user's own request, first of all, has its row already,
        unless the run goes on after a pause: then its first message is the calls' results)."""
        rest = pending[1:] if self.stored.count == 0 and self.resume is None else pending
        return [d for m in rest for d in drafts_from(m)]

    async def _write(
        self, conn: asyncpg.Connection, pending: list[ModelMessage], drafts: list[RowDraft], *, guard: bool
    ) -> list[MessageRow]:
        if self.stored.count == 0 and self.fresh:
            # The user's request as pydantic-ai built it (instructions, run id): same turn, same row,
            # with references in place of the attachments' bytes.
            await conn.execute(
                "UPDATE messages SET model_message = $2 WHERE id = $1",
                self.stored.user_message.id,
                json.dumps(references.strip(dump(pending[0])), separators=(",", ":"), ensure_ascii=False),
            )
        elapsed = int((time.monotonic() - self.started) * 1000)
        return await append(
            conn,
            self.session_id,
            drafts,
            run_id=self.run_id,
            processing_time_ms=elapsed,
            guard_run=self.run_id if guard else None,
        )

    def _stored_more(self, count: int, added: list[MessageRow], reply: MessageRow | None) -> None:
        self.stored.count += count
        self.stored.messages.extend(added)
        if reply is not None:
            self.stored.reply = reply

    async def _finish(
        self,
        status: RunStatus,
        error: failures.RunError | None,
        usage: RunUsage | None,
        final: list[ModelMessage],
        waiting: DeferredToolRequests | None = None,
    ) -> None:
        """Record the run's end (or pause), retried until it lands (or the process stops)."""
        attempt = 0
        while True:
            try:
                await self._end(status, error, usage, final, waiting)
                return
            except RunGone:
                await self._gone()
                return
            except Exception:
                delay = FINISH_RETRY_S[min(attempt, len(FINISH_RETRY_S) - 1)]
                attempt += 1
                if self.rt.stopping and attempt > 1:
                    log.exception(
                        "could not record the end of run %s; its owner's exit releases it", self.run_id
                    )
                    return
                log.warning(
                    "could not record the end of run %s; retrying in %.1fs", self.run_id, delay, exc_info=True
                )
                await asyncio.sleep(delay)

    async def _end(
        self,
        status: RunStatus,
        error: failures.RunError | None,
        usage: RunUsage | None,
        final: list[ModelMessage],
        waiting: DeferredToolRequests | None = None,
    ) -> None:
        rt = self.rt
        pending = final[self.stored.count :]
        asked = (
            [
                events.ApprovalRequest(c.tool_call_id, c.tool_name, tool_arguments(c))
                for c in waiting.approvals
            ]
            if waiting is not None
            else []
        )
        drafts = self._drafts(pending) if pending else []
        # The reply is text; a message that only calls tools is not.
        drafted = next((d for d in reversed(drafts) if d.role is Role.ASSISTANT and d.content), None)
        reply_id = (
            drafted.id if drafted is not None else (self.stored.reply.id if self.stored.reply else None)
        )
        batch = None
        try:
            async with acquire() as conn, rt.fanout.exclusive(), conn.transaction():
                # The run row is ended here, unless it was ended elsewhere (then nothing is written).
                # The session row is locked first, as every writer of the session does: a turn
                # starting meanwhile holds it and, inserting its run, waits for this run's row;
                # taking the run's row first would deadlock with it.
                # Usage adds up over the parts of a run paused for approvals; a pause is no end.
                record = await conn.fetchrow(
                    """WITH held AS (SELECT id FROM sessions WHERE id = $10 FOR UPDATE)
                       UPDATE runs SET status = $2,
                           finished_at = CASE WHEN $2::varchar = 'waiting_approval' THEN NULL ELSE now() END,
                           requests = coalesce(requests, 0) + $3, input_tokens = coalesce(input_tokens, 0) + $4,
                           output_tokens = coalesce(output_tokens, 0) + $5,
                           cost = CASE WHEN $6::float8 IS NULL THEN cost ELSE coalesce(cost, 0) + $6 END,
                           error_code = $7, error_message = $8, reply_id = $9, pending_approvals = $11::jsonb
                       WHERE id = $1 AND status = 'running' AND EXISTS (SELECT 1 FROM held) RETURNING *""",
                    self.run_id,
                    status.value,
                    usage.requests if usage else None,
                    usage.input_tokens if usage else None,
                    usage.output_tokens if usage else None,
                    outcome.cost(usage),
                    error.code if error else None,
                    error.message if error else None,
                    reply_id if outcome.has_reply(status, error) and waiting is None else None,
                    self.session_id,
                    json.dumps(
                        [
                            {
                                "tool_call_id": a.tool_call_id,
                                "tool_name": a.tool_name,
                                "arguments": a.arguments,
                            }
                            for a in asked
                        ]
                    ),
                )
                if record is None:
                    raise RunGone(f"run {self.run_id} was ended elsewhere")
                added = await self._write(conn, pending, drafts, guard=False) if pending else []
                run = model_from(Run, record)
                last: list[events.AgentEvent] = [events.MessageAdded(m) for m in added]
                ending: events.AgentEvent = (
                    events.ApprovalRequested(self.run_id, asked)
                    if waiting is not None
                    else events.RunFinished(run)
                )
                last.append(ending)
                batch = await rt.fanout.send_run(self.session_id, self.run_id, conn, last)
                if waiting is not None:
                    # Kept for whoever joins during the pause and for the process that goes on.
                    await conn.execute(
                        "UPDATE runs SET partial_text = $2, partial_index = $3 WHERE id = $1",
                        self.run_id,
                        self.handle.text,
                        self.handle.index,
                    )
                elif rt.fanout.stored_text(self.run_id, batch) and not (
                    rt.fanout.ranged(self.run_id) or batch.has_ranges()
                ):
                    # Text was kept for watchers elsewhere, and no notification points into it.
                    await conn.execute(
                        "UPDATE runs SET partial_text = '' WHERE id = $1 AND partial_text <> ''", self.run_id
                    )
        except BaseException:
            if batch is not None:
                rt.fanout.give_back(batch)
            raise
        rt.fanout.committed(batch)
        rt.fanout.forget(self.run_id)
        self._stored_more(len(pending), added, outcome.reply_of(added))
        for message in added:
            rt.hub.deliver(self.session_id, events.MessageAdded(message))
        rt.hub.deliver(self.session_id, ending)
        self.handle.result = TurnResult(
            run=run,
            user_message=self.stored.user_message,
            reply=self.stored.reply if outcome.has_reply(status, error) and waiting is None else None,
            messages=[self.stored.user_message, *self.stored.messages],
        )

    async def _gone(self) -> None:
        """The run was ended elsewhere (or deleted): answer with what the database says."""
        self.rt.fanout.forget(self.run_id)
        run = await Run.get_or_none(id=self.run_id)
        if run is not None:
            self.handle.result = TurnResult(
                run=run,
                user_message=self.stored.user_message,
                reply=None,
                messages=[self.stored.user_message, *self.stored.messages],
            )
