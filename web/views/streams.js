// Streams and their shards as a lineage tree (SVG): one column per generation, left to right;
// each shard drawn at the height of its hash key range (top = 0, bottom = 2^128), so a split
// shows its two children sharing the parent's band and a merge one child spanning two.
import { gql } from '../api.js';
import { clearErrors, emit, every, fmtDateTime, fmtInt, h, replace, reportError, s, shortShard } from '../ui.js';

const QUERY = `{
  streams {
    name kind status retentionHours viewType createdAt
    shards {
      shardId parentShardId adjacentParentShardId
      hashKeyRange { startingHashKey endingHashKey }
      startingSequenceNumber endingSequenceNumber createdAt closedAt recordCount
    }
  }
}`;

const KEY_SPACE = 2n ** 128n;
const NODE_W = 150;
const COL_GAP = 56;
const MIN_H = 54;
const GAP = 6;
/** Pixels for the whole key space in a column: enough for the narrowest shard to get MIN_H, within bounds. */
const band = (shards) => {
  const narrowest = Math.min(...shards.map((sh) => frac(sh.hashKeyRange.endingHashKey) - frac(sh.hashKeyRange.startingHashKey)));
  return Math.min(1200, Math.max(180, Math.ceil((MIN_H + GAP) / Math.max(narrowest, 1e-6))));
};

/** Fraction of the key space as a percentage with up to one decimal. */
const pct = (key) => {
  const v = Number((BigInt(key) * 1000n) / KEY_SPACE) / 10;
  return `${Number.isInteger(v) ? v : v.toFixed(1)}%`;
};
const frac = (key) => Number((BigInt(key) * 1_000_000n) / KEY_SPACE) / 1_000_000;

/** Generation of each shard: 0 for shards without a (known) parent, else 1 + the deepest parent's. */
function generations(shards) {
  const byId = new Map(shards.map((sh) => [sh.shardId, sh]));
  const depth = new Map();
  const visit = (sh, seen = new Set()) => {
    if (depth.has(sh.shardId)) return depth.get(sh.shardId);
    if (seen.has(sh.shardId)) return 0;
    seen.add(sh.shardId);
    const parents = [sh.parentShardId, sh.adjacentParentShardId].map((id) => id && byId.get(id)).filter(Boolean);
    const d = parents.length ? 1 + Math.max(...parents.map((p) => visit(p, seen))) : 0;
    depth.set(sh.shardId, d);
    return d;
  };
  for (const sh of shards) visit(sh);
  return depth;
}

export function lineageSvg(stream) {
  const shards = stream.shards;
  const depth = generations(shards);
  const columns = [];
  for (const sh of shards) (columns[depth.get(sh.shardId)] ??= []).push(sh);
  const boxes = new Map();
  const BAND = band(shards);
  let height = 0;
  columns.forEach((column, d) => {
    column.sort((a, b) => (BigInt(a.hashKeyRange.startingHashKey) < BigInt(b.hashKeyRange.startingHashKey) ? -1 : 1));
    let bottom = 0;
    for (const sh of column) {
      const top = Math.max(frac(sh.hashKeyRange.startingHashKey) * BAND, bottom ? bottom + GAP : 0);
      const span = (frac(sh.hashKeyRange.endingHashKey) - frac(sh.hashKeyRange.startingHashKey)) * BAND - GAP;
      const hgt = Math.max(MIN_H, span);
      boxes.set(sh.shardId, { x: d * (NODE_W + COL_GAP), y: top, w: NODE_W, h: hgt });
      bottom = top + hgt;
      height = Math.max(height, bottom);
    }
  });
  const width = Math.max(1, columns.length) * (NODE_W + COL_GAP) - COL_GAP;
  const edges = [];
  for (const sh of shards) {
    const to = boxes.get(sh.shardId);
    for (const parentId of [sh.parentShardId, sh.adjacentParentShardId]) {
      const from = parentId && boxes.get(parentId);
      if (!from) continue;
      const x1 = from.x + from.w;
      const y1 = from.y + from.h / 2;
      const x2 = to.x;
      const y2 = to.y + to.h / 2;
      const mid = (x1 + x2) / 2;
      edges.push(s('path', { class: 'edge', d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` }));
    }
  }
  const nodes = shards.map((sh) => {
    const b = boxes.get(sh.shardId);
    const open = !sh.closedAt && !sh.endingSequenceNumber;
    const range = `${pct(sh.hashKeyRange.startingHashKey)} – ${pct((BigInt(sh.hashKeyRange.endingHashKey) + 1n).toString())}`;
    const lines = [
      [shortShard(sh.shardId), 'name'],
      [`${fmtInt(sh.recordCount)} records`, 'count'],
      [`keys ${range}`, 'range'],
    ];
    const title = [
      sh.shardId,
      open ? 'OPEN' : `CLOSED at ${fmtDateTime(sh.closedAt)}`,
      `hash keys ${sh.hashKeyRange.startingHashKey} … ${sh.hashKeyRange.endingHashKey}`,
      `sequence numbers from ${sh.startingSequenceNumber}${sh.endingSequenceNumber ? ` to ${sh.endingSequenceNumber}` : ''}`,
      `${fmtInt(sh.recordCount)} records written`,
      sh.parentShardId ? `parent ${sh.parentShardId}${sh.adjacentParentShardId ? ` + ${sh.adjacentParentShardId}` : ''}` : 'no parent',
    ].join('\n');
    return s('g', {
      class: `shard ${open ? 'open' : 'closed'}`,
      transform: `translate(${b.x},${b.y})`,
      'data-shard-id': sh.shardId,
      'data-state': open ? 'OPEN' : 'CLOSED',
      'data-records': sh.recordCount,
    },
    s('title', {}, title),
    s('rect', { width: b.w, height: b.h, rx: 6 }),
    lines.map(([text, cls], i) => s('text', { class: cls, x: 10, y: 17 + i * 15 }, text)),
    s('circle', { class: 'dot', cx: b.w - 12, cy: 12, r: 4 }));
  });
  return s('svg', {
    class: 'lineage', width, height: Math.ceil(height) + 2, viewBox: `0 -1 ${width} ${Math.ceil(height) + 2}`,
    role: 'img', 'aria-label': `shard lineage of ${stream.name}`,
  }, s('g', { class: 'edges' }, edges), s('g', { class: 'nodes' }, nodes));
}

function streamCard(stream) {
  const open = stream.shards.filter((sh) => !sh.closedAt && !sh.endingSequenceNumber).length;
  const total = stream.shards.reduce((sum, sh) => sum + (sh.recordCount ?? 0), 0);
  return h('article', { class: 'card stream', 'data-stream': stream.name },
    h('header', {},
      h('h3', {}, stream.name),
      h('span', { class: `badge ${stream.kind.toLowerCase()}` }, stream.kind),
      stream.status !== 'ACTIVE' ? h('span', { class: 'badge warn' }, stream.status) : null,
      h('span', { class: 'facts' },
        h('span', {}, h('b', { class: 'open-count' }, open), ' open / ', h('b', {}, stream.shards.length - open), ' closed shards'),
        h('span', {}, h('b', { class: 'record-total', 'data-value': total }, fmtInt(total)), ' records written'),
        h('span', {}, `retention ${stream.retentionHours} h`))),
    h('div', { class: 'lineage-scroll' }, lineageSvg(stream)),
    h('p', { class: 'legend' },
      h('span', { class: 'key open' }, 'open'), h('span', { class: 'key closed' }, 'closed'),
      ' — columns are generations (left: oldest); height is the share of the hash key space; hover a shard for details.'));
}

export function mountStreams(section) {
  const body = section.querySelector('.body');
  let last = '';
  every(1500, async () => {
    let data;
    try {
      data = await gql(QUERY);
      clearErrors('Streams');
    } catch (error) {
      reportError('Streams', error);
      return;
    }
    const text = JSON.stringify(data.streams);
    if (text === last) return;
    last = text;
    emit('streams', data.streams);
    if (!data.streams.length) {
      replace(body, h('p', { class: 'empty' }, 'No streams yet. Create one with the createStream mutation in ', h('a', { href: '/graphql' }, 'GraphiQL'), '.'));
      return;
    }
    replace(body, data.streams.map(streamCard));
  });
}
