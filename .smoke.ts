import { openEngine, DEFAULT_ENGINE_OPTIONS } from './engine/engine.ts';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
const admin = postgres('postgres://postgres@127.0.0.1:5432/test', { onnotice: () => {} });
await admin.unsafe('drop database if exists smoke'); await admin.unsafe('create database smoke'); await admin.end();
for (const url of [undefined, 'postgres://postgres@127.0.0.1:5432/smoke']) {
  const e = await openEngine({ ...DEFAULT_ENGINE_OPTIONS, databaseUrl: url, dataDir: '' });
  await e.start();
  await e.catalog.create({ name: 's1', shardCount: 4 });
  const data = Buffer.alloc(1024, 7).toString('base64');
  let t = Date.now();
  for (let b = 0; b < 20; b++) {
    const r = await e.putRecords('s1', Array.from({ length: 500 }, (_, i) => ({ partitionKey: `k${b}-${i}`, data })));
    if (b === 0) console.log(r.records.slice(0, 2));
  }
  console.log(url ? 'pg' : 'pglite', 'put 10000 in', Date.now() - t, 'ms');
  const s = await e.catalog.get('s1');
  const shards = await e.catalog.shards(s);
  await e.resharding.splitShard('s1', 'shardId-000000000001', (BigInt(shards[1]!.hashKeyRange.startingHashKey) + 12345n).toString());
  await e.putRecords('s1', Array.from({ length: 500 }, (_, i) => ({ partitionKey: `z${i}`, data })));
  console.log((await e.catalog.shards(s)).map((x) => [x.shardId, x.parentShardId, x.endingSequenceNumber]));
  t = Date.now();
  let after: string | undefined; let n = 0; let prev = '';
  for (;;) {
    const p = await e.reader.page('s1', { first: 1000, after });
    for (const r of p.records) { if (r.record.sequenceNumber <= prev) throw new Error('order'); prev = r.record.sequenceNumber; n++; }
    after = p.endCursor; if (!p.hasNextPage) break;
  }
  console.log('read', n, 'in', Date.now() - t, 'ms');
  await e.resharding.updateShardCount('s1', 3);
  console.log((await e.catalog.shards(s, 'OPEN')).map((x) => [x.shardId, x.parentShardId, x.adjacentParentShardId, x.hashKeyRange]));
  console.log(await e.housekeeper.tick(new Date(Date.now() + 3 * 86400e3)));
  console.log(await e.handle.query(sql`select count(*) from records`));
  await e.stop(); await e.handle.close();
}
