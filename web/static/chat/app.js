// The page: sign-in, then the session list beside the open chat. Routes live in the URL hash
// (#/ a new chat, #/s/<session>, #/s/<session>/m/<message>), so chats can be linked and the
// browser's back button works.
import { Component, render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { auth, describe, gql } from "./api.js";
import { useFileDrop, usePendingFiles } from "./attachments.js";
import { Composer } from "./composer.js";
import { Conversation } from "./conversation.js";
import { html } from "./html.js";
import { SessionList, sessionHref } from "./sessions.js";
import { SessionState } from "./state.js";
import { Usage } from "./usage.js";

const START = `query Start { viewer { name } agents { name model } }`;
const AGENTS = `query Agents { agents { name model } }`;
const RENAME = `mutation Rename($id: UUID!, $title: String!) { updateSession(id: $id, input: { title: $title }) { id title } }`;
const WAITING_HINT = "The reply waits for your decision: Approve or Deny its tool calls above, or press Stop.";
const DELETE = `mutation Delete($id: UUID!) { deleteSession(id: $id) }`;

function parseRoute() {
  const match = location.hash.match(/^#\/s\/([0-9a-f-]{36})(?:\/m\/([0-9a-f-]{36}))?$/i);
  return match ? { sessionId: match[1], messageId: match[2] ?? null } : { sessionId: null, messageId: null };
}

function useRoute() {
  const [route, setRoute] = useState(parseRoute);
  useEffect(() => {
    const update = () => setRoute(parseRoute());
    addEventListener("hashchange", update);
    return () => removeEventListener("hashchange", update);
  }, []);
  return route;
}

function SignIn({ message, onSignedIn }) {
  const [error, setError] = useState(message);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const token = new FormData(event.currentTarget)
      .get("token")
      .trim()
      .replace(/^Bearer\s+/i, "");
    if (!token) return;
    setBusy(true);
    try {
      const start = await gql(START, {}, token);
      auth.save(token);
      onSignedIn(start);
    } catch (e) {
      setError(e.code === "UNAUTHENTICATED" ? "That token was not accepted. Check it and try again." : describe(e));
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>Parley</h1>
    <form onSubmit=${submit}>
      <label for="token">API token</label>
      <input id="token" name="token" type="text" autocomplete="off" spellcheck="false" autofocus />
      <button type="submit" disabled=${busy}>Sign in</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
    <p class="hint">
      <code>parley serve</code> prints the admin's token the first time it starts;
      <code>parley user create NAME</code> makes more. The token stays in this browser until you sign out.
    </p>
  </main>`;
}

function Notices({ notices, dismiss }) {
  return html`<div class="notices" role="alert">
    ${notices.map(
      (n) =>
        html`<p key=${n.id} class="notice">
          <span>${n.text}</span>
          <button type="button" class="link" onClick=${() => dismiss(n.id)} aria-label="Dismiss notice">×</button>
        </p>`,
    )}
  </div>`;
}

/** The chat's title bar: title, agent, and Rename / Delete for a saved chat. */
function ChatHeader({ state, agents, agentName, setAgentName, onRenamed, onDeleted, notice }) {
  const [editing, setEditing] = useState(false);
  const dialog = useRef(null);
  const session = state.session;

  const rename = async (event) => {
    event.preventDefault();
    const title = new FormData(event.currentTarget).get("title").trim();
    try {
      const { updateSession } = await gql(RENAME, { id: session.id, title });
      session.title = updateSession.title;
      setEditing(false);
      onRenamed();
    } catch (error) {
      notice(describe(error));
    }
  };
  const remove = async () => {
    dialog.current.close();
    try {
      await gql(DELETE, { id: session.id });
      onDeleted(session.id);
    } catch (error) {
      notice(describe(error));
    }
  };

  if (!session) {
    return html`<header class="chat-header">
      <h1>New chat</h1>
      <label class="agent">
        Agent
        <select value=${agentName} onChange=${(e) => setAgentName(e.currentTarget.value)}>
          ${agents.map((a) => html`<option key=${a.name} value=${a.name}>${a.name} (${a.model})</option>`)}
        </select>
      </label>
    </header>`;
  }
  return html`<header class="chat-header">
    ${
      editing
        ? html`<form class="rename" onSubmit=${rename} onKeyDown=${(e) => e.key === "Escape" && setEditing(false)}>
            <input name="title" aria-label="Chat title" defaultValue=${session.title ?? ""} maxlength="200" autofocus />
            <button type="submit">Save</button>
            <button type="button" onClick=${() => setEditing(false)}>Cancel</button>
          </form>`
        : html`<h1>${session.title || "Untitled chat"}</h1>`
    }
    <span class="agent-name" title=${session.agent.model}>${session.agent.name}</span>
    ${state.connection !== "live" && html`<span class="status" role="status">Reconnecting…</span>`}
    ${
      !editing &&
      html`<span class="actions">
        <button type="button" onClick=${() => setEditing(true)}>Rename chat</button>
        <button type="button" onClick=${() => dialog.current.showModal()}>Delete chat</button>
      </span>`
    }
    <dialog ref=${dialog} aria-labelledby="delete-title">
      <p id="delete-title">Delete “${session.title || "Untitled chat"}” and all its messages?</p>
      <button type="button" class="danger" onClick=${remove}>Delete</button>
      <button type="button" onClick=${() => dialog.current.close()} autofocus>Cancel</button>
    </dialog>
  </header>`;
}

/** The open chat: its state object lives as long as the route names the same session. */
function ChatView({ route, start, notice, sessionsChanged, sessionDeleted }) {
  const [, setVersion] = useState(0);
  const [agents, setAgents] = useState(start.agents);
  const [agentName, setAgentName] = useState("assistant"); // Parley's default agent

  const stateRef = useRef(null);
  const stateRoute = useRef(undefined); // the session id in the route the state was made for
  const input = useRef(null);
  const files = usePendingFiles(notice); // the next message's, dropped anywhere on the chat
  const [dropping, dropHandlers] = useFileDrop(files.add);

  // The state is made during render, so that the first render of a route already shows its
  // chat. A new chat's state goes on when its first message creates the session: it adopts
  // the route that names that session.
  const current = stateRef.current;
  if (current?.sessionId && current.sessionId === route.sessionId) stateRoute.current = route.sessionId;
  if (!current || stateRoute.current !== route.sessionId) {
    current?.close();
    stateRef.current = new SessionState(route.sessionId, {
      changed: () => setVersion((v) => v + 1),
      notice,
      activity: sessionsChanged,
      created: (session) => {
        location.hash = sessionHref(session.id);
        sessionsChanged();
      },
      gone: () => {
        notice("This chat no longer exists.");
        sessionDeleted(route.sessionId);
        location.hash = "#/";
      },
    });
    stateRoute.current = route.sessionId;
  }
  const state = stateRef.current;
  useEffect(() => {
    if (state.loading) state.open();
  }, [state]);
  useEffect(() => () => stateRef.current?.close(), []);
  useEffect(() => {
    if (route.sessionId) return;
    input.current?.focus();
    gql(AGENTS).then(
      ({ agents }) => setAgents(agents),
      (error) => notice(describe(error)),
    ); // admins add agents
  }, [route.sessionId]);

  // A search hit opens its chat at the message found (loading older pages if need be).
  useEffect(() => {
    if (!route.messageId || state.loading) return;
    state.reveal(route.messageId).then(
      (found) =>
        requestAnimationFrame(() => {
          const target = found && document.getElementById(`m-${route.messageId}`); // rendered by now
          if (!target) return notice("That message is no longer in this chat.");
          target.scrollIntoView({ block: "center" });
          target.focus({ preventScroll: true });
        }),
      (error) => notice(describe(error)),
    );
  }, [route.messageId, state, state.loading]);

  // A search hit's route keeps the log where the hit is: a reply asked for leaves it, to be followed.
  const followReplies = () => route.messageId && location.replace(sessionHref(route.sessionId));
  const send = (text, attachments) => {
    followReplies();
    return state.send(text, agentName, attachments);
  };
  // An edit or a regeneration takes away the message whose button had the focus: it goes to the message box.
  const focusInput = (accepted) => (accepted && input.current?.focus(), accepted);
  const actions = {
    busy: state.busy,
    edit: (message, text, attachments) => (followReplies(), state.edit(message, text, attachments).then(focusInput)),
    regenerate: (message) => (followReplies(), state.regenerate(message).then(focusInput)),
    switchTo: (messageId) => state.switchTo(messageId),
    // The prompt's buttons go away with the decision: the focus goes to the message box.
    decide: (decisions) => state.decide(decisions).then(focusInput),
    notice,
  };

  return html`<main class=${`chat${dropping ? " dropping" : ""}`} id="chat" ...${dropHandlers}>
    <${ChatHeader}
      state=${state}
      agents=${agents}
      agentName=${agentName}
      setAgentName=${setAgentName}
      notice=${notice}
      onRenamed=${sessionsChanged}
      onDeleted=${(id) => {
        sessionDeleted(id);
        location.hash = "#/";
      }}
    />
    <${Conversation} state=${state} focusId=${route.messageId} actions=${actions} />
    <${Composer}
      inputRef=${input}
      running=${state.running}
      hint=${state.waiting ? WAITING_HINT : ""}
      disabled=${state.loading || state.starting || state.switching}
      files=${files}
      onSend=${send}
      onStop=${() => state.stop()}
    />
  </main>`;
}

function skipToMessage(event) {
  event.preventDefault(); // the hash holds the route
  document.querySelector("textarea[aria-label=Message]")?.focus();
}

function Shell({ start, signOut }) {
  const route = useRoute();
  const [notices, setNotices] = useState([]);
  const [version, setVersion] = useState(0);
  const [removed, setRemoved] = useState(null);
  const [menuOpen, setMenuOpen] = useState(false);

  const notice = (text) => setNotices((list) => [...list.slice(-2), { id: Math.random(), text }]);
  useEffect(() => {
    const onRejection = (event) => notice(`Something went wrong: ${event.reason?.message ?? event.reason}`);
    // A file dropped beside the chat would make the browser leave the page to show it.
    const keepFiles = (event) => {
      if (![...(event.dataTransfer?.types ?? [])].includes("Files") || event.defaultPrevented) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "none";
    };
    addEventListener("unhandledrejection", onRejection);
    addEventListener("dragover", keepFiles);
    addEventListener("drop", keepFiles);
    return () => {
      removeEventListener("unhandledrejection", onRejection);
      removeEventListener("dragover", keepFiles);
      removeEventListener("drop", keepFiles);
    };
  }, []);

  return html`<div class=${`shell${menuOpen ? " menu-open" : ""}`}>
    <a class="skip" href="#chat" onClick=${skipToMessage}>Skip to the message box</a>
    <header class="top">
      <button
        type="button"
        class="menu"
        aria-expanded=${menuOpen}
        aria-controls="sessions"
        onClick=${() => setMenuOpen(!menuOpen)}
      >
        ${menuOpen ? "Hide sessions" : "Show sessions"}
      </button>
      <span class="brand">Parley</span>
      <span class="viewer">${start.viewer.name}</span>
      <button type="button" onClick=${signOut}>Sign out</button>
    </header>
    <div class="sidebar" id="sessions">
      <${SessionList}
        activeId=${route.sessionId}
        version=${version}
        removed=${removed}
        notice=${notice}
        onNavigate=${() => setMenuOpen(false)}
      />
      <${Usage} version=${version} />
    </div>
    <${Notices} notices=${notices} dismiss=${(id) => setNotices((list) => list.filter((n) => n.id !== id))} />
    <${ChatView}
      route=${route}
      start=${start}
      notice=${notice}
      sessionsChanged=${() => setVersion((v) => v + 1)}
      sessionDeleted=${(id) => setRemoved(id)}
    />
  </div>`;
}

/** The root: whoever is signed in, and a readable message instead of a blank page on a bug. */
class App extends Component {
  state = { start: null, message: null, checking: Boolean(auth.token), crash: null };

  componentDidMount() {
    auth.onRejected = () => this.state.start && this.signOut("Parley no longer accepts this token. Sign in again.");
    if (auth.token) this.check();
  }

  componentDidCatch(error) {
    this.setState({ crash: error });
  }

  async check() {
    this.setState({ checking: true, message: null });
    try {
      this.setState({ start: await gql(START), checking: false });
    } catch (error) {
      if (error.code === "UNAUTHENTICATED") this.signOut("The saved token is no longer accepted. Sign in again.");
      else this.setState({ checking: false, message: describe(error) });
    }
  }

  signOut(message = null) {
    auth.clear();
    this.setState({ start: null, message, checking: false });
  }

  render(_, { start, message, checking, crash }) {
    if (crash) {
      return html`<main class="signin" role="alert">
        <h1>Parley</h1>
        <p>The page hit an error: ${crash.message}</p>
        <button type="button" onClick=${() => location.reload()}>Reload</button>
      </main>`;
    }
    if (checking) return html`<main class="signin"><p role="status">Connecting to Parley…</p></main>`;
    if (start) return html`<${Shell} start=${start} signOut=${() => this.signOut()} />`;
    if (auth.token && message) {
      return html`<main class="signin">
        <h1>Parley</h1>
        <p role="alert">${message}</p>
        <button type="button" onClick=${() => this.check()}>Try again</button>
        <button type="button" onClick=${() => this.signOut()}>Sign out</button>
      </main>`;
    }
    return html`<${SignIn} message=${message} onSignedIn=${(s) => this.setState({ start: s, message: null })} />`;
  }
}

render(html`<${App} />`, document.getElementById("app"));
