import type { DatabaseHandle } from '../db.ts';
import { notImplemented } from '../errors.ts';
import type { EngineEvents } from '../events.ts';
import type { PutResult } from './putRecords.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';

export async function importRecords(
  _handle: DatabaseHandle, _catalog: StreamCatalog, _events: EngineEvents, _streamName: string, _event: unknown,
): Promise<PutResult> {
  throw notImplemented('importRecords');
}
