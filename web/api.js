// GraphQL for the dashboard: queries and mutations over fetch, subscriptions over graphql-ws,
// both on /graphql of the server that served this page.
import { createClient } from 'graphql-ws';

const ENDPOINT = '/graphql';

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
      headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
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
  if (body.errors?.length) throw fromGraphQLErrors(body.errors);
  if (!response.ok) throw new ApiError(`the server answered ${response.status} ${response.statusText}`, `HTTP_${response.status}`);
  return body.data;
}

const listeners = new Set();
let connectionState = 'connecting';

/** Calls fn with 'connecting' | 'connected' | 'closed' now and on each change. */
export function onConnection(fn) {
  listeners.add(fn);
  fn(connectionState);
  return () => listeners.delete(fn);
}

function setConnection(state) {
  connectionState = state;
  for (const fn of listeners) fn(state);
}

let client;
function wsClient() {
  client ??= createClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${ENDPOINT}`,
    lazy: true,
    keepAlive: 10_000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
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
      if (Array.isArray(e)) error(fromGraphQLErrors(e));
      else if (e instanceof Error) error(new ApiError(e.message, 'SUBSCRIPTION'));
      else error(new ApiError(`the live connection closed${e?.code ? ` (${e.code}${e.reason ? ` ${e.reason}` : ''})` : ''}`, 'SUBSCRIPTION'));
    },
    complete,
  });
}
