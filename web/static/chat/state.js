// The open session as the page knows it: its persisted messages (from queries and MessageAdded
// events) and the reply being written now (from the run's events).
//
// One stream at a time feeds it: the `chat` subscription while this page's own message is
// answered; otherwise a `sessionEvents` watcher, which shows replies started elsewhere, joins a
// running reply (RunStarted + TextSnapshot, then deltas) and resumes after a dropped socket from
// the last message seen (`afterSequence`). Two streams of one run could not be merged: each
// subscriber's deltas are coalesced differently. Every event is applied idempotently (messages
// by id, text by delta index, snapshots replace), so whatever a resumed stream replays is harmless.
import { MESSAGE_FIELDS, RUN_FIELDS, SESSION_FIELDS, describe, gql, onConnected, subscribe } from "./api.js";

const PAGE = 30;
const ENDED = new Set(["COMPLETED", "FAILED", "CANCELLED"]);

const EVENT_FIELDS = `
  __typename
  ... on RunStarted { run { ${RUN_FIELDS} } }
  ... on RunFinished { run { ${RUN_FIELDS} } }
  ... on TextDelta { runId index delta }
  ... on TextSnapshot { runId index text }
  ... on ThinkingDelta { runId delta }
  ... on ToolCallStarted { runId toolCallId toolName arguments }
  ... on ToolCallFinished { runId toolCallId toolName result }
  ... on MessageAdded { message { ${MESSAGE_FIELDS} } }`;

const CHAT = `subscription Chat($sessionId: UUID!, $content: String!, $key: String) {
  chat(sessionId: $sessionId, content: $content, idempotencyKey: $key) { ${EVENT_FIELDS} }
}`;
const WATCH = `subscription Watch($sessionId: UUID!, $afterSequence: Int) {
  sessionEvents(sessionId: $sessionId, afterSequence: $afterSequence) { ${EVENT_FIELDS} }
}`;
const MESSAGES_PAGE = `edges { node { ${MESSAGE_FIELDS} } } pageInfo { hasPreviousPage startCursor }`;
const OPEN = `query OpenSession($id: UUID!, $last: Int!) {
  session(id: $id) { ${SESSION_FIELDS} messages(last: $last) { ${MESSAGES_PAGE} } }
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

const newKey = () =>
  crypto.randomUUID?.() ?? Array.from(crypto.getRandomValues(new Uint32Array(4)), (n) => n.toString(16)).join("-");

export class SessionState {
  session = null; // { id, title, agent { name model } }, null until loaded (or for a new chat)
  messages = []; // persisted messages of the session, oldest first
  olderCursor = null; // where older messages start, while there are any
  run = null; // the reply being written: { id, text, index, thinking, tools: Map, ... }
  thinking = new Map(); // run id -> its thinking, kept after the run ends (it is not persisted)
  pending = null; // this page's message until the server confirms it
  failure = null; // the last run's error { code, message }, shown under the conversation
  connection = "live"; // or "reconnecting"
  loading = true;
  loadError = null; // why the session could not be loaded

  #ids = new Set();
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

  get lastSequence() {
    return this.messages.at(-1)?.sequence ?? 0;
  }

  get running() {
    return this.run !== null;
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
    this.#addPage(session.messages);
    this.loading = false;
    this.loadError = null;
    this.#watch(this.lastSequence); // also joins a reply that is running now
    this.hooks.changed();
  }

  /** Loads the page of messages before the oldest shown; resolves false if that failed. */
  loadOlder() {
    if (!this.olderCursor) return Promise.resolve(false);
    // One page at a time, whoever asks (scrolling up, or a search hit further back).
    this.#older ??= gql(OLDER, { id: this.sessionId, last: PAGE, before: this.olderCursor })
      .then(({ messages }) => {
        this.#addPage(messages);
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

  /** Loads older pages until the message is there (a search hit may be far back). */
  async reveal(messageId) {
    while (!this.#ids.has(messageId) && (await this.loadOlder()));
    return this.#ids.has(messageId);
  }

  /** Sends a message and streams its reply; resolves false when Parley refused it. */
  async send(content, agentName) {
    this.failure = null;
    this.pending = { content };
    this.hooks.changed();
    if (!this.sessionId) {
      try {
        const { createSession } = await gql(CREATE, { agentName });
        this.session = createSession;
        this.sessionId = createSession.id;
        this.hooks.created(createSession);
      } catch (error) {
        this.pending = null;
        this.hooks.notice(error.message);
        this.hooks.changed();
        return false;
      }
    }
    return new Promise((accepted) => {
      const key = newKey(); // a retried send never starts a second run
      this.#follow("chat", CHAT, { sessionId: this.sessionId, content, key }, accepted);
    });
  }

  async stop() {
    if (!this.run) return;
    try {
      await gql(CANCEL, { id: this.run.id }); // the stream brings the partial reply and RunFinished
    } catch (error) {
      this.hooks.notice(error.message);
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

  #addPage(connection) {
    this.#addMessages(connection.edges.map((edge) => edge.node));
    // Only the first page (or an older one) says whether there is more before it.
    if (!this.messages.length || connection.edges[0]?.node.sequence <= this.messages[0].sequence) {
      this.olderCursor = connection.pageInfo.hasPreviousPage ? connection.pageInfo.startCursor : null;
    }
  }

  #addMessages(messages) {
    const fresh = messages.filter((message) => !this.#ids.has(message.id));
    if (!fresh.length) return;
    fresh.forEach((message) => this.#ids.add(message.id));
    this.messages = [...this.messages, ...fresh].sort((a, b) => a.sequence - b.sequence);
  }

  #watch(afterSequence, resumed = false) {
    this.#follow("watch", WATCH, { sessionId: this.sessionId, afterSequence }, null, resumed);
  }

  /** Makes this operation the session's one stream. */
  #follow(kind, query, variables, accepted, resumed = false) {
    clearTimeout(this.#retry.timer); // a pending resume would replace this stream
    this.#stream?.stop();
    const stream = { kind, accepted, resumed, heard: false };
    this.#stream = stream;
    const mine = () => this.#stream === stream && !this.#closed;
    stream.stop = subscribe(query, variables, {
      next: (data) => mine() && this.#event(stream, Object.values(data)[0]),
      error: (error) => mine() && this.#lost(stream, error, variables),
      complete: () => mine() && this.#ended(stream),
    });
  }

  #event(stream, event) {
    if (!stream.heard) {
      stream.heard = true;
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
    switch (event.__typename) {
      case "MessageAdded":
        this.#addMessages([event.message]);
        if (event.message.role === "USER") this.pending = null;
        break;
      case "RunStarted":
        if (!this.#finished.has(event.run.id) && !run) {
          this.run = { ...event.run, text: "", index: 0, thinking: "", tools: new Map() };
          this.hooks.activity();
        }
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

  async #checkRun(runId) {
    try {
      const { run } = await gql(RUN, { id: runId });
      if (run && ENDED.has(run.status)) this.#finishRun(run);
    } catch {
      // the stream still brings RunFinished if the run goes on
    }
  }

  #ended(stream) {
    if (stream.kind === "chat") {
      this.#watch(this.lastSequence); // our reply is done: watch for the next one
    } else {
      this.#stream = null;
      this.hooks.gone(); // the server ends a watch when the session is deleted
    }
  }

  #lost(stream, error, variables) {
    this.#stream = null;
    // SERVICE_UNAVAILABLE and SUBSCRIBER_TOO_SLOW end a stream (not the socket) that may simply be resumed.
    if (["DISCONNECTED", "SERVICE_UNAVAILABLE", "SUBSCRIBER_TOO_SLOW"].includes(error.code)) {
      if (error.code === "DISCONNECTED") this.#set({ connection: "reconnecting" }); // until the socket is back
      if (stream.kind === "chat" && !stream.heard) {
        // The message may or may not have arrived: the same idempotency key makes this safe.
        this.#later(() => this.#follow("chat", CHAT, variables, stream.accepted));
      } else {
        // With a reply in flight, resume one message back: the replayed message proves the
        // watcher is attached before we ask whether the run ended meanwhile (#event).
        this.#later(() => this.#watch(Math.max(this.lastSequence - (this.run ? 1 : 0), 0), true));
      }
      return;
    }
    stream.accepted?.(false);
    if (stream.kind === "chat") this.pending = null;
    if (error.code === "NOT_FOUND") {
      this.hooks.gone();
      return;
    }
    if (error.code === "UNAUTHENTICATED") return; // the app signs out
    this.hooks.notice(describe(error));
    // A refused message (e.g. RUN_IN_PROGRESS): watch again, which joins the reply running
    // now. A refused watch is not retried at once: it would only be refused again.
    if (stream.kind === "chat") this.#watch(this.lastSequence);
    this.hooks.changed();
  }

  /** Retries with a growing, jittered delay (1 s, 2 s, 4 s ... 15 s). */
  #later(action) {
    const delay = Math.min(15_000, 1000 * 2 ** this.#retry.attempt++) * (0.75 + Math.random() / 2);
    clearTimeout(this.#retry.timer);
    this.#retry.timer = setTimeout(() => this.#closed || action(), delay);
  }
}
