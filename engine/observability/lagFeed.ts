/**
 * The lag feed behind the `lag` subscription: the current figures of every mapping in scope at
 * once, then an update whenever a mapping's leases change or records arrive on its stream,
 * coalesced to at most one per mapping every COALESCE_MS, and at least every HEARTBEAT_MS while
 * anything is behind (a stuck lane is never silent). Wake-ups come from engine events (from
 * any process, through the notifier); the figures are read from the database.
 */
import type { Engine } from '../engine.ts';
import type { ShardLag } from '../delivery/lag.ts';
import type { MappingInfo } from '../mappings/mappingCatalog.ts';
import { waitForWake } from './cancellable.ts';

export interface LagUpdate {
  mappingId: string;
  streamName: string;
  shards: ShardLag[];
  recordsBehind: number;
  maxIteratorAgeMs: number | null;
  at: Date;
}

const COALESCE_MS = 250;
const HEARTBEAT_MS = 2000;

export async function lagUpdate(engine: Engine, mapping: MappingInfo, streamName: string): Promise<LagUpdate> {
  const shards = await engine.recentLag(mapping.id);
  const ages = shards.map((s) => s.iteratorAgeMs).filter((a): a is number => a !== null);
  return {
    mappingId: mapping.id,
    streamName,
    shards,
    recordsBehind: shards.reduce((sum, s) => sum + s.recordsBehind, 0),
    maxIteratorAgeMs: ages.length ? Math.max(...ages) : null,
    at: new Date(),
  };
}

export async function* watchLag(engine: Engine, scope: { mappingId?: string | null; streamName?: string | null }, signal: AbortSignal): AsyncGenerator<LagUpdate> {
  const inScope = async (): Promise<{ mapping: MappingInfo; streamName: string }[]> => {
    const mappings = scope.mappingId ? [await engine.mappings.get(scope.mappingId)] : await engine.mappings.list(scope.streamName ?? null);
    const out = [];
    for (const mapping of mappings) {
      const stream = await engine.catalog.findById(mapping.streamId);
      if (stream && (!scope.streamName || stream.name === scope.streamName)) out.push({ mapping, streamName: stream.name });
    }
    return out;
  };
  const dirty = new Set<string>();
  let wake: () => void = () => {};
  const mark = (mappingId: string | undefined) => {
    if (mappingId) dirty.add(mappingId);
    wake();
  };
  let streamToMappings = new Map<number, string[]>();
  const offs = [
    engine.events.on('leases', (e) => mark(e.mappingId)),
    engine.events.on('records', (e) => { for (const id of streamToMappings.get(e.streamId) ?? []) mark(id); }),
    engine.events.on('mappings', () => mark('*')),
  ];
  try {
    let mappings = await inScope();
    const last = new Map<string, { fingerprint: string; at: number }>();
    let first = true;
    while (!signal.aborted) {
      if (dirty.has('*')) mappings = await inScope();
      streamToMappings = new Map();
      for (const { mapping } of mappings) {
        streamToMappings.set(mapping.streamId, [...(streamToMappings.get(mapping.streamId) ?? []), mapping.id]);
      }
      const now = Date.now();
      const due = mappings.filter(({ mapping }) => first || dirty.has(mapping.id) || dirty.has('*')
        || now - (last.get(mapping.id)?.at ?? 0) >= HEARTBEAT_MS);
      dirty.clear();
      for (const { mapping, streamName } of due) {
        const update = await lagUpdate(engine, mapping, streamName);
        const fingerprint = JSON.stringify(update.shards);
        const previous = last.get(mapping.id);
        const heartbeat = now - (previous?.at ?? 0) >= HEARTBEAT_MS && update.recordsBehind > 0;
        if (first || previous?.fingerprint !== fingerprint || heartbeat) {
          last.set(mapping.id, { fingerprint, at: now });
          yield update;
        } else if (previous) {
          previous.at = now;
        }
      }
      first = false;
      await waitForWake(signal, COALESCE_MS, () => {});
      if (dirty.size === 0) await waitForWake(signal, HEARTBEAT_MS, (w) => { wake = w; });
    }
  } finally {
    for (const off of offs) off();
  }
}
