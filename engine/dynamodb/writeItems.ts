import type { DatabaseHandle } from '../db.ts';
import { notImplemented } from '../errors.ts';
import type { EngineEvents } from '../events.ts';
import type { PutResult } from '../records/putRecords.ts';
import type { StreamCatalog } from '../streams/streamCatalog.ts';

export interface ItemChange { keys: unknown; oldImage?: unknown; newImage?: unknown }

export async function writeItems(
  _handle: DatabaseHandle, _catalog: StreamCatalog, _events: EngineEvents, _streamName: string, _changes: ItemChange[],
): Promise<PutResult> {
  throw notImplemented('writeItems');
}
