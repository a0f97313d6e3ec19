// The conversation: a `log` region named "Conversation" whose messages are articles labelled by
// role ("user", "assistant", "tool"), with the reply being written at the end. It shows the active
// branch; each message offers its actions: Edit on the user's words, Regenerate at the end of a
// reply (or on the user's last message when its reply failed), and the branch picker ("Previous
// branch", "2/3", "Next branch") where it has siblings. A reply waiting for approval shows each
// call it waits on with Approve and Deny.
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { MessageFiles } from "./attachments.js";
import { MessageEditor } from "./composer.js";
import { details, fullDate } from "./format.js";
import { html } from "./html.js";
import { Markdown } from "./markdown.js";

const ROLE_LABEL = { USER: "user", ASSISTANT: "assistant", TOOL: "tool", SYSTEM: "system" };
const NEAR_BOTTOM_PX = 80;

const json = (value) => (typeof value === "string" ? value : JSON.stringify(value, null, 2));

/** One tool call, collapsed: its name, then arguments and (when known) result on demand. */
function ToolCall({ name, args, result, running, label = running ? `Running ${name}…` : `Tool call: ${name}` }) {
  return html`<details class="tool-call">
    <summary>${label}</summary>
    ${args != null && html`<pre class="json">${json(args)}</pre>`}
    ${
      result !== undefined &&
      html`<p class="label">Result</p>
        <pre class="json">${json(result)}</pre>`
    }
  </details>`;
}

function Thinking({ text, live }) {
  return html`<details class="thinking">
    <summary>${live ? "Thinking…" : "Thinking"}</summary>
    <p>${text}</p>
  </details>`;
}

/** The versions of a message (its siblings): "2/3" between Previous and Next branch. */
function BranchPicker({ message, disabled, onSwitch }) {
  const count = message.siblingIds.length;
  if (count < 2) return null;
  const at = message.siblingIndex;
  const move = (step, label) => onSwitch(message.siblingIds[at + step], label);
  return html`<span class="branches" role="group" aria-label="Branch">
    <button
      type="button"
      class="link"
      aria-label="Previous branch"
      disabled=${disabled || at === 0}
      onClick=${() => move(-1, "Previous branch")}
    >
      ‹
    </button>
    <span class="count">${`${at + 1}/${count}`}</span>
    <button
      type="button"
      class="link"
      aria-label="Next branch"
      disabled=${disabled || at === count - 1}
      onClick=${() => move(1, "Next branch")}
    >
      ›
    </button>
  </span>`;
}

/**
 * A message and its actions. `actions`: { busy, edit(message, text, attachments), regenerate(message),
 * switchTo(messageId), decide(decisions), notice(text) }, each resolving whether Parley took it; `replyEnd`:
 * where Regenerate goes (the last message of a reply, or a user message left without one).
 */
function Message({ message, thinking, replyEnd, actions }) {
  const [editing, setEditing] = useState(false);
  const editButton = useRef(null);
  const role = ROLE_LABEL[message.role] ?? message.role.toLowerCase();
  let body;
  if (message.role === "ASSISTANT") {
    body = [
      thinking && html`<${Thinking} text=${thinking} />`,
      message.content && html`<${Markdown} text=${message.content} />`,
      ...message.toolCalls.map((call) => html`<${ToolCall} key=${call.id} name=${call.name} args=${call.arguments} />`),
    ];
  } else if (message.role === "TOOL") {
    const name = message.toolName ?? "tool";
    body = html`<${ToolCall} name=${name} result=${message.content} label=${`Result of ${name}`} />`;
  } else if (editing) {
    const stop = () => {
      setEditing(false);
      requestAnimationFrame(() => editButton.current?.focus()); // back where the keyboard was
    };
    body = html`<${MessageEditor}
      content=${message.content}
      attachments=${message.attachments}
      disabled=${actions.busy}
      notice=${actions.notice}
      onSend=${(text, attachments) => actions.edit(message, text, attachments)}
      onCancel=${stop}
    />`;
  } else {
    body = [
      html`<${MessageFiles} attachments=${message.attachments} notice=${actions.notice} />`,
      message.content && html`<p class="text">${message.content}</p>`, // people's words are shown as typed
    ];
  }
  const detail = message.role === "ASSISTANT" ? details(message) : "";
  // Moving to a sibling replaces this article: the focus goes to the same button of the new one
  // (or, at the end of the versions, to the other).
  const switchTo = async (id, label) => {
    if (!(await actions.switchTo(id))) return;
    requestAnimationFrame(() => {
      const target = document.getElementById(`m-${id}`);
      const picker = target?.querySelector(".branches");
      const button =
        picker?.querySelector(`button[aria-label="${label}"]:not(:disabled)`) ??
        picker?.querySelector("button:not(:disabled)");
      (button ?? target)?.focus();
    });
  };
  return html`<article
    id=${`m-${message.id}`}
    class=${`message ${role}${editing ? " editing" : ""}`}
    aria-label=${role}
    tabindex="-1"
  >
    ${body}
    <footer class="meta">
      <time datetime=${message.createdAt} title=${fullDate(message.createdAt)}>
        ${new Date(message.createdAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}
      </time>
      ${detail && html`<span class="detail">${detail}</span>`}
      <span class="actions">
        <${BranchPicker} message=${message} disabled=${actions.busy} onSwitch=${switchTo} />
        ${
          message.role === "USER" &&
          !editing &&
          html`<button
            type="button"
            class="link"
            ref=${editButton}
            disabled=${actions.busy}
            onClick=${() => setEditing(true)}
          >
            Edit
          </button>`
        }
        ${
          replyEnd &&
          html`<button type="button" class="link" disabled=${actions.busy} onClick=${() => actions.regenerate(message)}>
            Regenerate
          </button>`
        }
      </span>
    </footer>
  </article>`;
}

/** How a decided call reads until the decisions are sent. */
const decided = (decision) =>
  decision.approve ? "Approved" : `Denied${decision.message ? `: ${decision.message}` : ""}`;

/**
 * The calls a paused reply waits on, each with its arguments, Approve, Deny and a reason the
 * model reads when denied. One decision per call: they are sent together once every call has
 * one (at once when there is one call).
 */
function ApprovalPrompt({ requests, onDecide }) {
  const [decisions, setDecisions] = useState({}); // toolCallId -> { approve, message? }
  const [reasons, setReasons] = useState({});
  const decide = (entries) => {
    const next = { ...decisions, ...Object.fromEntries(entries) };
    if (requests.every((r) => next[r.toolCallId])) {
      onDecide(requests.map((r) => ({ toolCallId: r.toolCallId, ...next[r.toolCallId] })));
    } else setDecisions(next);
  };
  const approve = (id) => [id, { approve: true }];
  const deny = (id) => {
    const message = reasons[id]?.trim();
    return [id, message ? { approve: false, message } : { approve: false }];
  };
  const undecided = requests.filter((r) => !decisions[r.toolCallId]);
  const change = (id) => {
    const { [id]: _, ...rest } = decisions;
    setDecisions(rest);
  };
  const calls = requests.length > 1 ? `${requests.length} tool calls` : "a tool call";
  return html`<section class="approvals" aria-label="Approval needed">
    <p class="approvals-title">The reply waits for your decision on ${calls}.</p>
    ${requests.map((request) => {
      const id = request.toolCallId;
      const decision = decisions[id];
      return html`<div key=${id} class="approval" role="group" aria-label=${`Tool call ${request.toolName}`}>
        <p class="approval-name">Run <code>${request.toolName}</code> with:</p>
        <pre class="json">${json(request.arguments ?? {})}</pre>
        ${
          decision
            ? html`<p class="approval-decided">
                ${decided(decision)}
                <button type="button" class="link" onClick=${() => change(id)}>Change</button>
              </p>`
            : html`<div class="approval-actions">
                <input
                  type="text"
                  aria-label="Reason"
                  placeholder="Reason if you deny (optional, the model reads it)"
                  maxlength="2000"
                  value=${reasons[id] ?? ""}
                  onInput=${(event) => setReasons({ ...reasons, [id]: event.currentTarget.value })}
                />
                <span class="approval-buttons">
                  <button type="button" class="approve" onClick=${() => decide([approve(id)])}>Approve</button>
                  <button type="button" class="deny" onClick=${() => decide([deny(id)])}>Deny</button>
                </span>
              </div>`
        }
      </div>`;
    })}
    ${
      undecided.length > 1 &&
      html`<p class="approval-all">
        <button type="button" onClick=${() => decide(undecided.map((r) => approve(r.toolCallId)))}>Approve all</button>
      </p>`
    }
  </section>`;
}

/** The reply being written: what the stream has shown that no persisted message holds yet. */
function LiveReply({ run, messages, onDecide }) {
  const mine = messages.filter((m) => m.runId === run.id);
  const persisted = mine
    .filter((m) => m.role === "ASSISTANT")
    .map((m) => m.content)
    .join("");
  const text = run.text.startsWith(persisted) ? run.text.slice(persisted.length) : run.text;
  const answered = new Set(mine.filter((m) => m.role === "TOOL").map((m) => m.toolCallId));
  const asked = new Set(run.approvals.map((request) => request.toolCallId)); // shown in the prompt
  const calls = [...run.tools.values()].filter((call) => !answered.has(call.id) && !asked.has(call.id));
  const waiting = run.approvals.length > 0;
  // Everything said so far is a stored message already (the run is recording its end).
  if (persisted && !text && !calls.length && !waiting) return null;
  const key = run.approvals.map((request) => request.toolCallId).join(" "); // a new pause, a new prompt
  return html`<article class="message assistant live" aria-label="assistant" aria-busy="true">
    ${run.thinking && html`<${Thinking} text=${run.thinking} live=${!text} />`}
    ${calls.map(
      (call) =>
        html`<${ToolCall}
          key=${call.id}
          name=${call.name}
          args=${call.arguments}
          result=${call.result}
          running=${!call.done}
        />`,
    )}
    ${text && html`<${Markdown} text=${text} />`}
    ${
      waiting
        ? html`<${ApprovalPrompt} key=${key} requests=${run.approvals} onDecide=${onDecide} />`
        : !text && html`<p class="typing" aria-label="Writing">…</p>`
    }
  </article>`;
}

export function Conversation({ state, focusId, actions }) {
  const log = useRef(null);
  const atBottom = useRef(true);
  const fromBottom = useRef(null); // set while older messages are prepended

  const onScroll = () => {
    const el = log.current;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
  };

  // Follow the reply as it grows, unless the reader scrolled up; keep the view still when
  // older messages appear above.
  useLayoutEffect(() => {
    const el = log.current;
    if (fromBottom.current !== null) {
      el.scrollTop = el.scrollHeight - fromBottom.current;
      fromBottom.current = null;
    } else if (atBottom.current && !focusId) {
      el.scrollTop = el.scrollHeight;
    }
  });

  const loadOlder = async () => {
    fromBottom.current = log.current.scrollHeight - log.current.scrollTop;
    await state.loadOlder();
  };

  // Older messages load when their button scrolls into view (or is pressed).
  const older = useRef(null);
  useEffect(() => {
    if (!older.current) return undefined;
    const observer = new IntersectionObserver((entries) => entries[0].isIntersecting && loadOlder(), {
      root: log.current,
    });
    observer.observe(older.current);
    return () => observer.disconnect();
  }, [state.olderCursor]);

  return html`<div class="log" role="log" aria-label="Conversation" ref=${log} onScroll=${onScroll} tabindex="0">
    ${
      state.olderCursor &&
      html`<button type="button" class="older" ref=${older} onClick=${loadOlder}>Load older messages</button>`
    }
    ${
      state.loadError &&
      html`<p class="failure" role="alert">
        Could not load this chat: ${state.loadError}
        <button type="button" onClick=${() => state.open()}>Try again</button>
      </p>`
    }
    ${
      !state.loading &&
      !state.messages.length &&
      !state.pending &&
      !state.run &&
      html`<p class="empty">Send a message to start.</p>`
    }
    ${state.messages.map(
      (message, i) =>
        html`<${Message}
          key=${message.id}
          message=${message}
          thinking=${
            message.role === "ASSISTANT" && message.runId && firstOfRun(state.messages, message)
              ? state.thinking.get(message.runId)
              : undefined
          }
          replyEnd=${
            message.role === "ASSISTANT"
              ? (state.messages[i + 1]?.role ?? "USER") === "USER"
              : message.role === "USER" && i === state.messages.length - 1 && !state.busy // no reply: it failed
          }
          actions=${actions}
        />`,
    )}
    ${
      state.pending &&
      html`<article class="message user pending" aria-label="user" aria-busy="true">
        <${MessageFiles} attachments=${state.pending.attachments} notice=${actions.notice} />
        ${state.pending.content && html`<p class="text">${state.pending.content}</p>`}
      </article>`
    }
    ${state.run && html`<${LiveReply} run=${state.run} messages=${state.messages} onDecide=${actions.decide} />`}
    ${
      state.failure &&
      html`<p class="failure" role="alert">The reply failed (${state.failure.code}): ${state.failure.message}</p>`
    }
  </div>`;
}

function firstOfRun(messages, message) {
  return messages.find((m) => m.runId === message.runId && m.role === "ASSISTANT") === message;
}
