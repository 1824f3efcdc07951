/**
 * A stream name Postgres cannot even hold (a NUL character) is a stream that does not exist,
 * not an internal error. (Found by the fuzzing drill, test/drills/fuzz.drill.ts.)
 */
import { after, before, describe, it } from 'node:test';
import { type TestEngine, backends, openTestEngine, rejectsWith } from './harness.ts';

for (const backend of backends) {
  describe(`stream names with NUL (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => {
      t = await openTestEngine(backend, { delivery: false });
    });
    after(() => t.close());

    it('are STREAM_NOT_FOUND', async () => {
      await rejectsWith(t.engine.catalog.get('a\u0000b'), 'STREAM_NOT_FOUND');
      await rejectsWith(t.engine.putRecords('a\u0000b', [{ partitionKey: 'k', data: 'YQ==' }]), 'STREAM_NOT_FOUND');
    });
  });
}
