/**
 * A lease its process holds but no lane serves — the lane ended on a database error and giving
 * the lease back failed too — is served again at the next heartbeat instead of being renewed
 * and served by nobody. (Found by test/drills/postgresRestart.drill.ts: after a Postgres
 * restart delivery never resumed.)
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { type TestEngine, b64, backends, openTestEngine, waitFor } from './harness.ts';

for (const backend of backends) {
  describe(`a held lease without a lane (${backend.name})`, () => {
    let t: TestEngine;
    const seen: string[] = [];
    const server = createServer(async (req, res) => {
      let text = '';
      for await (const chunk of req) text += chunk;
      for (const r of JSON.parse(text).Records) seen.push(Buffer.from(r.kinesis.data, 'base64').toString());
      res.writeHead(200, { 'content-type': 'application/json' }).end('null');
    });
    before(async () => {
      t = await openTestEngine(backend, { delivery: { leaseTtlMs: 60_000, heartbeatMs: 100, idlePollMs: 50 } });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });
    after(async () => {
      await t.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it('is given back and served again', async () => {
      await t.engine.catalog.create({ name: 'orphan', shardCount: 1 });
      await t.engine.createFunction({ name: 'orphan-fn', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` });
      const mapping = await t.engine.createMapping({ streamName: 'orphan', functionName: 'orphan-fn', startingPosition: 'TRIM_HORIZON', enabled: false });
      await t.engine.poller!.start();
      await waitFor(async () => (await t.engine.handle.query(sql`select 1 from leases where mapping_id = ${mapping.id}`)).length === 1, 'the lease exists');
      // The state a failed lane and a failed release leave behind: owned by this process, unexpired, no lane.
      await t.engine.handle.query(sql`update leases set owner = ${t.engine.poller!.owner}, expires_at = now() + interval '1 hour' where mapping_id = ${mapping.id}`);
      await t.engine.updateMapping(mapping.id, { enabled: true });
      await t.engine.putRecords('orphan', [{ partitionKey: 'k', data: b64('hello') }]);
      await waitFor(() => seen.includes('hello'), 'the record delivered', 10_000);
      assert.deepEqual(seen, ['hello']);
    });
  });
}
