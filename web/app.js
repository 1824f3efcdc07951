// The shardline dashboard: plain ES modules, no build step. Each view owns one <section> of
// index.html and talks to the API through api.js (fetch for queries, graphql-ws for the live
// feeds).
import { changeToken, hasToken, onConnection } from './api.js';
import { mountAlerts } from './views/alerts.js';
import { mountFailures } from './views/failures.js';
import { mountMappings } from './views/mappings.js';
import { mountReplays } from './views/replays.js';
import { mountStreams } from './views/streams.js';
import { reportError } from './ui.js';

const connection = document.getElementById('connection');
onConnection((state) => {
  connection.dataset.state = state;
  connection.textContent = { connecting: 'connecting…', connected: 'live', closed: 'disconnected — retrying' }[state] ?? state;
});

// With a token kept, the header offers to sign in with another (a scope missing, a token revoked).
if (hasToken()) {
  const change = document.createElement('button');
  change.type = 'button';
  change.id = 'change-token';
  change.className = 'change-token';
  change.textContent = 'change token';
  change.addEventListener('click', changeToken);
  connection.after(change);
}

const views = [
  ['alerts', mountAlerts],
  ['mappings', mountMappings],
  ['failures', mountFailures],
  ['replays', mountReplays],
  ['streams', mountStreams],
];
for (const [id, mount] of views) {
  try {
    mount(document.getElementById(id));
  } catch (error) {
    reportError(`Dashboard (${id})`, error);
  }
}
document.body.dataset.ready = 'true';
