// Event source mappings: live figures and uPlot charts of iterator age and records behind
// (the last minutes of EventSourceMapping.metrics, then every update of the lag
// subscription), and the per-shard leases (state, owner, checkpoint, consecutive failures).
import uPlot from 'uplot';
import { connectionState, gql, subscribe } from '../api.js';
import { badge, clearErrors, every, fmtInt, fmtMs, fmtTime, h, on, replace, reportError, seq, shortShard } from '../ui.js';

const WINDOW_MS = 5 * 60_000;
/** Whole-number tick steps: counts and milliseconds never need fractions. */
const INCRS = [1, 2, 5].flatMap((m) => [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8].map((p) => m * p)).sort((a, b) => a - b);

const LIST = `{
  eventSourceMappings {
    id state batchSize parallelizationFactor maximumRetryAttempts bisectBatchOnFunctionError
    stream { name } function { name url module }
  }
}`;
const SHARD_LAG = `shardId lane state owner checkpointSequenceNumber latestSequenceNumber recordsBehind iteratorAgeMs consecutiveFailures lastInvokedAt
  waitingOnShardIds drainRatePerSecond estimatedDrainSeconds timeToDataLossSeconds`;
const LAG = `subscription { lag { mappingId streamName recordsBehind maxIteratorAgeMs at shards { ${SHARD_LAG} } } }`;
const ALL_METRICS = `query ($from: DateTime!, $to: DateTime!) {
  eventSourceMappings { id metrics(from: $from, to: $to, stepSeconds: 1) { at iteratorAgeMs recordsBehind invocations errors recordsProcessed } }
}`;
const METRICS = `query ($id: ID!, $from: DateTime!, $to: DateTime!) {
  eventSourceMapping(id: $id) { metrics(from: $from, to: $to, stepSeconds: 1) { at iteratorAgeMs recordsBehind invocations errors recordsProcessed } }
}`;

function makeChart(el, label, color, format) {
  const opts = {
    width: Math.max(240, el.clientWidth || 360),
    height: 150,
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
    axes: [
      { stroke: '#667', grid: { stroke: '#eef' }, ticks: { stroke: '#dde' } },
      { stroke: '#667', grid: { stroke: '#eef' }, ticks: { stroke: '#dde' }, size: 60, incrs: INCRS, values: (_u, ticks) => ticks.map(format) },
    ],
    series: [
      { value: (_u, v) => (v === null || v === undefined ? '–' : new Date(v * 1000).toLocaleTimeString('en-GB', { hour12: false })) },
      { label, stroke: color, width: 2, fill: `${color}22`, points: { show: false }, value: (_u, v) => (v === null || v === undefined ? '–' : format(v)) },
    ],
  };
  return new uPlot(opts, [[], []], el);
}

class MappingCard {
  constructor(mapping) {
    this.mapping = mapping;
    this.points = []; // { t (ms), age, behind }
    this.historyLoaded = false;
    this.lastLive = undefined;
    this.figures = {
      behind: h('b', { class: 'value' }, '–'),
      age: h('b', { class: 'value' }, '–'),
      invocations: h('b', { class: 'value' }, '–'),
      errors: h('b', { class: 'value' }, '–'),
      failing: h('b', { class: 'value' }, '–'),
    };
    this.ageEl = h('div', { class: 'chart age', 'data-points': 0, 'data-max': 0 });
    this.behindEl = h('div', { class: 'chart behind', 'data-points': 0, 'data-max': 0 });
    this.leases = h('tbody');
    this.alertBadge = h('span', { class: 'alert-flag', hidden: true }, 'ALERT FIRING');
    this.header = h('header', {});
    this.el = h('article', { class: 'card mapping', 'data-mapping': mapping.id },
      this.header,
      h('div', { class: 'figures' },
        h('div', { class: 'figure behind' }, h('span', { class: 'label' }, 'records behind'), this.figures.behind),
        h('div', { class: 'figure age' }, h('span', { class: 'label' }, 'max iterator age'), this.figures.age),
        h('div', { class: 'figure invocations' }, h('span', { class: 'label' }, 'invocations, 5 min'), this.figures.invocations),
        h('div', { class: 'figure errors' }, h('span', { class: 'label' }, 'errors, 5 min'), this.figures.errors),
        h('div', { class: 'figure failing' }, h('span', { class: 'label' }, 'consecutive failures'), this.figures.failing)),
      h('div', { class: 'charts' },
        h('figure', {}, h('figcaption', {}, 'Iterator age'), this.ageEl),
        h('figure', {}, h('figcaption', {}, 'Records behind'), this.behindEl)),
      h('table', { class: 'leases' },
        h('thead', {}, h('tr', {}, ['shard', 'lane', 'lease state', 'owner', 'checkpoint', 'latest', 'behind', 'iterator age', 'drains in', 'data loss in', 'consecutive failures', 'last invoked'].map((c) => h('th', {}, c)))),
        this.leases));
    this.renderHeader();
  }

  renderHeader() {
    const m = this.mapping;
    replace(this.header,
      h('h3', {}, m.stream.name, h('span', { class: 'arrow' }, ' → '), m.function.name),
      badge(m.state),
      this.alertBadge,
      h('span', { class: 'facts' },
        h('span', {}, `batch ${m.batchSize}`),
        h('span', {}, `parallelization ${m.parallelizationFactor}`),
        h('span', {}, `retries ${m.maximumRetryAttempts === -1 ? '∞' : m.maximumRetryAttempts}`),
        m.bisectBatchOnFunctionError ? h('span', {}, 'bisect') : null,
        h('span', { class: 'muted', title: 'mapping id' }, m.id)));
  }

  attach() {
    this.age ??= makeChart(this.ageEl, 'iterator age', '#d9822b', fmtMs);
    this.behind ??= makeChart(this.behindEl, 'records behind', '#2b6cd9', fmtInt);
    this.resize();
  }

  resize() {
    for (const [chart, el] of [[this.age, this.ageEl], [this.behind, this.behindEl]]) {
      if (chart && el.clientWidth) chart.setSize({ width: el.clientWidth, height: 150 });
    }
  }

  addPoint(t, age, behind) {
    const last = this.points.at(-1);
    if (last && t < last.t) {
      const i = this.points.findIndex((p) => p.t > t);
      this.points.splice(i, 0, { t, age, behind });
    } else if (last && t === last.t) {
      Object.assign(last, { age, behind });
    } else {
      this.points.push({ t, age, behind });
    }
  }

  redraw() {
    const cutoff = Date.now() - WINDOW_MS;
    while (this.points.length && this.points[0].t < cutoff) this.points.shift();
    const xs = this.points.map((p) => p.t / 1000);
    const ages = this.points.map((p) => p.age);
    const behinds = this.points.map((p) => p.behind);
    this.age?.setData([xs, ages]);
    this.behind?.setData([xs, behinds]);
    this.ageEl.dataset.points = this.behindEl.dataset.points = String(xs.length);
    this.ageEl.dataset.max = String(Math.max(0, ...ages.filter((v) => v !== null)));
    this.behindEl.dataset.max = String(Math.max(0, ...behinds));
  }

  /** A LagUpdate from the subscription. */
  live(update) {
    this.lastLive = update;
    const behind = update.recordsBehind;
    this.figures.behind.textContent = fmtInt(behind);
    this.figures.behind.dataset.value = String(behind);
    this.figures.behind.classList.toggle('hot', behind > 0);
    this.figures.age.textContent = fmtMs(update.maxIteratorAgeMs);
    this.figures.age.dataset.value = String(update.maxIteratorAgeMs ?? '');
    const failing = update.shards.reduce((sum, l) => sum + l.consecutiveFailures, 0);
    this.figures.failing.textContent = fmtInt(failing);
    this.figures.failing.classList.toggle('hot', failing > 0);
    // Nothing behind: age 0 (the last batch's age stays in the figures; the history says 0 too).
    this.addPoint(Date.parse(update.at), behind > 0 ? update.maxIteratorAgeMs : 0, behind);
    this.redraw();
    const rows = [...update.shards].sort((a, b) => a.shardId.localeCompare(b.shardId) || a.lane - b.lane);
    replace(this.leases, rows.map((l) => h('tr', { 'data-shard-id': l.shardId, 'data-lane': l.lane, class: l.consecutiveFailures > 0 ? 'failing' : '' },
      h('td', { title: l.shardId }, shortShard(l.shardId)),
      h('td', {}, l.lane),
      h('td', {}, badge(l.state), l.waitingOnShardIds?.length ? h('span', { class: 'muted waiting' }, ` on ${l.waitingOnShardIds.map(shortShard).join(', ')}`) : null),
      h('td', { class: 'owner' }, l.owner ?? h('span', { class: 'muted' }, 'unowned')),
      h('td', {}, seq(l.checkpointSequenceNumber)),
      h('td', {}, seq(l.latestSequenceNumber)),
      h('td', { class: l.recordsBehind > 0 ? 'num hot' : 'num' }, fmtInt(l.recordsBehind)),
      h('td', { class: 'num' }, fmtMs(l.iteratorAgeMs)),
      h('td', { class: 'num', title: `${(l.drainRatePerSecond ?? 0).toFixed(1)} records/s over the last minute` }, l.estimatedDrainSeconds === null || l.estimatedDrainSeconds === undefined ? '–' : fmtMs(l.estimatedDrainSeconds * 1000)),
      h('td', { class: l.timeToDataLossSeconds !== null && l.timeToDataLossSeconds !== undefined && l.timeToDataLossSeconds < 3600 ? 'num hot' : 'num' },
        l.timeToDataLossSeconds === null || l.timeToDataLossSeconds === undefined ? '–' : fmtMs(l.timeToDataLossSeconds * 1000)),
      h('td', { class: l.consecutiveFailures > 0 ? 'num hot' : 'num' }, fmtInt(l.consecutiveFailures)),
      h('td', {}, l.lastInvokedAt ? fmtTime(l.lastInvokedAt) : h('span', { class: 'muted' }, 'never')))));
  }

  /** Carries the last live figures forward so the time axis moves while nothing changes. */
  tick() {
    // While the live connection is down the last figures are not live: the chart waits.
    if (!this.lastLive || connectionState() !== 'connected') return;
    const now = Date.now();
    const last = this.points.at(-1);
    if (!last || now - last.t >= 1000) {
      this.addPoint(now, this.lastLive.maxIteratorAgeMs, this.lastLive.recordsBehind);
      this.redraw();
    }
  }

  async loadMetrics() {
    const to = new Date();
    const from = new Date(to.getTime() - WINDOW_MS);
    const data = await gql(METRICS, { id: this.mapping.id, from: from.toISOString(), to: to.toISOString() });
    clearErrors('Metrics');
    this.showMetrics(data.eventSourceMapping?.metrics ?? []);
  }

  /** The last minutes' history: the chart's past (once), and the invocation and error counts. */
  showMetrics(points) {
    if (!this.historyLoaded) {
      this.historyLoaded = true;
      const firstLive = this.points[0]?.t ?? Infinity;
      for (const p of points) {
        const t = Date.parse(p.at);
        if (t < firstLive) this.addPoint(t, p.iteratorAgeMs, p.recordsBehind);
      }
      this.redraw();
    }
    const sum = (k) => points.reduce((n, p) => n + p[k], 0);
    this.figures.invocations.textContent = fmtInt(sum('invocations'));
    this.figures.errors.textContent = fmtInt(sum('errors'));
    this.figures.errors.classList.toggle('hot', sum('errors') > 0);
  }

  setAlerting(on) {
    this.el.classList.toggle('alerting', on);
    this.alertBadge.hidden = !on;
  }
}

export function mountMappings(section) {
  const body = section.querySelector('.body');
  const cards = new Map();
  const pending = new Map(); // lag updates that arrived before their mapping was listed
  let firing = [];
  let listed = false;

  const applyAlerts = () => {
    for (const card of cards.values()) {
      card.setAlerting(firing.some((a) => a.rule.mappingId === null || a.rule.mappingId === card.mapping.id));
    }
  };

  const refresh = async () => {
    let data;
    try {
      data = await gql(LIST);
      clearErrors('Mappings');
    } catch (error) {
      reportError('Mappings', error);
      return;
    }
    listed = true;
    const ids = new Set(data.eventSourceMappings.map((m) => m.id));
    for (const [id, card] of cards) {
      if (!ids.has(id)) {
        card.el.remove();
        cards.delete(id);
      }
    }
    for (const m of data.eventSourceMappings) {
      let card = cards.get(m.id);
      if (card) {
        if (JSON.stringify(card.mapping) !== JSON.stringify(m)) {
          card.mapping = m;
          card.renderHeader();
        }
        continue;
      }
      card = new MappingCard(m);
      cards.set(m.id, card);
    }
    const ordered = [...cards.values()].sort((a, b) => a.mapping.stream.name.localeCompare(b.mapping.stream.name) || a.mapping.function.name.localeCompare(b.mapping.function.name));
    if (!ordered.length) {
      replace(body, h('p', { class: 'empty' }, 'No event source mappings yet. Create one with createEventSourceMapping.'));
      return;
    }
    body.querySelector('p.empty')?.remove();
    for (const card of ordered) {
      if (card.el.parentNode !== body) {
        body.append(card.el);
        card.attach();
        const early = pending.get(card.mapping.id);
        if (early) card.live(early);
        pending.delete(card.mapping.id);
        card.loadMetrics().catch((error) => reportError('Metrics', error));
      }
    }
    applyAlerts();
  };

  every(5000, refresh);
  // Every card's counts in one query (not one per mapping).
  every(5000, async () => {
    const loaded = [...cards.values()].filter((card) => card.historyLoaded);
    if (!loaded.length) return;
    const to = new Date();
    const from = new Date(to.getTime() - WINDOW_MS);
    try {
      const data = await gql(ALL_METRICS, { from: from.toISOString(), to: to.toISOString() });
      clearErrors('Metrics');
      for (const m of data.eventSourceMappings) cards.get(m.id)?.showMetrics(m.metrics);
    } catch (error) {
      reportError('Metrics', error);
    }
  });
  setInterval(() => { for (const card of cards.values()) card.tick(); }, 1000);
  new ResizeObserver(() => { for (const card of cards.values()) card.resize(); }).observe(body);

  subscribe(LAG, {}, {
    next: ({ lag }) => {
      clearErrors('Lag');
      const card = cards.get(lag.mappingId);
      if (card) card.live(lag);
      else {
        pending.set(lag.mappingId, lag);
        if (listed) void refresh();
      }
    },
    error: (error) => reportError('Lag', error),
  });

  on('alerts', (alerts) => {
    firing = alerts.filter((a) => a.state === 'FIRING');
    applyAlerts();
  });
}
