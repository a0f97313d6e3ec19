// The session list: a navigation landmark named "Sessions", newest activity first, loaded page
// by page with the keyset cursors of `sessions(first, after)`; and message search.
import { useEffect, useRef, useState } from "preact/hooks";
import { SESSION_FIELDS, describe, gql } from "./api.js";
import { Ago, useNow } from "./format.js";
import { html } from "./html.js";
import { sanitizeSnippet } from "./markdown.js";

const PAGE = 20;
const LIST = `query Sessions($first: Int!, $after: String) {
  sessions(first: $first, after: $after) {
    edges { node { ${SESSION_FIELDS} } }
    pageInfo { hasNextPage endCursor }
  }
}`;
const SEARCH = `query Search($query: String!) {
  searchMessages(query: $query, first: 20) { snippet message { id role } session { id title } }
}`;

const newestFirst = (a, b) => b.lastActivityAt.localeCompare(a.lastActivityAt) || b.id.localeCompare(a.id);

export const sessionHref = (id, messageId) => `#/s/${id}${messageId ? `/m/${messageId}` : ""}`;

/**
 * @param {{activeId: string|null, version: number, removed: string|null, notice: (t: string) => void,
 *          onNavigate: () => void}} props  version: bumped when sessions changed elsewhere on the page
 */
export function SessionList({ activeId, version, removed, notice, onNavigate }) {
  const [items, setItems] = useState([]);
  const [next, setNext] = useState({ hasNextPage: false, endCursor: null });
  const [loading, setLoading] = useState(false);
  const now = useNow();

  const merge = (nodes) =>
    setItems((current) => {
      const byId = new Map(current.map((s) => [s.id, s]));
      nodes.forEach((s) => byId.set(s.id, s));
      return [...byId.values()].sort(newestFirst);
    });

  const load = async (after) => {
    setLoading(true);
    try {
      const { sessions } = await gql(LIST, { first: PAGE, after });
      merge(sessions.edges.map((e) => e.node));
      // A refresh of the first page keeps the cursor of pages loaded further down.
      if (after || items.length <= PAGE) setNext(sessions.pageInfo);
    } catch (error) {
      notice(describe(error));
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    load(null);
  }, [version]);
  useEffect(() => removed && setItems((current) => current.filter((s) => s.id !== removed)), [removed]);

  // The next page loads when the "Load more" button scrolls into view (or is pressed).
  const more = useRef(null);
  useEffect(() => {
    if (!more.current) return undefined;
    const observer = new IntersectionObserver((entries) => {
      if (entries[0].isIntersecting && !loading) load(next.endCursor);
    });
    observer.observe(more.current);
    return () => observer.disconnect();
  }, [next.endCursor, next.hasNextPage, loading]);

  return html`<nav class="sessions" aria-label="Sessions">
    <button type="button" class="new-chat" onClick=${() => ((location.hash = "#/"), onNavigate())}>New chat</button>
    <${Search} notice=${notice} onNavigate=${onNavigate} />
    <ul class="session-list">
      ${items.map(
        (s) =>
          html`<li key=${s.id}>
            <a href=${sessionHref(s.id)} aria-current=${s.id === activeId ? "page" : undefined} onClick=${onNavigate}>
              <span class="title">${s.title || "Untitled chat"}</span>
              <${Ago} iso=${s.lastActivityAt} now=${now} />
            </a>
          </li>`,
      )}
    </ul>
    ${!items.length && !loading && html`<p class="hint">No chats yet.</p>`}
    ${
      next.hasNextPage &&
      html`<button type="button" class="more" ref=${more} disabled=${loading} onClick=${() => load(next.endCursor)}>
        Load more sessions
      </button>`
    }
  </nav>`;
}

function Search({ notice, onNavigate }) {
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState(null);
  const latest = useRef(0);

  const run = async (text) => {
    const ticket = ++latest.current; // answers may arrive out of order: keep the newest
    if (!text.trim()) return setHits(null);
    try {
      const { searchMessages } = await gql(SEARCH, { query: text });
      if (ticket === latest.current) setHits(searchMessages);
    } catch (error) {
      notice(describe(error));
    }
  };

  useEffect(() => {
    const timer = setTimeout(() => run(query), 250);
    return () => clearTimeout(timer);
  }, [query]);

  const clear = () => {
    setQuery("");
    setHits(null);
  };

  return html`<form
      role="search"
      class="search"
      onSubmit=${(event) => {
        event.preventDefault();
        run(query);
      }}
    >
      <input
        type="search"
        aria-label="Search messages"
        placeholder="Search messages"
        value=${query}
        onInput=${(event) => setQuery(event.currentTarget.value)}
        onKeyDown=${(event) => event.key === "Escape" && clear()}
      />
    </form>
    ${
      hits &&
      html`<section class="hits" aria-label="Search results">
        ${hits.length ? "" : html`<p class="hint">No messages found.</p>`}
        <ul>
          ${hits.map(
            (hit) =>
              html`<li key=${hit.message.id}>
                <a href=${sessionHref(hit.session.id, hit.message.id)} onClick=${onNavigate}>
                  <span class="title">${hit.session.title || "Untitled chat"}</span>
                  <span class="snippet" dangerouslySetInnerHTML=${{ __html: sanitizeSnippet(hit.snippet) }}></span>
                </a>
              </li>`,
          )}
        </ul>
        <button type="button" class="link" onClick=${clear}>Clear search</button>
      </section>`
    }`;
}
