// Small DOM and formatting helpers shared by the views. Text always goes in as text nodes
// (never innerHTML), so data from the API cannot inject markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'text') el.textContent = String(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h('div', {class: 'x', onclick: fn}, 'text', childNode, [more]) */
export const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
/** The same for SVG elements. */
export const s = (tag, attrs, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  build(el, {}, children);
  return el;
}

export const fmtInt = (n) => (n === null || n === undefined ? '–' : Number(n).toLocaleString('en-US'));

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
  if (ms < 3_600_000) {
    const seconds = Math.round((ms % 60_000) / 1000);
    return `${Math.floor(ms / 60_000)} min${seconds ? ` ${seconds} s` : ''}`;
  }
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(1)} GiB`;
}

export function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleTimeString('en-GB', { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

export function fmtDateTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return `${d.toLocaleDateString('en-CA')} ${d.toLocaleTimeString('en-GB', { hour12: false })}`;
}

/** "shardId-000000000003" → "shard 3" */
export const shortShard = (shardId) => {
  const m = /^shardId-0*(\d+)$/.exec(shardId ?? '');
  return m ? `shard ${m[1]}` : shardId;
};

/** Long sequence numbers shortened for tables; the full one stays in the title. */
export function seq(value) {
  if (!value) return h('span', { class: 'muted' }, '–');
  return h('span', { class: 'seq', title: value }, value.length > 12 ? `…${value.slice(-8)}` : value);
}

export const badge = (text, kind = String(text).toLowerCase()) => h('span', { class: `badge ${kind}` }, text);

// ---- errors, shown plainly at the top of the page ----

const shown = new Map();

/** Shows an API error under a heading naming where it happened; the same one is shown once. */
export function reportError(where, error) {
  const box = document.getElementById('errors');
  const code = error?.code && !['NETWORK', 'SUBSCRIPTION'].includes(error.code) ? `${error.code}: ` : '';
  const text = `${where}: ${code}${error?.message ?? String(error)}`;
  if (shown.has(text)) return;
  const item = h('div', { class: 'error' },
    h('span', {}, text),
    h('button', { type: 'button', class: 'link', title: 'dismiss', onclick: () => { item.remove(); shown.delete(text); } }, '×'));
  shown.set(text, item);
  box.append(item);
  console.error(text, error);
}

/** Removes the errors reported under `where` and its variants ("Failures (live)") when it works again. */
export function clearErrors(where) {
  for (const [text, item] of shown) {
    if (text.startsWith(`${where}: `) || text.startsWith(`${where} (`)) {
      item.remove();
      shown.delete(text);
    }
  }
}

/** Runs fn every `ms` (first run now), not overlapping itself; returns a stop function. */
export function every(ms, fn) {
  let timer;
  let stopped = false;
  const run = async () => {
    try {
      await fn();
    } catch (error) {
      console.error(error);
    } finally {
      if (!stopped) timer = setTimeout(run, ms);
    }
  };
  void run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** A tiny event bus between views ('alerts', 'replays', 'mappings', 'streams'). */
export const bus = new EventTarget();
export const emit = (type, detail) => bus.dispatchEvent(new CustomEvent(type, { detail }));
export const on = (type, fn) => bus.addEventListener(type, (e) => fn(e.detail));
