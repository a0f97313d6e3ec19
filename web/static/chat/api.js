// The page's only way to Parley: the public GraphQL API, exactly as any frontend would use it.
// Queries and mutations: POST /graphql. Subscriptions: the graphql-transport-ws protocol on the
// same path, through the graphql-ws client. The token goes in the Authorization header over
// HTTP and in the connection_init payload over the WebSocket (API.md section 2).
import { createClient } from "graphql-ws";

const TOKEN_KEY = "parley.token";
const SILENCE_MS = 45_000; // the server pings every 15 s: this long without a word, the socket is dead

export const auth = {
  get token() {
    return localStorage.getItem(TOKEN_KEY);
  },
  save(token) {
    localStorage.setItem(TOKEN_KEY, token);
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    closeSocket();
    forgetFiles();
  },
  onRejected: () => {}, // the app signs out when Parley stops accepting the token
};

/** A failed operation with Parley's `extensions.code`; NETWORK and DISCONNECTED are the page's own. */
export class ApiError extends Error {
  constructor(message, code, extensions = {}) {
    super(message);
    this.code = code;
    this.extensions = extensions;
  }
}

/** A readable notice for an error of Parley's. */
export function describe(error) {
  switch (error.code) {
    case "RUN_IN_PROGRESS":
      return "Parley is still writing a reply in this chat. Wait for it to finish, or press Stop.";
    case "QUOTA_EXCEEDED": // Parley's message says which budget and how much of it is used
      return `No reply can start now: ${error.message}.`;
    case "RATE_LIMITED": {
      const wait = error.extensions?.retryAfter;
      return `Too many requests: ${wait ? `try again in ${wait} s` : "wait a moment and try again"}.`;
    }
    default:
      return error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
  }
}

/** The first GraphQL error as an ApiError (signing out on UNAUTHENTICATED). */
function fromGraphQLErrors(errors) {
  const first = errors[0] ?? {};
  const extensions = first.extensions ?? {};
  const error = new ApiError(first.message ?? "Unknown error", extensions.code ?? "ERROR", extensions);
  if (error.code === "UNAUTHENTICATED") auth.onRejected();
  return error;
}

/** Runs a query or mutation and returns its `data`; throws ApiError. */
export async function gql(query, variables = {}, token = auth.token) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        // GraphQL over HTTP: with this media type a request error is a 4xx with `errors`.
        Accept: "application/graphql-response+json, application/json",
        Authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    throw new ApiError("Parley cannot be reached. Check the connection and try again.", "NETWORK");
  }
  return answer(response);
}

async function answer(response) {
  const body = await response.json().catch(() => null);
  if (body?.errors?.length) throw fromGraphQLErrors(body.errors);
  if (!response.ok || !body?.data) throw new ApiError(`Parley answered HTTP ${response.status}.`, "HTTP");
  return body.data;
}

/**
 * Uploads a file with the GraphQL multipart request spec (operations, map, then the file) and
 * returns its Attachment; throws ApiError (BAD_USER_INPUT: a type Parley does not take, or too
 * large). A multipart POST needs a header that forces a CORS preflight (README, Attachments).
 */
export async function uploadFile(file, signal) {
  const query = `mutation Upload($file: Upload!) { uploadAttachment(file: $file) { ${ATTACHMENT_FIELDS} } }`;
  const form = new FormData();
  form.append("operations", JSON.stringify({ query, variables: { file: null } }));
  form.append("map", JSON.stringify({ 0: ["variables.file"] }));
  form.append("0", file, file.name);
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: {
        Accept: "application/graphql-response+json, application/json",
        Authorization: `Bearer ${auth.token}`,
        "GraphQL-Preflight": "1",
      },
      body: form,
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    // Parley cuts off a body over its limit: the browser may see that as a dropped connection.
    throw new ApiError(
      "the upload broke off (the file may be larger than Parley takes, or the connection dropped)",
      "NETWORK",
    );
  }
  return (await answer(response)).uploadAttachment;
}

// An attachment's bytes need the Bearer token, which an <img> or a link cannot send: they are
// fetched and shown through object URLs, one per attachment (its bytes never change) until sign-out.
const files = new Map(); // attachment id -> Promise of an object URL

/** An object URL of the attachment's bytes (fetched once); rejects with an ApiError. */
export function fileUrl(attachment) {
  let url = files.get(attachment.id);
  if (!url) {
    url = fetchFile(attachment.url);
    url.catch(() => files.delete(attachment.id)); // a later look tries again
    files.set(attachment.id, url);
  }
  return url;
}

/** The bytes of a file just uploaded are already here: the page shows them without a download. */
export function knownFile(attachment, objectUrl) {
  if (!files.has(attachment.id)) files.set(attachment.id, Promise.resolve(objectUrl));
}

async function fetchFile(url) {
  let response;
  try {
    response = await fetch(url, { headers: { Authorization: `Bearer ${auth.token}` } });
  } catch {
    throw new ApiError("Parley cannot be reached. Check the connection and try again.", "NETWORK");
  }
  if (response.status === 401) auth.onRejected();
  if (!response.ok) {
    throw new ApiError(
      response.status === 404 ? "the file no longer exists" : `Parley answered HTTP ${response.status}`,
      "HTTP",
    );
  }
  return URL.createObjectURL(await response.blob());
}

function forgetFiles() {
  for (const url of files.values()) url.then(URL.revokeObjectURL, () => {});
  files.clear();
}

let client = null;
let lastHeard = 0;
let watchdog = 0;
const connectedListeners = new Set();

function socket() {
  client ??= createClient({
    url: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`,
    connectionParams: () => ({ Authorization: `Bearer ${auth.token}` }),
    // No blind resubscription: a stream that loses its socket resumes itself from the last
    // message it saw (see state.js), which resending the same operation could not do.
    retryAttempts: 0,
    lazyCloseTimeout: 30_000, // keep the socket between a reply and the watcher that follows it
    on: {
      connected: () => connectedListeners.forEach((listener) => listener()),
      message: () => (lastHeard = Date.now()),
      opened: () => (lastHeard = Date.now()),
      closed: (event) => {
        lastHeard = 0;
        if (event?.code === 4403) auth.onRejected();
      },
    },
  });
  // A socket can die without a close event (sleep, network change): end it so streams resume.
  watchdog ||= setInterval(() => {
    if (lastHeard && Date.now() - lastHeard > SILENCE_MS) {
      lastHeard = 0;
      client?.terminate();
    }
  }, 5_000);
  return client;
}

function closeSocket() {
  client?.dispose();
  client = null;
  clearInterval(watchdog);
  watchdog = 0;
  lastHeard = 0;
}

/** Calls `listener` each time the WebSocket is (re)connected; returns the unsubscriber. */
export function onConnected(listener) {
  connectedListeners.add(listener);
  return () => connectedListeners.delete(listener);
}

function socketError(error) {
  if (Array.isArray(error)) return fromGraphQLErrors(error); // the server's `error` message
  if (error?.code === 4403) return new ApiError("The token is no longer accepted.", "UNAUTHENTICATED");
  if (error?.code === 4429) {
    return new ApiError("Too many open connections for this user: close other Parley tabs.", "TOO_MANY_CONNECTIONS");
  }
  return new ApiError("The live connection to Parley was lost.", "DISCONNECTED");
}

/**
 * Starts a subscription. `next` gets each event's `data`; `error` an ApiError (after which
 * nothing else is called); `complete` the end of the stream. Returns a function that stops it.
 */
export function subscribe(query, variables, { next, error, complete }) {
  let failed = false;
  const fail = (e) => {
    if (!failed) {
      failed = true;
      error(e);
    }
  };
  return socket().subscribe(
    { query, variables },
    {
      next: (result) => (result.errors?.length ? fail(fromGraphQLErrors(result.errors)) : failed || next(result.data)),
      error: (e) => fail(socketError(e)),
      complete: () => failed || complete(),
    },
  );
}

// The fields the page reads, shared by queries, mutations and subscription events.
export const ATTACHMENT_FIELDS = "id filename mediaType size url";
export const MESSAGE_FIELDS = `
  id sequence role content runId model cost processingTimeMs createdAt toolCallId toolName
  parentId siblingIds siblingIndex
  toolCalls { id name arguments }
  attachments { ${ATTACHMENT_FIELDS} }
  usage { inputTokens outputTokens totalTokens requests }`;

export const RUN_FIELDS = `id status model cost error { code message } usage { inputTokens outputTokens }`;

export const SESSION_FIELDS = `id title lastActivityAt messageCount agent { name model }`;
