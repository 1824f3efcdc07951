// Alerts: FIRING ones first and highlighted (also in the page header), then the recently
// resolved; the alerts query once, then each transition from the alerts subscription.
import { gql, subscribe } from '../api.js';
import { clearErrors, emit, every, fmtDateTime, fmtInt, fmtMs, h, replace, reportError } from '../ui.js';

const ALERT = 'id state value startedAt resolvedAt rule { id name mappingId metric threshold forSeconds }';
const QUERY = `{ alerts { ${ALERT} } alertRules { id } eventSourceMappings { id stream { name } function { name } } }`;
const RESOLVED_SHOWN = 8;

export function formatMetric(metric, value) {
  switch (metric) {
    case 'ITERATOR_AGE_MS': return fmtMs(value);
    case 'RECORDS_BEHIND': return `${fmtInt(value)} records`;
    case 'DISCARDED_RECORDS': return `${fmtInt(value)} discarded`;
    case 'ERROR_RATE': return `${(value * 100).toFixed(1)} %`;
    case 'TIME_TO_DATA_LOSS_SECONDS': return fmtMs(value * 1000);
    default: return String(value);
  }
}

const condition = (rule) => (rule.metric === 'TIME_TO_DATA_LOSS_SECONDS' ? '<' : '>');

export function mountAlerts(section) {
  const body = section.querySelector('.body');
  const header = document.querySelector('header.top');
  const banner = h('a', { class: 'firing-banner', href: '#alerts', hidden: true });
  header.append(banner);
  const alerts = new Map();
  let names = new Map();
  let ruleCount = 0;
  let loaded = false;

  // A query answer may be older than a pushed transition: a RESOLVED alert never goes back.
  const upsert = (a) => {
    const known = alerts.get(a.id);
    if (!(known?.state === 'RESOLVED' && a.state === 'FIRING')) alerts.set(a.id, a);
  };
  const target = (rule) => (rule.mappingId ? names.get(rule.mappingId) ?? `mapping ${rule.mappingId}` : 'every mapping');

  const render = () => {
    const all = [...alerts.values()];
    const firing = all.filter((a) => a.state === 'FIRING').sort((a, b) => b.startedAt.localeCompare(a.startedAt));
    const allResolved = all.filter((a) => a.state !== 'FIRING').sort((a, b) => (b.resolvedAt ?? '').localeCompare(a.resolvedAt ?? ''));
    const resolved = allResolved.slice(0, RESOLVED_SHOWN);
    // A page left open keeps only what it shows: every firing alert and the newest resolved ones.
    for (const old of allResolved.slice(RESOLVED_SHOWN)) alerts.delete(old.id);
    emit('alerts', all);
    banner.hidden = firing.length === 0;
    banner.textContent = `${firing.length} alert${firing.length === 1 ? '' : 's'} firing`;
    section.classList.toggle('has-firing', firing.length > 0);
    const item = (a) => h('li', { class: `alert ${a.state.toLowerCase()}`, 'data-alert-id': a.id, 'data-state': a.state },
      h('span', { class: 'state' }, a.state),
      h('b', { class: 'name' }, a.rule.name),
      h('span', { class: 'what' }, `${a.rule.metric} ${condition(a.rule)} ${formatMetric(a.rule.metric, a.rule.threshold)} for ${a.rule.forSeconds} s on ${target(a.rule)}`),
      h('span', { class: 'value' }, 'value ', h('b', {}, formatMetric(a.rule.metric, a.value))),
      h('span', { class: 'when' }, a.state === 'FIRING' ? `since ${fmtDateTime(a.startedAt)}` : `${fmtDateTime(a.startedAt)} → ${fmtDateTime(a.resolvedAt)}`));
    replace(body,
      firing.length
        ? h('ul', { class: 'alerts firing-list' }, firing.map(item))
        : h('p', { class: 'ok' }, loaded ? `Nothing firing (${ruleCount} alert rule${ruleCount === 1 ? '' : 's'}).` : 'Loading…'),
      resolved.length ? h('details', { class: 'resolved' }, h('summary', {}, `Recently resolved (${resolved.length})`), h('ul', { class: 'alerts' }, resolved.map(item))) : null);
  };

  every(10_000, async () => {
    try {
      const data = await gql(QUERY);
      clearErrors('Alerts');
      names = new Map(data.eventSourceMappings.map((m) => [m.id, `${m.stream.name} → ${m.function.name}`]));
      ruleCount = data.alertRules.length;
      for (const a of data.alerts) upsert(a);
      loaded = true;
      render();
    } catch (error) {
      reportError('Alerts', error);
    }
  });

  subscribe(`subscription { alerts { ${ALERT} } }`, {}, {
    next: ({ alerts: a }) => {
      upsert(a);
      render();
    },
    error: (error) => reportError('Alerts (live)', error),
  });
}
