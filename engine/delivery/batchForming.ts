/**
 * Forming a batch from a page of records, for lanes and replays alike: records no filter
 * pattern matches are dropped (and are done with once the batch is), and the batch is cut
 * before it would pass the 6 MB invocation payload limit.
 */
import type { StreamInfo } from '../streams/model.ts';
import { type EventContext, buildEventRecord, eventRecordSizer, MAX_PAYLOAD_BYTES } from './eventShapes.ts';
import { type CompiledFilters, matchesFilters } from './filterPatterns.ts';
import type { LaneRecord } from './laneReader.ts';

/** Room left in a 6 MB payload for the event's envelope. */
export const ENVELOPE_BYTES = 1024;

export interface FormedBatch {
  records: LaneRecord[];
  eventRecords: Record<string, unknown>[];
  /** The last record examined: filtered-out records up to it are done with the batch. */
  pageEnd: LaneRecord;
  /** True when the payload limit cut the page short. */
  cut: boolean;
  /** The payload bytes taken so far (the reserve included): where a following page goes on from. */
  bytes: number;
  /** How many of the page's records were examined (taken or filtered out): pageEnd is the last of them. */
  examined: number;
}

/**
 * `reserveBytes`: payload room kept for something beside the records (a tumbling window's state,
 * or the records of earlier pages); `maxRecords`: the batch ends at that many matching records;
 * `carried`: records the batch holds from earlier pages (so even its first one here may be cut).
 */
export function formBatch(
  stream: StreamInfo, filters: CompiledFilters, page: LaneRecord[], ctx: EventContext, reserveBytes = 0, maxRecords = Infinity, carried = 0,
): FormedBatch {
  const records: LaneRecord[] = [];
  const eventRecords: Record<string, unknown>[] = [];
  let bytes = ENVELOPE_BYTES + reserveBytes;
  let pageEnd = page[0]!;
  let cut = false;
  let examined = 0;
  const sizeOf = eventRecordSizer(stream, ctx);
  for (const item of page) {
    if (records.length >= maxRecords) break;
    const eventRecord = buildEventRecord(stream, item.record, ctx);
    if (matchesFilters(filters, stream.kind, eventRecord)) {
      const size = sizeOf(item.record) + 1;
      if (records.length + carried > 0 && bytes + size > MAX_PAYLOAD_BYTES) {
        cut = true;
        break;
      }
      bytes += size;
      records.push(item);
      eventRecords.push(eventRecord);
    }
    pageEnd = item;
    examined++;
  }
  return { records, eventRecords, pageEnd, cut, bytes, examined };
}
