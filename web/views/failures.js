// The live failures feed (the failures subscription, after the latest failures of every
// mapping), and a failure's detail: its range and message, its records, the on-failure
// (destination) record, and a Redrive button for discarded batches (redriveFailures).
import { gql, onConnection, subscribe } from '../api.js';
import { badge, clearErrors, emit, fmtDateTime, fmtInt, fmtTime, h, replace, reportError, seq, shortShard } from '../ui.js';

const FAILURE = 'id kind mappingId shardId firstSequenceNumber lastSequenceNumber recordCount attempt message at destinationRecord redrivenBy';
const INITIAL = `{
  functions { name }
  eventSourceMappings { id stream { name } function { name } failures(first: 25) { edges { node { ${FAILURE} } } } }
}`;
const LIVE = `subscription { failures { streamName functionName failure { ${FAILURE} } } }`;
const RECORDS = `query ($stream: String!, $shard: String!, $from: String!, $n: Int!) {
  stream(name: $stream) { records(shardId: $shard, from: {type: AT_SEQUENCE_NUMBER, sequenceNumber: $from}, first: $n) {
    edges { node { sequenceNumber partitionKey data approximateArrivalTimestamp } } } }
}`;
const REDRIVE = `mutation ($mappingId: ID!, $ids: [ID!], $fn: String) {
  redriveFailures(mappingId: $mappingId, failureIds: $ids, functionName: $fn) { id state totalRecords error }
}`;
const HISTORY = `query ($mapping: ID!, $shard: String!, $seq: String!) {
  eventSourceMapping(id: $mapping) { recordHistory(shardId: $shard, sequenceNumber: $seq) {
    at source kind attempt firstSequenceNumber lastSequenceNumber recordCount message replayId } }
}`;
const REDRIVABLE = new Set(['RETRIES_EXHAUSTED', 'RECORD_EXPIRED']);
const MAX_FEED = 200;
const MAX_RECORDS_SHOWN = 50;

/** base64 → text when it is printable UTF-8, else the base64 itself. */
function decode(data) {
  try {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    // eslint-disable-next-line no-control-regex
    return /[\x00-\x08\x0e-\x1f]/.test(text) ? { text: data, binary: true } : { text, binary: false };
  } catch {
    return { text: data, binary: true };
  }
}

export function mountFailures(section) {
  const body = section.querySelector('.body');
  const feed = h('ol', { class: 'feed', 'aria-label': 'failures, newest first' });
  const detail = h('div', { id: 'failure-detail', class: 'detail', hidden: true });
  const emptyNote = h('p', { class: 'empty' }, 'No failures. Function errors, timeouts, bisects and discarded batches appear here as they happen.');
  replace(body, emptyNote, feed, detail);
  const failures = new Map(); // id → { failure, streamName, functionName }
  let functions = [];
  let selected;

  const label = (entry) => `${entry.streamName} → ${entry.functionName}`;

  const renderFeed = () => {
    const entries = [...failures.values()].sort((a, b) => b.failure.at.localeCompare(a.failure.at) || Number(b.failure.id) - Number(a.failure.id));
    for (const extra of entries.slice(MAX_FEED)) failures.delete(extra.failure.id);
    emptyNote.hidden = entries.length > 0;
    replace(feed, entries.slice(0, MAX_FEED).map((entry) => {
      const f = entry.failure;
      return h('li', { class: `failure ${f.kind.toLowerCase()}${selected === f.id ? ' selected' : ''}`, 'data-failure-id': f.id, 'data-kind': f.kind },
        h('button', { type: 'button', class: 'row', onclick: () => select(f.id), 'aria-expanded': selected === f.id ? 'true' : 'false' },
          h('span', { class: 'when' }, fmtTime(f.at)),
          badge(f.kind, `kind-${f.kind.toLowerCase()}`),
          h('span', { class: 'where' }, label(entry), ' · ', shortShard(f.shardId), ` · ${fmtInt(f.recordCount)} record${f.recordCount === 1 ? '' : 's'}`),
          f.redrivenBy ? h('span', { class: 'badge ok' }, 'redriven') : null,
          h('span', { class: 'message' }, f.message ?? '')));
    }));
  };

  const add = (entry) => {
    failures.set(entry.failure.id, entry);
    // Trimmed here too: a hidden tab draws no frames, and a storm must not grow the map meanwhile.
    if (failures.size > MAX_FEED * 2) {
      const newest = [...failures.values()].sort((a, b) => b.failure.at.localeCompare(a.failure.at)).slice(0, MAX_FEED);
      failures.clear();
      for (const e of newest) failures.set(e.failure.id, e);
    }
  };

  async function loadRecords(entry, into) {
    const f = entry.failure;
    const n = Math.min(f.recordCount, MAX_RECORDS_SHOWN);
    if (n === 0) {
      // A window's final invocation carries no records: the failure is of the window's close.
      replace(into, h('p', { class: 'muted' }, 'No records: this was the final invocation of a tumbling window.'));
      return;
    }
    try {
      const data = await gql(RECORDS, { stream: entry.streamName, shard: f.shardId, from: f.firstSequenceNumber, n });
      const last = BigInt(f.lastSequenceNumber);
      const records = (data.stream?.records.edges ?? []).map((e) => e.node).filter((r) => BigInt(r.sequenceNumber) <= last);
      if (!records.length) {
        replace(into, h('p', { class: 'muted' }, 'The records of this range are no longer stored (past retention).'));
        return;
      }
      replace(into, h('table', { class: 'records' },
        h('thead', {}, h('tr', {}, h('th', {}, 'sequence number'), h('th', {}, 'partition key'), h('th', {}, 'arrived'), h('th', {}, 'data'))),
        h('tbody', {}, records.map((r) => {
          const d = decode(r.data);
          return h('tr', {}, h('td', {}, seq(r.sequenceNumber)), h('td', {}, r.partitionKey), h('td', {}, fmtTime(r.approximateArrivalTimestamp)),
            h('td', { class: d.binary ? 'data binary' : 'data' }, d.binary ? `base64 ${d.text}` : d.text));
        }))),
      f.recordCount > records.length ? h('p', { class: 'muted' }, `first ${records.length} of ${fmtInt(f.recordCount)} records`) : null);
    } catch (error) {
      replace(into, h('p', { class: 'error-inline' }, `Cannot read the records: ${error.code ? `${error.code}: ` : ''}${error.message}`));
    }
  }

  /**
   * Every attempt to deliver the range's first record (the one a bisect or a partial response
   * isolates): each batch that held it, the splits, partial failures and the discard, from the
   * server's logs (recordHistory), not only what this page has seen.
   */
  async function loadHistory(f, into) {
    try {
      const data = await gql(HISTORY, { mapping: f.mappingId, shard: f.shardId, seq: f.firstSequenceNumber });
      const attempts = data.eventSourceMapping?.recordHistory ?? [];
      if (!attempts.length) {
        replace(into, h('p', { class: 'muted' }, 'No attempts logged (past the logs\' retention).'));
        return;
      }
      replace(into, h('table', { class: 'history' }, h('tbody', {}, attempts.map((o) => h('tr', {},
        h('td', {}, fmtTime(o.at)),
        h('td', {}, badge(o.kind, `kind-${o.kind.toLowerCase()}`)),
        h('td', {}, o.source === 'INVOCATION' ? `invocation, attempt ${o.attempt}` : `attempt ${o.attempt}`),
        h('td', {}, `${fmtInt(o.recordCount)} record${o.recordCount === 1 ? '' : 's'}`),
        h('td', { class: 'message' }, `${o.replayId ? `(replay ${o.replayId.slice(0, 8)}) ` : ''}${o.message ?? ''}`))))));
    } catch (error) {
      replace(into, h('p', { class: 'error-inline' }, `Cannot read the attempts: ${error.code ? `${error.code}: ` : ''}${error.message}`));
    }
  }

  function renderDetail() {
    const entry = selected && failures.get(selected);
    if (!entry) {
      detail.hidden = true;
      return;
    }
    const f = entry.failure;
    detail.hidden = false;
    const records = h('div', { class: 'records-box' }, h('p', { class: 'muted' }, 'Loading records…'));
    const attempts = h('div', { class: 'history-box' }, h('p', { class: 'muted' }, 'Loading attempts…'));
    const result = h('p', { class: 'redrive-result', role: 'status' });
    const target = h('select', { name: 'redrive-function', 'aria-label': 'redrive to function' },
      h('option', { value: '' }, `the mapping's function (${entry.functionName})`),
      functions.filter((fn) => fn.name !== entry.functionName).map((fn) => h('option', { value: fn.name }, fn.name)));
    const redrivable = REDRIVABLE.has(f.kind) && !f.redrivenBy;
    const redrivenBy = h('dd', { class: 'redriven-by' }, f.redrivenBy ? `replay ${f.redrivenBy}` : h('span', { class: 'muted' }, 'not redriven'));
    const button = h('button', { type: 'button', class: 'redrive primary', disabled: !redrivable }, 'Redrive');
    button.addEventListener('click', async () => {
      button.disabled = true;
      result.className = 'redrive-result';
      result.textContent = 'Starting…';
      try {
        const { redriveFailures: job } = await gql(REDRIVE, { mappingId: f.mappingId, ids: [f.id], fn: target.value || null });
        f.redrivenBy = job.id;
        redrivenBy.textContent = `replay ${job.id}`;
        result.textContent = `Redrive job ${job.id.slice(0, 8)} started: ${fmtInt(job.totalRecords)} record${job.totalRecords === 1 ? '' : 's'} (see Replays).`;
        result.dataset.jobId = job.id;
        emit('replays-changed', job);
        renderFeed();
      } catch (error) {
        button.disabled = false;
        result.className = 'redrive-result error-inline';
        result.textContent = `Redrive failed: ${error.code ? `${error.code}: ` : ''}${error.message}`;
      }
    });
    replace(detail,
      h('header', {},
        h('h3', {}, 'Failure ', h('span', { class: 'muted' }, `#${f.id}`)),
        badge(f.kind, `kind-${f.kind.toLowerCase()}`),
        h('button', { type: 'button', class: 'link close', title: 'close', onclick: () => select(undefined) }, '×')),
      h('dl', {},
        h('dt', {}, 'mapping'), h('dd', {}, label(entry), h('span', { class: 'muted' }, ` (${f.mappingId})`)),
        h('dt', {}, 'at'), h('dd', {}, fmtDateTime(f.at)),
        h('dt', {}, 'shard'), h('dd', {}, f.shardId),
        h('dt', {}, 'range'), h('dd', { class: 'range' }, `${f.firstSequenceNumber} … ${f.lastSequenceNumber}`),
        h('dt', {}, 'records'), h('dd', {}, fmtInt(f.recordCount)),
        h('dt', {}, 'attempt'), h('dd', {}, f.attempt),
        h('dt', {}, 'redriven by'), redrivenBy),
      h('h4', {}, 'Message'),
      h('pre', { class: 'message' }, f.message ?? '(none)'),
      h('h4', {}, 'Attempts on its first record'),
      attempts,
      h('h4', {}, 'Records'),
      records,
      h('h4', {}, 'On-failure record'),
      f.destinationRecord
        ? h('pre', { class: 'json destination' }, JSON.stringify(f.destinationRecord, null, 2))
        : h('p', { class: 'muted' }, 'Only discarded batches (RETRIES_EXHAUSTED, RECORD_EXPIRED) have an on-failure record.'),
      h('div', { class: 'actions' },
        target, button,
        redrivable ? null : h('span', { class: 'muted' }, f.redrivenBy ? 'already redriven' : 'only discarded batches can be redriven; this batch was retried')),
      result);
    void loadRecords(entry, records);
    void loadHistory(f, attempts);
  }

  async function select(id) {
    selected = selected === id ? undefined : id;
    renderFeed();
    if (selected) {
      // The redrive target list: functions created since the page loaded too.
      try {
        functions = (await gql('{ functions { name } }')).functions;
      } catch (error) {
        reportError('Functions', error);
      }
    }
    renderDetail();
    if (selected) detail.scrollIntoView({ block: 'nearest' });
  }

  const load = async () => {
    try {
      const data = await gql(INITIAL);
      clearErrors('Failures');
      functions = data.functions;
      for (const m of data.eventSourceMappings) {
        for (const { node } of m.failures.edges) {
          if (!failures.has(node.id)) add({ failure: node, streamName: m.stream.name, functionName: m.function.name });
        }
      }
      renderFeed();
    } catch (error) {
      reportError('Failures', error);
    }
  };

  // A storm of failures redraws the feed once a frame, not once an event.
  let frame = 0;
  const renderSoon = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      renderFeed();
    });
  };
  subscribe(LIVE, {}, {
    next: ({ failures: event }) => {
      add(event);
      renderSoon();
    },
    error: (error) => reportError('Failures (live)', error),
  });
  // The feed is from now on: failures recorded while the connection was down are read again.
  let connectedBefore = false;
  onConnection((state) => {
    if (state !== 'connected') return;
    if (connectedBefore) void load();
    connectedBefore = true;
  });
  void load();
}
