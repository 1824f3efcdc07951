// Replays: a form (stream, a window by time or by sequence number, a target function or
// mapping, a dry-run preview of the record count) and the jobs with live progress bars
// (replayProgress) and pause / resume / cancel.
import { gql, subscribe } from '../api.js';
import { badge, clearErrors, every, fmtBytes, fmtDateTime, fmtInt, h, on, replace, reportError } from '../ui.js';

const JOB = `id state streamName functionName mappingId from to totalRecords deliveredRecords failedRecords dryRun
  createdAt finishedAt error ratePerSecond totalBytes estimatedDurationSeconds`;
const LIST = `{ replays { ${JOB} } functions { name } eventSourceMappings { id stream { name } function { name } } }`;
const START = `mutation ($input: ReplayInput!) { startReplay(input: $input) { ${JOB} } }`;
const PROGRESS = `subscription ($id: ID!) { replayProgress(id: $id) { ${JOB} } }`;
const ACTIONS = {
  pause: `mutation ($id: ID!) { pauseReplay(id: $id) { ${JOB} } }`,
  resume: `mutation ($id: ID!) { resumeReplay(id: $id) { ${JOB} } }`,
  cancel: `mutation ($id: ID!) { cancelReplay(id: $id) { ${JOB} } }`,
};
const ACTIVE = new Set(['PENDING', 'RUNNING', 'PAUSED']);
const JOBS_SHOWN = 15;

const errorText = (error) => `${error.code ? `${error.code}: ` : ''}${error.message}`;

/** The share of the window done, 0..100 (null while the total is not known yet). */
export function percent(job) {
  if (job.state === 'SUCCEEDED') return 100;
  if (job.totalRecords === null || job.totalRecords === undefined) return null;
  if (job.totalRecords === 0) return 0;
  return Math.min(100, Math.floor(((job.deliveredRecords + job.failedRecords) * 100) / job.totalRecords));
}

function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'label' }, label), control, hint ? h('small', { class: 'muted' }, hint) : null);
}

export function mountReplays(section) {
  const body = section.querySelector('.body');
  const jobs = new Map(); // id → job
  const watching = new Map(); // id → unsubscribe
  let functions = [];
  let mappings = [];
  let streams = [];

  // ---- the form ----
  const streamSelect = h('select', { name: 'stream', required: true });
  const windowKind = h('select', { name: 'window' },
    h('option', { value: 'all' }, 'the whole stream (oldest → latest)'),
    h('option', { value: 'time' }, 'a time window'),
    h('option', { value: 'sequence' }, 'a sequence number window'));
  const fromTime = h('input', { type: 'datetime-local', name: 'fromTime', step: 1 });
  const toTime = h('input', { type: 'datetime-local', name: 'toTime', step: 1 });
  const fromSeq = h('input', { type: 'text', name: 'fromSeq', inputmode: 'numeric', placeholder: 'e.g. 49590338271490256608559692538361571095921575989136588898' });
  const toSeq = h('input', { type: 'text', name: 'toSeq', inputmode: 'numeric', placeholder: 'empty: the latest record' });
  const timeFields = h('div', { class: 'row', hidden: true }, field('from', fromTime), field('to', toTime, 'empty: the latest record'));
  const seqFields = h('div', { class: 'row', hidden: true }, field('from sequence number', fromSeq), field('to sequence number', toSeq));
  const targetKind = h('select', { name: 'targetKind' }, h('option', { value: 'function' }, 'a function'), h('option', { value: 'mapping' }, "a mapping (its function and settings)"));
  const functionSelect = h('select', { name: 'function' });
  const mappingSelect = h('select', { name: 'mapping', hidden: true });
  const rate = h('input', { type: 'number', name: 'rate', min: 1, placeholder: 'unlimited' });
  const batch = h('input', { type: 'number', name: 'batchSize', min: 1, max: 10000, placeholder: 'default' });
  const preview = h('button', { type: 'button', class: 'preview' }, 'Preview (dry run)');
  const start = h('button', { type: 'submit', class: 'start primary' }, 'Start replay');
  const output = h('p', { class: 'form-output', role: 'status', 'aria-live': 'polite' });
  const form = h('form', { class: 'replay-form', novalidate: true },
    h('div', { class: 'row' }, field('stream', streamSelect), field('window', windowKind)),
    timeFields, seqFields,
    h('div', { class: 'row' }, field('deliver to', targetKind), field('target', h('span', {}, functionSelect, mappingSelect))),
    h('div', { class: 'row' }, field('records per second', rate), field('batch size', batch)),
    h('div', { class: 'buttons' }, preview, start),
    output);
  const now = new Date();
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 19);
  fromTime.value = local(new Date(now.getTime() - 3_600_000));

  windowKind.addEventListener('change', () => {
    timeFields.hidden = windowKind.value !== 'time';
    seqFields.hidden = windowKind.value !== 'sequence';
  });
  targetKind.addEventListener('change', () => {
    functionSelect.hidden = targetKind.value !== 'function';
    mappingSelect.hidden = targetKind.value !== 'mapping';
  });
  streamSelect.addEventListener('change', () => fillMappings());

  const fillOptions = (select, options, empty) => {
    const keep = select.value;
    replace(select, options.length ? options.map(([value, text]) => h('option', { value }, text)) : h('option', { value: '' }, empty));
    if (options.some(([value]) => value === keep)) select.value = keep;
  };
  const fillMappings = () => fillOptions(mappingSelect,
    mappings.filter((m) => m.stream.name === streamSelect.value).map((m) => [m.id, `${m.stream.name} → ${m.function.name}`]),
    'no mapping on this stream');
  const fillForm = () => {
    fillOptions(streamSelect, streams.map((st) => [st.name, st.name]), 'no stream yet');
    fillOptions(functionSelect, functions.map((fn) => [fn.name, fn.name]), 'no function yet');
    fillMappings();
  };

  /** The ReplayInput the form describes; throws an Error naming the field that is wrong. */
  function input(dryRun) {
    if (!streamSelect.value) throw new Error('choose a stream');
    const body = { streamName: streamSelect.value, dryRun };
    if (windowKind.value === 'all') {
      body.from = { type: 'TRIM_HORIZON' };
    } else if (windowKind.value === 'time') {
      const from = new Date(fromTime.value);
      if (!fromTime.value || Number.isNaN(from.getTime())) throw new Error('"from" must be a date and time');
      body.from = { type: 'AT_TIMESTAMP', timestamp: from.toISOString() };
      if (toTime.value) {
        const to = new Date(toTime.value);
        if (Number.isNaN(to.getTime())) throw new Error('"to" must be a date and time');
        if (to < from) throw new Error('"to" must not be before "from"');
        body.to = { type: 'AT_TIMESTAMP', timestamp: to.toISOString() };
      }
    } else {
      if (!/^\d+$/.test(fromSeq.value.trim())) throw new Error('"from sequence number" must be digits');
      body.from = { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: fromSeq.value.trim() };
      if (toSeq.value.trim()) {
        if (!/^\d+$/.test(toSeq.value.trim())) throw new Error('"to sequence number" must be digits');
        body.to = { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: toSeq.value.trim() };
      }
    }
    if (targetKind.value === 'function') {
      if (!functionSelect.value) throw new Error('choose a function');
      body.functionName = functionSelect.value;
    } else {
      if (!mappingSelect.value) throw new Error('choose a mapping');
      body.mappingId = mappingSelect.value;
    }
    if (rate.value) body.ratePerSecond = Number(rate.value);
    if (batch.value) body.batchSize = Number(batch.value);
    return body;
  }

  async function run(dryRun) {
    output.className = 'form-output';
    let body;
    try {
      body = input(dryRun);
    } catch (error) {
      output.className = 'form-output error-inline';
      output.textContent = error.message;
      return;
    }
    preview.disabled = start.disabled = true;
    output.textContent = dryRun ? 'Counting…' : 'Starting…';
    try {
      const { startReplay: job } = await gql(START, { input: body });
      if (dryRun) {
        delete output.dataset.jobId;
        output.dataset.totalRecords = String(job.totalRecords);
        replace(output, 'Dry run: ', h('b', { class: 'preview-count' }, `${fmtInt(job.totalRecords)} record${job.totalRecords === 1 ? '' : 's'}`),
          ` (${fmtBytes(job.totalBytes)})`,
          job.estimatedDurationSeconds !== null && job.estimatedDurationSeconds !== undefined ? `, about ${Math.ceil(job.estimatedDurationSeconds)} s at ${fmtInt(job.ratePerSecond)}/s` : '',
          ' would be delivered. Nothing was invoked.');
      } else {
        delete output.dataset.totalRecords;
        output.dataset.jobId = job.id;
        output.textContent = `Replay ${job.id.slice(0, 8)} started.`;
        upsert(job);
        render();
      }
    } catch (error) {
      output.className = 'form-output error-inline';
      output.textContent = `${dryRun ? 'Preview' : 'Replay'} failed: ${errorText(error)}`;
    } finally {
      preview.disabled = start.disabled = false;
    }
  }
  preview.addEventListener('click', () => run(true));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void run(false);
  });

  // ---- the jobs ----
  const list = h('ol', { class: 'jobs' });
  const noJobs = h('p', { class: 'empty' }, 'No replay jobs yet.');

  function watch(job) {
    if (!ACTIVE.has(job.state) || watching.has(job.id)) return;
    const stop = subscribe(PROGRESS, { id: job.id }, {
      next: ({ replayProgress }) => {
        upsert(replayProgress);
        render();
      },
      error: (error) => {
        watching.delete(job.id);
        reportError(`Replay ${job.id.slice(0, 8)}`, error);
      },
      complete: () => watching.delete(job.id),
    });
    watching.set(job.id, stop);
  }

  function upsert(job) {
    if (job.dryRun) return;
    const known = jobs.get(job.id);
    // Progress only grows: an older query answer never moves a bar back.
    if (known && !ACTIVE.has(known.state) && ACTIVE.has(job.state)) return;
    if (known && ACTIVE.has(known.state) && ACTIVE.has(job.state) && job.deliveredRecords + job.failedRecords < known.deliveredRecords + known.failedRecords) return;
    jobs.set(job.id, job);
  }

  async function act(job, action, button) {
    button.disabled = true;
    try {
      const data = await gql(ACTIONS[action], { id: job.id });
      const updated = Object.values(data)[0];
      jobs.set(updated.id, updated);
      watch(updated);
      render();
    } catch (error) {
      button.disabled = false;
      reportError(`Replay ${job.id.slice(0, 8)} ${action}`, error);
    }
  }

  function jobItem(job) {
    const p = percent(job);
    const bar = h('div', {
      class: `progress${p === null ? ' indeterminate' : ''}`, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100,
      'aria-valuenow': p ?? undefined, 'aria-label': `progress of replay ${job.id}`,
    }, h('div', { class: 'fill' }));
    bar.firstChild.style.width = `${p ?? 0}%`;
    const buttons = [];
    if (job.state === 'RUNNING' || job.state === 'PENDING') buttons.push(['pause', 'Pause']);
    if (job.state === 'PAUSED') buttons.push(['resume', 'Resume']);
    if (ACTIVE.has(job.state)) buttons.push(['cancel', 'Cancel']);
    return h('li', { class: `job ${job.state.toLowerCase()}`, 'data-job-id': job.id, 'data-state': job.state, 'data-percent': p ?? '' },
      h('div', { class: 'job-head' },
        badge(job.state),
        h('b', {}, job.streamName, ' → ', job.functionName),
        h('span', { class: 'muted', title: job.id }, job.id.slice(0, 8)),
        h('span', { class: 'buttons' }, buttons.map(([action, text]) => {
          const b = h('button', { type: 'button', class: action }, text);
          b.addEventListener('click', () => act(job, action, b));
          return b;
        }))),
      h('div', { class: 'window muted' }, `${job.from}${job.to ? ` → ${job.to}` : ' → latest'}`, job.ratePerSecond ? ` · ${fmtInt(job.ratePerSecond)}/s` : ''),
      h('div', { class: 'progress-row' }, bar, h('span', { class: 'pct' }, p === null ? 'planning…' : `${p} %`)),
      h('div', { class: 'counts' },
        `${fmtInt(job.deliveredRecords)} delivered`,
        job.failedRecords ? h('span', { class: 'hot' }, ` · ${fmtInt(job.failedRecords)} failed`) : '',
        ` of ${fmtInt(job.totalRecords)}`,
        ` · started ${fmtDateTime(job.createdAt)}`, job.finishedAt ? ` · finished ${fmtDateTime(job.finishedAt)}` : ''),
      job.error ? h('p', { class: 'error-inline' }, job.error) : null);
  }

  function render() {
    const sorted = [...jobs.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    const shown = sorted.slice(0, JOBS_SHOWN);
    // A page left open keeps, and watches, only the jobs it shows.
    for (const old of sorted.slice(JOBS_SHOWN)) {
      jobs.delete(old.id);
      watching.get(old.id)?.();
      watching.delete(old.id);
    }
    for (const job of shown) watch(job);
    noJobs.hidden = shown.length > 0;
    replace(list, shown.map(jobItem));
  }

  replace(body, h('h3', {}, 'Start a replay'), form, h('h3', {}, 'Jobs'), noJobs, list);

  const refresh = async () => {
    try {
      const data = await gql(LIST);
      clearErrors('Replays');
      functions = data.functions;
      mappings = data.eventSourceMappings;
      fillForm();
      for (const job of data.replays) upsert(job);
      render();
    } catch (error) {
      reportError('Replays', error);
    }
  };
  every(3000, refresh);
  on('streams', (list) => {
    streams = list;
    fillForm();
  });
  on('replays-changed', () => void refresh());
}
