// The open session as the page knows it: the persisted messages of its active branch (from
// queries and MessageAdded events) and the reply being written now (from the run's events).
//
// One stream at a time feeds it: the `chat`, `editMessage` or `regenerate` subscription while
// this page's own request is answered; otherwise a `sessionEvents` watcher, which shows replies
// started elsewhere, joins a running reply (RunStarted + TextSnapshot, then deltas) and resumes
// after a dropped socket from the last message seen (`afterSequence`). Two streams of one run
// could not be merged: each subscriber's deltas are coalesced differently. Every event is applied
// idempotently (messages by id, text by delta index, snapshots replace), so whatever a resumed
// stream replays is harmless.
//
// A run that waits for approval (WAITING_APPROVAL) keeps its stream open: ApprovalRequested
// brings the calls waiting, which the page shows until a decision (this page's, or another's that
// the run's next events reveal) lets the run go on. A watcher that joins a paused run gets
// RunStarted, the text so far and the pending ApprovalRequested, so a reload shows the prompt.
//
// The messages shown are always one path of the session's tree, oldest first. A new message
// continues it when its parent is the last one shown (Parley adds messages only at the head).
// Anything else (a replay of another branch, a version made elsewhere) is not guessed at: the
// active branch is read again by query and merged with what is shown.
import { MESSAGE_FIELDS, RUN_FIELDS, SESSION_FIELDS, describe, gql, onConnected, subscribe } from "./api.js";

const PAGE = 30;
const ENDED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

const REQUEST_FIELDS = "toolCallId toolName arguments";
const EVENT_FIELDS = `
  __typename
  ... on RunStarted { run { ${RUN_FIELDS} } }
  ... on RunFinished { run { ${RUN_FIELDS} } }
  ... on TextDelta { runId index delta }
  ... on TextSnapshot { runId index text }
  ... on ThinkingDelta { runId delta }
  ... on ToolCallStarted { runId toolCallId toolName arguments }
  ... on ToolCallFinished { runId toolCallId toolName result }
  ... on MessageAdded { message { ${MESSAGE_FIELDS} } }
  ... on ApprovalRequested { runId requests { ${REQUEST_FIELDS} } }`;

const CHAT = `subscription Chat($sessionId: UUID!, $content: String!, $key: String, $attachments: [UUID!]) {
  chat(sessionId: $sessionId, content: $content, idempotencyKey: $key, attachments: $attachments) { ${EVENT_FIELDS} }
}`;
const EDIT = `subscription Edit($messageId: UUID!, $content: String!, $key: String, $attachments: [UUID!]) {
  editMessage(messageId: $messageId, content: $content, idempotencyKey: $key, attachments: $attachments) {
    ${EVENT_FIELDS}
  }
}`;
const REGENERATE = `subscription Regenerate($messageId: UUID!, $key: String) {
  regenerate(messageId: $messageId, idempotencyKey: $key) { ${EVENT_FIELDS} }
}`;
const WATCH = `subscription Watch($sessionId: UUID!, $afterSequence: Int) {
  sessionEvents(sessionId: $sessionId, afterSequence: $afterSequence) { ${EVENT_FIELDS} }
}`;
const MESSAGES_PAGE = `edges { node { ${MESSAGE_FIELDS} } } pageInfo { hasPreviousPage startCursor }`;
const OPEN = `query OpenSession($id: UUID!, $last: Int!) {
  session(id: $id) { ${SESSION_FIELDS} messages(last: $last) { ${MESSAGES_PAGE} } }
}`;
const BRANCH = `query ActiveBranch($id: UUID!, $last: Int!) {
  session(id: $id) { messages(last: $last) { ${MESSAGES_PAGE} } }
}`;
const SWITCH = `mutation SwitchBranch($messageId: UUID!, $last: Int!) {
  switchBranch(messageId: $messageId) { messages(last: $last) { ${MESSAGES_PAGE} } }
}`;
const OLDER = `query OlderMessages($id: UUID!, $last: Int!, $before: String!) {
  messages(sessionId: $id, last: $last, before: $before) { ${MESSAGES_PAGE} }
}`;
const CREATE = `mutation NewChat($agentName: String) {
  createSession(input: { agentName: $agentName }) { ${SESSION_FIELDS} }
}`;
const RUN = `query RunStatus($id: UUID!) { run(id: $id) { ${RUN_FIELDS} } }`;
const TITLE = `query Title($id: UUID!) { session(id: $id) { title } }`;
const CANCEL = `mutation Stop($id: UUID!) { cancelRun(id: $id) { ${RUN_FIELDS} } }`;
const RESOLVE = `mutation Decide($runId: UUID!, $decisions: [ApprovalDecision!]!) {
  resolveApprovals(runId: $runId, decisions: $decisions) { id status }
}`;
const PENDING = `query Pending($id: UUID!) {
  run(id: $id) { ${RUN_FIELDS} requests: pendingApprovals { ${REQUEST_FIELDS} } }
}`;
// The events after which a paused run is known to go on (its calls were decided).
const PROGRESS = new Set(["TextDelta", "ThinkingDelta", "ToolCallStarted", "ToolCallFinished"]);

const newKey = () =>
  crypto.randomUUID?.() ?? Array.from(crypto.getRandomValues(new Uint32Array(4)), (n) => n.toString(16)).join("-");

export class SessionState {
  session = null; // { id, title, agent { name model } }, null until loaded (or for a new chat)
  messages = []; // persisted messages of the active branch, oldest first (a path of the tree)
  olderCursor = null; // where older messages start, while there are any
  run = null; // the reply being written: { id, text, index, thinking, tools: Map, approvals, ... }
  thinking = new Map(); // run id -> its thinking, kept after the run ends (it is not persisted)
  pending = null; // this page's message { content, attachments } until the server confirms it
  starting = false; // an edit or regeneration of this page's, until Parley accepts or refuses it
  switching = false; // a move to another branch, until its messages are here
  failure = null; // the last run's error { code, message }, shown under the conversation
  connection = "live"; // or "reconnecting"
  loading = true;
  loadError = null; // why the session could not be loaded

  #known = new Set(); // every message id heard of, on the active branch or not
  #seen = 0; // the highest sequence heard of: a resumed watcher replays what came after it
  #branchTicket = 0; // orders reads of the active branch: an older answer never replaces a newer one
  #adoptedTicket = 0;
  #reloading = null;
  #reloadAgain = false;
  #finished = new Set(); // runs already ended: a late RunStarted for them is stale
  #stream = null;
  #older = null;
  #retry = { timer: 0, attempt: 0 };
  #closed = false;
  #offConnected;

  /**
   * @param {string|null} sessionId null for a new chat (created by the first send)
   * @param {{changed: () => void, notice: (text: string) => void, created: (session) => void,
   *          activity: () => void, gone: () => void}} hooks
   */
  constructor(sessionId, hooks) {
    this.sessionId = sessionId;
    this.hooks = hooks;
    this.loading = sessionId !== null;
    this.#offConnected = onConnected(() => {
      this.#retry.attempt = 0;
      if (this.connection !== "live") this.#set({ connection: "live" });
    });
  }

  get running() {
    return this.run !== null;
  }

  /** Whether the reply waits for a decision on tool calls (the calls are in `run.approvals`). */
  get waiting() {
    return this.run !== null && this.run.approvals.length > 0;
  }

  /** Whether the conversation must not be changed now (Edit, Regenerate and the branch picker wait). */
  get busy() {
    return this.loading || this.running || this.starting || this.switching || this.pending !== null;
  }

  async open() {
    let session;
    try {
      ({ session } = await gql(OPEN, { id: this.sessionId, last: PAGE }));
    } catch (error) {
      if (!this.#closed) this.#set({ loadError: describe(error) }); // the conversation offers to try again
      return;
    }
    if (this.#closed) return;
    if (!session) {
      this.hooks.gone();
      return;
    }
    this.session = session;
    this.#adopt(session.messages);
    this.loading = false;
    this.loadError = null;
    this.#watch(this.#seen); // also joins a reply that is running now
    this.hooks.changed();
  }

  /** Loads the page of messages before the oldest shown; resolves false if that failed. */
  loadOlder() {
    if (!this.olderCursor) return Promise.resolve(false);
    // One page at a time, whoever asks (scrolling up, or a search hit further back).
    const before = this.olderCursor;
    this.#older ??= gql(OLDER, { id: this.sessionId, last: PAGE, before })
      .then(({ messages }) => {
        if (this.olderCursor === before) this.#prepend(messages); // else the branch was read again meanwhile
        this.hooks.changed();
        return true;
      })
      .catch((error) => {
        this.hooks.notice(describe(error));
        return false;
      })
      .finally(() => (this.#older = null));
    return this.#older;
  }

  /**
   * Loads older pages until the message is there (a search hit may be far back); a message of
   * another branch makes its branch the active one. Resolves false if it is gone.
   */
  async reveal(messageId) {
    const shown = () => this.messages.some((m) => m.id === messageId);
    while (!shown() && (await this.loadOlder()));
    if (shown()) return true;
    try {
      await this.#switch(messageId);
    } catch {
      return false;
    }
    while (!shown() && (await this.loadOlder()));
    return shown();
  }

  /** Sends a message (its words and uploaded files) and streams its reply; resolves false when Parley refused it. */
  async send(content, agentName, attachments = []) {
    this.failure = null;
    this.pending = { content, attachments };
    this.hooks.changed();
    if (!this.sessionId) {
      try {
        const { createSession } = await gql(CREATE, { agentName });
        this.session = createSession;
        this.sessionId = createSession.id;
        this.hooks.created(createSession);
      } catch (error) {
        this.pending = null;
        this.hooks.notice(describe(error));
        this.hooks.changed();
        return false;
      }
    }
    return new Promise((accepted) => {
      const key = newKey(); // a retried send never starts a second run
      const ids = attachments.map((a) => a.id);
      this.#follow("chat", CHAT, { sessionId: this.sessionId, content, key, attachments: ids }, { accepted });
    });
  }

  /**
   * Sends a new version of a user message (exactly these files go with it) and streams its
   * reply; resolves false when refused.
   */
  edit(message, content, attachments = []) {
    const variables = { messageId: message.id, content, attachments: attachments.map((a) => a.id) };
    return this.#fork("edit", EDIT, variables, message.parentId);
  }

  /**
   * Asks for a new reply in place of `message` (a reply), or for a reply to `message` (a user
   * message whose reply failed); resolves false when refused.
   */
  regenerate(message) {
    const at = this.messages.findIndex((m) => m.id === message.id);
    // The message answered: the user message itself, or the one before the reply.
    const asked = message.role === "USER" ? message : this.messages.slice(0, at).findLast((m) => m.role === "USER");
    return this.#fork("regenerate", REGENERATE, { messageId: message.id }, asked?.id ?? null);
  }

  /** Makes the branch through `messageId` active and shows it; resolves false when that failed. */
  async switchTo(messageId) {
    try {
      await this.#switch(messageId);
      return true;
    } catch (error) {
      this.hooks.notice(describe(error));
      return false;
    }
  }

  async stop() {
    if (!this.run) return;
    try {
      // Running or waiting for approval: the stream brings the partial reply and RunFinished.
      await gql(CANCEL, { id: this.run.id });
    } catch (error) {
      this.hooks.notice(describe(error));
    }
  }

  /**
   * Sends the decisions on the calls the paused reply waits on, one per call:
   * [{ toolCallId, approve, message? }]. The stream shows the run going on; resolves false when
   * Parley refused them (the calls still waiting are shown again).
   */
  async decide(decisions) {
    const run = this.run;
    if (!run?.approvals.length) return false;
    const asked = run.approvals;
    run.approvals = []; // what follows comes by the stream (or another pause asks again)
    this.hooks.changed();
    try {
      // It answers once the run has ended or paused again: the stream has shown that already.
      await gql(RESOLVE, { runId: run.id, decisions });
      return true;
    } catch (error) {
      if (error.code !== "UNAUTHENTICATED") this.hooks.notice(describe(error));
      await this.#readApprovals(run, asked);
      return false;
    }
  }

  close() {
    this.#closed = true;
    this.#stream?.stop();
    this.#stream = null;
    clearTimeout(this.#retry.timer);
    this.#offConnected();
  }

  #set(fields) {
    Object.assign(this, fields);
    this.hooks.changed();
  }

  #know(messages) {
    for (const message of messages) {
      this.#known.add(message.id);
      this.#seen = Math.max(this.#seen, message.sequence);
    }
  }

  /**
   * Shows a page of the active branch (its newest messages): what is shown before it and is its
   * ancestor stays, and so do messages that arrived after it while it was read.
   */
  #adopt(connection) {
    const page = connection.edges.map((edge) => edge.node);
    this.#know(page);
    const shown = this.messages;
    const at = (id) => shown.findIndex((m) => m.id === id);
    // Where the page starts in what is shown: at its first message, or right after that one's parent.
    let start = page.length ? at(page[0].id) : -1;
    if (start < 0 && page[0]?.parentId && at(page[0].parentId) >= 0) start = at(page[0].parentId) + 1;
    if (start < 0) {
      this.messages = page;
      this.olderCursor = connection.pageInfo.hasPreviousPage ? connection.pageInfo.startCursor : null;
      return;
    }
    const end = at(page.at(-1).id);
    this.messages = [...shown.slice(0, start), ...page, ...(end < 0 ? [] : shown.slice(end + 1))];
  }

  #prepend(connection) {
    const page = connection.edges.map((edge) => edge.node);
    this.#know(page);
    if (page.length && this.messages.length && page.at(-1).id !== this.messages[0].parentId) {
      this.#reload(); // the branch changed under the page: it is not the start of what is shown
      return;
    }
    this.messages = [...page, ...this.messages];
    this.olderCursor = connection.pageInfo.hasPreviousPage ? connection.pageInfo.startCursor : null;
  }

  /** A persisted message from a stream: it continues the branch shown, or the branch is read again. */
  #added(message) {
    if (this.#known.has(message.id)) return; // a replay
    this.#know([message]);
    if (message.parentId === (this.messages.at(-1)?.id ?? null)) this.messages = [...this.messages, message];
    else this.#reload();
  }

  /** Reads the active branch again; one read at a time, and one more if asked meanwhile. */
  #reload() {
    if (this.#reloading) {
      this.#reloadAgain = true;
      return;
    }
    this.#reloading = this.#readBranch(BRANCH, { id: this.sessionId, last: PAGE }, (data) => data.session?.messages)
      .catch((error) => this.hooks.notice(describe(error)))
      .finally(() => {
        this.#reloading = null;
        if (this.#reloadAgain && !this.#closed) {
          this.#reloadAgain = false;
          this.#reload();
        }
      });
  }

  async #switch(messageId) {
    this.#set({ switching: true });
    try {
      await this.#readBranch(SWITCH, { messageId, last: PAGE }, (data) => data.switchBranch.messages);
    } finally {
      this.#set({ switching: false });
    }
  }

  async #readBranch(query, variables, pick) {
    const ticket = ++this.#branchTicket;
    const data = await gql(query, variables);
    if (this.#closed || ticket < this.#adoptedTicket) return; // a newer read has answered already
    this.#adoptedTicket = ticket;
    const page = pick(data);
    if (page) this.#adopt(page);
    else this.hooks.gone();
    this.hooks.changed();
  }

  /** An edit or a regeneration: once Parley accepts it, what followed `keepThrough` gives way. */
  #fork(kind, query, variables, keepThrough) {
    this.failure = null;
    this.#set({ starting: true });
    return new Promise((resolve) => {
      const accepted = (ok) => {
        this.starting = false;
        resolve(ok);
      };
      this.#follow(kind, query, { ...variables, key: newKey() }, { accepted, fork: { keepThrough } });
    });
  }

  #cut(keepThrough) {
    this.#adoptedTicket = ++this.#branchTicket; // a read of the branch asked before this is out of date
    const at = keepThrough === null ? -1 : this.messages.findIndex((m) => m.id === keepThrough);
    this.messages = this.messages.slice(0, at + 1);
    if (!this.messages.length) this.olderCursor = null; // a parent not loaded: the new message reloads the branch
  }

  #watch(afterSequence, resumed = false) {
    this.#follow("watch", WATCH, { sessionId: this.sessionId, afterSequence }, { resumed });
  }

  /** Makes this operation the session's one stream. */
  #follow(kind, query, variables, { accepted = null, fork = null, resumed = false } = {}) {
    clearTimeout(this.#retry.timer); // a pending resume would replace this stream
    this.#stream?.stop();
    const stream = { kind, query, variables, accepted, fork, resumed, heard: false };
    this.#stream = stream;
    const mine = () => this.#stream === stream && !this.#closed;
    stream.stop = subscribe(query, variables, {
      next: (data) => mine() && this.#event(stream, Object.values(data)[0]),
      error: (error) => mine() && this.#lost(stream, error),
      complete: () => mine() && this.#ended(stream),
    });
  }

  #event(stream, event) {
    if (!stream.heard) {
      stream.heard = true;
      if (stream.fork) this.#cut(stream.fork.keepThrough);
      stream.accepted?.(true);
      // A resumed stream's first event proves it is registered: from now on it sees the end of
      // the run it may have missed; asking now tells whether that end came before.
      if (stream.resumed && this.run) this.#checkRun(this.run.id);
    }
    this.#apply(event);
    this.hooks.changed();
  }

  #apply(event) {
    const run = this.run && this.run.id === (event.runId ?? event.run?.id) ? this.run : null;
    // Decided elsewhere (another tab): the run goes on, so its calls wait no more.
    if (this.run?.approvals.length && this.#goesOn(this.run.id, event)) this.run.approvals = [];
    switch (event.__typename) {
      case "MessageAdded":
        this.#added(event.message);
        if (event.message.role === "USER") this.pending = null;
        break;
      case "RunStarted":
        if (!this.#finished.has(event.run.id) && !run) {
          this.run = { ...event.run, text: "", index: 0, thinking: "", tools: new Map(), approvals: [] };
          this.hooks.activity();
        }
        break;
      case "ApprovalRequested":
        if (run) run.approvals = event.requests;
        break;
      case "TextSnapshot": // the whole text so far: it replaces what a dropped stream gave
        if (run) Object.assign(run, { text: event.text, index: event.index });
        break;
      case "TextDelta": // `index` counts the model's deltas: one already covered is skipped
        if (run && event.index > run.index) Object.assign(run, { text: run.text + event.delta, index: event.index });
        break;
      case "ThinkingDelta":
        if (run) run.thinking += event.delta;
        break;
      case "ToolCallStarted":
        run?.tools.set(event.toolCallId, { id: event.toolCallId, name: event.toolName, arguments: event.arguments });
        break;
      case "ToolCallFinished":
        if (run) {
          const call = run.tools.get(event.toolCallId) ?? { id: event.toolCallId, name: event.toolName };
          run.tools.set(event.toolCallId, { ...call, done: true, result: event.result });
        }
        break;
      case "RunFinished":
        this.#finishRun(event.run);
        break;
    }
  }

  #goesOn(runId, event) {
    if (event.__typename === "MessageAdded") return event.message.runId === runId && event.message.role === "TOOL";
    return event.runId === runId && PROGRESS.has(event.__typename);
  }

  #finishRun(run) {
    this.#finished.add(run.id);
    if (this.run?.id === run.id) {
      if (this.run.thinking) this.thinking.set(run.id, this.run.thinking);
      this.run = null;
    }
    if (run.status === "FAILED" && run.error) this.failure = run.error;
    if (this.session && !this.session.title) this.#fetchTitle(); // Parley titles a chat after its first message
    this.hooks.activity();
    this.hooks.changed();
  }

  async #fetchTitle() {
    const { session } = await gql(TITLE, { id: this.sessionId }).catch(() => ({ session: null }));
    if (session?.title && this.session) {
      this.session = { ...this.session, title: session.title };
      this.hooks.changed();
    }
  }

  /** After refused decisions: the calls the run still waits on, read again (or those asked, if that fails). */
  async #readApprovals(run, asked) {
    let fresh = null;
    try {
      ({ run: fresh } = await gql(PENDING, { id: run.id }));
    } catch {
      // shown again as they were: deciding again tells
    }
    if (this.#closed || this.run !== run || run.approvals.length) return; // the stream knows better
    if (fresh && ENDED.has(fresh.status)) this.#finishRun(fresh);
    else {
      run.approvals = fresh ? fresh.requests : asked;
      this.hooks.changed();
    }
  }

  async #checkRun(runId) {
    try {
      const { run } = await gql(RUN, { id: runId });
      if (run && ENDED.has(run.status)) this.#finishRun(run);
    } catch {
      // the stream still brings RunFinished if the run goes on
    }
  }

  #ended(stream) {
    if (stream.kind !== "watch") {
      this.#watch(this.#seen); // our reply is done: watch for the next one
    } else {
      this.#stream = null;
      this.hooks.gone(); // the server ends a watch when the session is deleted
    }
  }

  #lost(stream, error) {
    this.#stream = null;
    // SERVICE_UNAVAILABLE and SUBSCRIBER_TOO_SLOW end a stream (not the socket) that may simply be resumed.
    if (["DISCONNECTED", "SERVICE_UNAVAILABLE", "SUBSCRIBER_TOO_SLOW"].includes(error.code)) {
      if (error.code === "DISCONNECTED") this.#set({ connection: "reconnecting" }); // until the socket is back
      if (stream.kind !== "watch" && !stream.heard) {
        // The request may or may not have arrived: the same idempotency key makes this safe.
        const { kind, query, variables, accepted, fork } = stream;
        this.#later(() => this.#follow(kind, query, variables, { accepted, fork }));
      } else {
        // With a reply in flight, resume one message back: the replayed message proves the
        // watcher is attached before we ask whether the run ended meanwhile (#event).
        this.#later(() => this.#watch(Math.max(this.#seen - (this.run ? 1 : 0), 0), true));
      }
      return;
    }
    stream.accepted?.(false);
    if (stream.kind !== "watch") this.pending = null;
    if (error.code === "NOT_FOUND" && !stream.fork) {
      this.hooks.gone();
      return;
    }
    if (error.code === "UNAUTHENTICATED") return; // the app signs out
    this.hooks.notice(describe(error));
    if (error.code === "QUOTA_EXCEEDED") this.hooks.activity(); // the usage shown is out of date
    if (error.code === "NOT_FOUND") this.#reload(); // the message edited or answered again is gone
    // A refused request (e.g. RUN_IN_PROGRESS): watch again, which joins the reply running
    // now. A refused watch is not retried at once: it would only be refused again.
    if (stream.kind !== "watch") this.#watch(this.#seen);
    this.hooks.changed();
  }

  /** Retries with a growing, jittered delay (1 s, 2 s, 4 s ... 15 s). */
  #later(action) {
    const delay = Math.min(15_000, 1000 * 2 ** this.#retry.attempt++) * (0.75 + Math.random() / 2);
    clearTimeout(this.#retry.timer);
    this.#retry.timer = setTimeout(() => this.#closed || action(), delay);
  }
}
