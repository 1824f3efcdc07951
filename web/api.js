// GraphQL for the dashboard: queries and mutations over fetch, subscriptions over graphql-ws,
// both on /graphql of the server that served this page. When the server requires a token, the
// dashboard asks for one (kept in this browser's localStorage) and sends it as
// "Authorization: Bearer …" and in graphql-ws's connection_init payload.
import { createClient } from 'graphql-ws';

const ENDPOINT = '/graphql';
const TOKEN_KEY = 'shardline.token';

// A link may carry the token in its fragment (#token=…): taken once, then removed from the address bar.
const fromLink = /(?:^#|&)token=([^&]+)/.exec(location.hash);
if (fromLink) {
  localStorage.setItem(TOKEN_KEY, decodeURIComponent(fromLink[1]));
  history.replaceState(null, '', location.pathname + location.search);
}

const authorization = () => {
  const token = localStorage.getItem(TOKEN_KEY);
  return token ? `Bearer ${token}` : undefined;
};

/** True when this browser keeps a token (the header then offers to change it). */
export const hasToken = () => localStorage.getItem(TOKEN_KEY) !== null;

/** Forgets the kept token and asks for another. */
export function changeToken() {
  localStorage.removeItem(TOKEN_KEY);
  askForToken('Enter another token.');
}

let asking = false;
/** Shows the sign-in form once; a token entered there is kept and the page reloads with it. */
export function askForToken(reason) {
  if (asking) return;
  asking = true;
  const dialog = document.createElement('form');
  dialog.id = 'sign-in';
  dialog.className = 'sign-in';
  dialog.innerHTML = `<h2>Token required</h2><p></p>
    <label>API token (the read scope shows everything; replays and redrives need operate)
      <input name="token" type="password" autocomplete="off" required></label>
    <button type="submit">Open the dashboard</button>`;
  dialog.querySelector('p').textContent = reason;
  dialog.addEventListener('submit', (event) => {
    event.preventDefault();
    localStorage.setItem(TOKEN_KEY, dialog.elements.token.value.trim());
    location.reload();
  });
  document.body.prepend(dialog);
  dialog.elements.token.focus();
}

/** An error of the API, with its `extensions.code` when it has one. */
export class ApiError extends Error {
  constructor(message, code) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
  }
}

function fromGraphQLErrors(errors) {
  const code = errors.find((e) => e?.extensions?.code)?.extensions.code;
  const message = errors.map((e) => e?.message ?? String(e)).join('; ');
  return new ApiError(message || 'unknown error', code);
}

/** Runs a query or mutation; resolves with `data` or rejects with an ApiError. */
export async function gql(query, variables = {}) {
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        ...(authorization() ? { authorization: authorization() } : {}),
      },
      body: JSON.stringify({ query, variables }),
    });
  } catch (error) {
    throw new ApiError(`cannot reach the server (${error.message})`, 'NETWORK');
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new ApiError(`the server answered ${response.status} ${response.statusText} without a GraphQL response`, `HTTP_${response.status}`);
  }
  if (body.errors?.length) {
    const error = fromGraphQLErrors(body.errors);
    if (error.code === 'UNAUTHENTICATED') askForToken(error.message);
    // A token without the scope an action needs: say which, and offer to sign in with another.
    if (error.code === 'FORBIDDEN') error.message += ' (sign in with a token that has the scope: "change token" above)';
    throw error;
  }
  if (!response.ok) throw new ApiError(`the server answered ${response.status} ${response.statusText}`, `HTTP_${response.status}`);
  return body.data;
}

const listeners = new Set();
let connectionStateNow = 'connecting';

/** The live connection's state now: 'connecting' | 'connected' | 'closed'. */
export const connectionState = () => connectionStateNow;

/** Calls fn with 'connecting' | 'connected' | 'closed' now and on each change. */
export function onConnection(fn) {
  listeners.add(fn);
  fn(connectionStateNow);
  return () => listeners.delete(fn);
}

function setConnection(state) {
  connectionStateNow = state;
  for (const fn of listeners) fn(state);
}

let client;
function wsClient() {
  client ??= createClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${ENDPOINT}`,
    lazy: true,
    keepAlive: 10_000,
    connectionParams: () => (authorization() ? { authorization: authorization() } : {}),
    retryAttempts: Infinity,
    // 4401: no valid token; 4403: the token was revoked. Retrying cannot help; ask instead.
    shouldRetry: (event) => {
      if (event?.code === 4401 || event?.code === 4403) {
        askForToken(event.reason || 'The server needs a valid token.');
        return false;
      }
      return true;
    },
    retryWait: async (retries) => new Promise((r) => setTimeout(r, Math.min(500 * 2 ** retries, 5000))),
    on: {
      connecting: () => setConnection('connecting'),
      connected: () => setConnection('connected'),
      closed: () => setConnection('closed'),
    },
  });
  return client;
}

/**
 * Subscribes; `next(data)` for each event, `error(ApiError)` once on failure, `complete()` at
 * the end. Returns a function that unsubscribes. Reconnects by itself after a lost connection
 * (the subscriptions send their current state first, so nothing is missed on screen).
 */
export function subscribe(query, variables, { next, error = () => {}, complete = () => {} }) {
  return wsClient().subscribe({ query, variables }, {
    next: (result) => {
      if (result.errors?.length) error(fromGraphQLErrors(result.errors));
      else if (result.data) next(result.data);
    },
    error: (e) => {
      // 4401 ends the client before shouldRetry is asked: ask for a token here.
      if (e?.code === 4401) askForToken(e.reason || 'The server needs a valid token.');
      if (Array.isArray(e)) error(fromGraphQLErrors(e));
      else if (e instanceof Error) error(new ApiError(e.message, 'SUBSCRIPTION'));
      else error(new ApiError(`the live connection closed${e?.code ? ` (${e.code}${e.reason ? ` ${e.reason}` : ''})` : ''}`, 'SUBSCRIPTION'));
    },
    complete,
  });
}
