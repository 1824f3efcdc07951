/**
 * The KINESIS stream model: creating streams, routing records to shards (MD5 and explicit hash
 * keys), sequence numbers, and every putRecords / createStream / retention limit.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { ShardlineError } from '../engine/errors.ts';
import { MAX_HASH_KEY, hashKeyOf } from '../engine/streams/hashKeys.ts';
import type { ShardInfo, StreamInfo } from '../engine/streams/model.ts';
import { type TestEngine, b64, backends, openTestEngine, rejectsWith } from './harness.ts';

const MIB = 1024 * 1024;

/** Asserts that `promise` rejects with a ShardlineError of `code` whose message matches every pattern. */

/** Base64 of n bytes (a repeating pattern, so the data is not all zeros). */
const bytes64 = (n: number) => Buffer.alloc(n, 'abcdefgh').toString('base64');

const shardFor = (shards: ShardInfo[], hash: bigint) =>
  shards.find((s) => BigInt(s.hashKeyRange.startingHashKey) <= hash && hash <= BigInt(s.hashKeyRange.endingHashKey));

for (const backend of backends) {
  describe(`kinesis stream model (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => { t = await openTestEngine(backend); });
    after(async () => { await t.close(); });

    /** Records stored for a stream, counted in the table (not through the reader). */
    async function countRecords(stream: StreamInfo): Promise<number> {
      const [row] = await t.engine.handle.query<{ n: number }>(sql`
        select count(*)::int as n from records r join shards s on s.key = r.shard_key where s.stream_id = ${stream.id}`);
      return row!.n;
    }

    async function readAll(streamName: string, shardId?: string) {
      const out = [];
      let cursor: string | undefined;
      for (;;) {
        const page = await t.engine.reader.page(streamName, { shardId, first: 1000, after: cursor });
        out.push(...page.records.map((r) => r.record));
        cursor = page.endCursor;
        if (!page.hasNextPage) return out;
      }
    }

    describe('createStream', () => {
      it('creates an ACTIVE KINESIS stream with defaults, an ARN and shards numbered from 0', async () => {
        const stream = await t.engine.catalog.create({ name: 'defaults.stream_1-a', shardCount: 3 });
        assert.equal(stream.kind, 'KINESIS');
        assert.equal(stream.status, 'ACTIVE');
        assert.equal(stream.retentionHours, 24);
        assert.equal(stream.viewType, null);
        assert.equal(stream.arn, 'arn:aws:kinesis:us-east-1:000000000000:stream/defaults.stream_1-a');
        const shards = await t.engine.catalog.shards(stream);
        assert.deepEqual(shards.map((s) => s.shardId), ['shardId-000000000000', 'shardId-000000000001', 'shardId-000000000002']);
        for (const s of shards) {
          assert.equal(s.parentShardId, null);
          assert.equal(s.adjacentParentShardId, null);
          assert.equal(s.endingSequenceNumber, null);
          assert.match(s.startingSequenceNumber, /^(0|[1-9]\d{0,128})$/);
        }
        const found = await t.engine.catalog.get('defaults.stream_1-a');
        assert.equal(found.id, stream.id);
      });

      it('splits the hash key space evenly (N = 1, 2, 3) with no gaps or overlaps', async () => {
        for (const n of [1, 2, 3]) {
          const stream = await t.engine.catalog.create({ name: `even-${n}`, shardCount: n });
          const shards = await t.engine.catalog.shards(stream);
          assert.equal(shards.length, n);
          const h = (1n << 128n) / BigInt(n);
          shards.forEach((s, i) => {
            assert.equal(s.hashKeyRange.startingHashKey, (BigInt(i) * h).toString());
            assert.equal(s.hashKeyRange.endingHashKey, (i === n - 1 ? MAX_HASH_KEY : BigInt(i + 1) * h - 1n).toString());
          });
        }
        const two = await t.engine.catalog.shards(await t.engine.catalog.get('even-2'));
        assert.equal(two[0]!.hashKeyRange.endingHashKey, '170141183460469231731687303715884105727');
        assert.equal(two[1]!.hashKeyRange.startingHashKey, '170141183460469231731687303715884105728');
      });

      it('rejects bad names with INVALID_ARGUMENT and creates nothing', async () => {
        for (const name of ['', 'a'.repeat(129), 'has space', 'slash/name', 'ünï', 'colon:name']) {
          await rejectsWith(t.engine.catalog.create({ name, shardCount: 1 }), 'INVALID_ARGUMENT', /name/, /128/);
          assert.equal(await t.engine.catalog.find(name), undefined);
        }
        const longest = await t.engine.catalog.create({ name: 'n'.repeat(128), shardCount: 1 });
        assert.equal(longest.name.length, 128);
      });

      it('rejects shardCount 0 / fractional (INVALID_ARGUMENT) and above 10000 (LIMIT_EXCEEDED)', async () => {
        await rejectsWith(t.engine.catalog.create({ name: 'zero-shards', shardCount: 0 }), 'INVALID_ARGUMENT', /shardCount/, /10000/);
        await rejectsWith(t.engine.catalog.create({ name: 'neg-shards', shardCount: -1 }), 'INVALID_ARGUMENT', /shardCount/);
        await rejectsWith(t.engine.catalog.create({ name: 'half-shards', shardCount: 1.5 }), 'INVALID_ARGUMENT', /shardCount/);
        await rejectsWith(t.engine.catalog.create({ name: 'many-shards', shardCount: 10_001 }), 'LIMIT_EXCEEDED', /shardCount/, /10000/);
        for (const name of ['zero-shards', 'neg-shards', 'half-shards', 'many-shards']) {
          assert.equal(await t.engine.catalog.find(name), undefined, name);
        }
      });

      it('accepts retention 24 and 8760, rejects 23 and 8761', async () => {
        assert.equal((await t.engine.catalog.create({ name: 'ret-24', shardCount: 1, retentionHours: 24 })).retentionHours, 24);
        assert.equal((await t.engine.catalog.create({ name: 'ret-8760', shardCount: 1, retentionHours: 8760 })).retentionHours, 8760);
        await rejectsWith(t.engine.catalog.create({ name: 'ret-23', shardCount: 1, retentionHours: 23 }), 'INVALID_ARGUMENT', /retentionHours/, /24/, /8760/);
        await rejectsWith(t.engine.catalog.create({ name: 'ret-8761', shardCount: 1, retentionHours: 8761 }), 'INVALID_ARGUMENT', /retentionHours/, /8760/);
        assert.equal(await t.engine.catalog.find('ret-23'), undefined);
        assert.equal(await t.engine.catalog.find('ret-8761'), undefined);
      });

      it('rejects a viewType on a KINESIS stream', async () => {
        await rejectsWith(t.engine.catalog.create({ name: 'kin-view', shardCount: 1, viewType: 'NEW_IMAGE' }), 'INVALID_ARGUMENT', /viewType/);
        assert.equal(await t.engine.catalog.find('kin-view'), undefined);
      });

      it('rejects a duplicate name with STREAM_EXISTS, also when two creates race', async () => {
        const first = await t.engine.catalog.create({ name: 'dup', shardCount: 2 });
        await rejectsWith(t.engine.catalog.create({ name: 'dup', shardCount: 5 }), 'STREAM_EXISTS', /dup/);
        // The original is untouched.
        assert.equal((await t.engine.catalog.shards(first)).length, 2);

        const results = await Promise.allSettled([1, 2, 3].map(() => t.engine.catalog.create({ name: 'dup-race', shardCount: 1 })));
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
        for (const r of results.filter((r) => r.status === 'rejected')) {
          assert.equal(((r as PromiseRejectedResult).reason as ShardlineError).code, 'STREAM_EXISTS');
        }
        const streams = (await t.engine.catalog.list()).filter((s) => s.name === 'dup-race');
        assert.equal(streams.length, 1);
      });

      it('lists streams by name and forgets deleted ones; unknown names are STREAM_NOT_FOUND', async () => {
        await t.engine.catalog.create({ name: 'zz-list-b', shardCount: 1 });
        await t.engine.catalog.create({ name: 'zz-list-a', shardCount: 1 });
        const names = (await t.engine.catalog.list()).map((s) => s.name);
        assert.deepEqual(names, [...names].sort());
        assert.ok(names.includes('zz-list-a') && names.includes('zz-list-b'));
        await t.engine.catalog.delete('zz-list-b');
        assert.ok(!(await t.engine.catalog.list()).some((s) => s.name === 'zz-list-b'));
        await rejectsWith(t.engine.catalog.get('zz-list-b'), 'STREAM_NOT_FOUND', /zz-list-b/);
        await rejectsWith(t.engine.catalog.delete('zz-list-b'), 'STREAM_NOT_FOUND', /zz-list-b/);
        await rejectsWith(t.engine.catalog.get('never-was'), 'STREAM_NOT_FOUND', /never-was/);
      });
    });

    describe('updateRetention', () => {
      it('accepts 24..8760 and rejects values outside', async () => {
        await t.engine.catalog.create({ name: 'upd-ret', shardCount: 1 });
        assert.equal((await t.engine.catalog.updateRetention('upd-ret', 8760)).retentionHours, 8760);
        assert.equal((await t.engine.catalog.updateRetention('upd-ret', 24)).retentionHours, 24);
        assert.equal((await t.engine.catalog.updateRetention('upd-ret', 100)).retentionHours, 100);
        await rejectsWith(t.engine.catalog.updateRetention('upd-ret', 23), 'INVALID_ARGUMENT', /retentionHours/, /24/);
        await rejectsWith(t.engine.catalog.updateRetention('upd-ret', 8761), 'INVALID_ARGUMENT', /retentionHours/, /8760/);
        await rejectsWith(t.engine.catalog.updateRetention('upd-ret', 36.5), 'INVALID_ARGUMENT', /retentionHours/);
        assert.equal((await t.engine.catalog.get('upd-ret')).retentionHours, 100);
        await rejectsWith(t.engine.catalog.updateRetention('no-such-stream', 48), 'STREAM_NOT_FOUND');
      });
    });

    describe('routing', () => {
      it('splits the hash key space evenly and routes by MD5 of the partition key', async () => {
        const stream = await t.engine.catalog.create({ name: 'routing', shardCount: 4 });
        const shards = await t.engine.catalog.shards(stream);
        assert.deepEqual(shards.map((s) => s.hashKeyRange.startingHashKey), [
          '0', '85070591730234615865843651857942052864', '170141183460469231731687303715884105728', '255211775190703847597530955573826158592',
        ]);
        assert.equal(shards[3]!.hashKeyRange.endingHashKey, '340282366920938463463374607431768211455');
        const keys = Array.from({ length: 50 }, (_, i) => `key-${i}`);
        const result = await t.engine.putRecords('routing', keys.map((k) => ({ partitionKey: k, data: b64(k) })));
        assert.equal(result.failedRecordCount, 0);
        keys.forEach((key, i) => {
          const hash = BigInt(`0x${createHash('md5').update(key).digest('hex')}`);
          const shard = shardFor(shards, hash);
          assert.equal(result.records[i]!.shardId, shard!.shardId, `routing of ${key}`);
        });
        // Every shard got something with 50 keys (a constant check that routing is not trivial).
        assert.equal(new Set(result.records.map((r) => r.shardId)).size, 4);
      });

      it('hashKeyOf matches the AWS test vectors', () => {
        assert.equal(hashKeyOf('1').toString(), '261578874264819908609102035485573088411');
        assert.equal(hashKeyOf('a').toString(), '16955237001963240173058271559858726497');
        assert.equal(hashKeyOf('test').toString(), '12707736894140473154801792860916528374');
        // UTF-8, not UTF-16, bytes are hashed.
        assert.equal(hashKeyOf('é'), BigInt(`0x${createHash('md5').update(Buffer.from('é', 'utf8')).digest('hex')}`));
      });

      it('routes the AWS test vectors to the shard holding their hash key', async () => {
        const stream = await t.engine.catalog.create({ name: 'vectors', shardCount: 4 });
        const shards = await t.engine.catalog.shards(stream);
        const vectors: [string, bigint][] = [
          ['1', 261578874264819908609102035485573088411n],
          ['a', 16955237001963240173058271559858726497n],
          ['test', 12707736894140473154801792860916528374n],
        ];
        const result = await t.engine.putRecords('vectors', vectors.map(([k]) => ({ partitionKey: k, data: b64(k) })));
        vectors.forEach(([key, hash], i) => assert.equal(result.records[i]!.shardId, shardFor(shards, hash)!.shardId, key));
        assert.equal(result.records[0]!.shardId, 'shardId-000000000003');
        assert.equal(result.records[1]!.shardId, 'shardId-000000000000');
      });

      it('routes an explicitHashKey to the shard holding it, exactly at range boundaries', async () => {
        const stream = await t.engine.catalog.create({ name: 'explicit', shardCount: 3 });
        const shards = await t.engine.catalog.shards(stream);
        const cases: { key: string; shardId: string }[] = [];
        for (const s of shards) {
          cases.push({ key: s.hashKeyRange.startingHashKey, shardId: s.shardId });
          cases.push({ key: s.hashKeyRange.endingHashKey, shardId: s.shardId });
        }
        cases.push({ key: '0', shardId: shards[0]!.shardId });
        cases.push({ key: MAX_HASH_KEY.toString(), shardId: shards[2]!.shardId });
        // The partition key alone would route elsewhere: "1" hashes into the last shard.
        const result = await t.engine.putRecords('explicit', cases.map((c) => ({ partitionKey: '1', data: b64(c.key), explicitHashKey: c.key })));
        cases.forEach((c, i) => assert.equal(result.records[i]!.shardId, c.shardId, `explicitHashKey ${c.key}`));
        // Stored where reported.
        for (const s of shards) {
          const stored = (await readAll('explicit', s.shardId)).map((r) => Buffer.from(r.data, 'base64').toString());
          assert.deepEqual(stored, cases.filter((c) => c.shardId === s.shardId).map((c) => c.key));
        }
        // A null explicitHashKey means "use the MD5".
        const md5 = await t.engine.putRecords('explicit', [{ partitionKey: 'a', data: '', explicitHashKey: null }]);
        assert.equal(md5.records[0]!.shardId, shards[0]!.shardId);
      });

      it('rejects an invalid explicitHashKey as a whole request', async () => {
        const stream = await t.engine.catalog.create({ name: 'explicit-bad', shardCount: 2 });
        const bad = ['-1', (1n << 128n).toString(), '0x10', '1e5', '01', ' 1', '1.0', 'abc', '', '9'.repeat(40)];
        for (const key of bad) {
          await rejectsWith(
            t.engine.putRecords('explicit-bad', [
              { partitionKey: 'ok', data: b64('fine') },
              { partitionKey: 'k', data: b64('x'), explicitHashKey: key },
            ]),
            'INVALID_ARGUMENT', /records\[1\]\.explicitHashKey/, /2\^128-1/,
          );
        }
        assert.equal(await countRecords(stream), 0);
      });
    });

    describe('sequence numbers', () => {
      it('rise strictly within a shard in input order, also inside one call', async () => {
        const stream = await t.engine.catalog.create({ name: 'seq-order', shardCount: 2 });
        const shards = await t.engine.catalog.shards(stream);
        // 20 records for the same key (same shard) interleaved with 20 for other keys.
        const input = Array.from({ length: 40 }, (_, i) => ({ partitionKey: i % 2 === 0 ? 'same' : `other-${i}`, data: b64(`r${i}`) }));
        const result = await t.engine.putRecords('seq-order', input);
        for (const r of result.records) assert.match(r.sequenceNumber!, /^(0|[1-9]\d{0,128})$/);
        const seqs = result.records.map((r) => BigInt(r.sequenceNumber!));
        assert.equal(new Set(seqs).size, seqs.length, 'unique');
        for (const s of shards) {
          const inShard = result.records.map((r, i) => ({ r, i })).filter(({ r }) => r.shardId === s.shardId);
          for (let j = 1; j < inShard.length; j++) {
            assert.ok(BigInt(inShard[j]!.r.sequenceNumber!) > BigInt(inShard[j - 1]!.r.sequenceNumber!), `shard ${s.shardId} position ${j}`);
          }
          // Read back in the same order.
          const stored = await readAll('seq-order', s.shardId);
          assert.deepEqual(stored.map((r) => r.sequenceNumber), inShard.map(({ r }) => r.sequenceNumber));
          assert.deepEqual(stored.map((r) => Buffer.from(r.data, 'base64').toString()), inShard.map(({ i }) => `r${i}`));
          // Above the shard's starting sequence number.
          for (const r of stored) assert.ok(BigInt(r.sequenceNumber) > BigInt(s.startingSequenceNumber));
        }
        const same = result.records.filter((_, i) => i % 2 === 0).map((r) => BigInt(r.sequenceNumber!));
        assert.deepEqual(same, [...same].sort((a, b) => (a < b ? -1 : 1)));
      });

      it('compare across shards in arrival order: a later call has larger numbers', async () => {
        await t.engine.catalog.create({ name: 'seq-across', shardCount: 4 });
        let previousMax = -1n;
        for (let call = 0; call < 5; call++) {
          const result = await t.engine.putRecords('seq-across', Array.from({ length: 25 }, (_, i) => ({ partitionKey: `c${call}-${i}`, data: '' })));
          assert.ok(new Set(result.records.map((r) => r.shardId)).size > 1, 'the call spans shards');
          const seqs = result.records.map((r) => BigInt(r.sequenceNumber!));
          const min = seqs.reduce((a, b) => (a < b ? a : b));
          assert.ok(min > previousMax, `call ${call}: ${min} > ${previousMax}`);
          previousMax = seqs.reduce((a, b) => (a > b ? a : b));
        }
      });

      it('compare the same as strings and as numbers (fixed width)', async () => {
        await t.engine.catalog.create({ name: 'seq-width', shardCount: 1 });
        const result = await t.engine.putRecords('seq-width', Array.from({ length: 10 }, (_, i) => ({ partitionKey: `w${i}`, data: '' })));
        const seqs = result.records.map((r) => r.sequenceNumber!);
        assert.equal(new Set(seqs.map((s) => s.length)).size, 1);
        const asStrings = [...seqs].sort();
        const asNumbers = [...seqs].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
        assert.deepEqual(asStrings, asNumbers);
      });
    });

    describe('putRecords limits', () => {
      it('rejects 0 records (INVALID_ARGUMENT) and 501 (LIMIT_EXCEEDED); 500 is accepted', async () => {
        const stream = await t.engine.catalog.create({ name: 'lim-count', shardCount: 2 });
        await rejectsWith(t.engine.putRecords('lim-count', []), 'INVALID_ARGUMENT', /records/, /500/);
        const many = Array.from({ length: 501 }, (_, i) => ({ partitionKey: `p${i}`, data: '' }));
        await rejectsWith(t.engine.putRecords('lim-count', many), 'LIMIT_EXCEEDED', /records/, /500/);
        assert.equal(await countRecords(stream), 0);
        const result = await t.engine.putRecords('lim-count', many.slice(0, 500));
        assert.equal(result.failedRecordCount, 0);
        assert.equal(result.records.length, 500);
        assert.equal(await countRecords(stream), 500);
      });

      it('rejects partition keys of 0 and 257 characters; 256 multi-byte characters are accepted', async () => {
        const stream = await t.engine.catalog.create({ name: 'lim-key', shardCount: 1 });
        await rejectsWith(t.engine.putRecords('lim-key', [{ partitionKey: '', data: b64('x') }]), 'INVALID_ARGUMENT', /records\[0\]\.partitionKey/, /256/);
        await rejectsWith(
          t.engine.putRecords('lim-key', [{ partitionKey: 'ok', data: '' }, { partitionKey: 'k'.repeat(257), data: b64('x') }]),
          'INVALID_ARGUMENT', /records\[1\]\.partitionKey/, /256/, /257/,
        );
        await rejectsWith(t.engine.putRecords('lim-key', [{ partitionKey: 'é'.repeat(257), data: '' }]), 'INVALID_ARGUMENT', /partitionKey/, /256/);
        assert.equal(await countRecords(stream), 0);
        const accepted = ['k'.repeat(256), 'é'.repeat(256), '漢'.repeat(256), 'x'];
        const result = await t.engine.putRecords('lim-key', accepted.map((k) => ({ partitionKey: k, data: b64(k.slice(0, 3)) })));
        assert.equal(result.failedRecordCount, 0);
        const stored = await readAll('lim-key');
        assert.deepEqual(stored.map((r) => r.partitionKey), accepted);
        // The size counts UTF-8 bytes of the key.
        assert.equal(stored[1]!.sizeBytes, 512 + 2 * 3);
        assert.equal(stored[2]!.sizeBytes, 768 + 3 * 3);
      });

      it('accepts data only as strict base64 (standard alphabet, padded), canonical or not', async () => {
        const stream = await t.engine.catalog.create({ name: 'lim-base64', shardCount: 1 });
        const long = bytes64(3000);
        const bad = ['QQ', 'QQ=', 'A-B_', 'YWJj\n', 'YW Jj', 'Q===', 'YQ==YQ==', `${long.slice(0, 76)}\n${long.slice(76)}`,
          `${long.slice(0, -4)}A-B_`, `${long.slice(0, -1)}\u0100`, `${long.slice(0, -1)}\u00e9`];
        for (const data of bad) {
          await rejectsWith(t.engine.putRecords('lim-base64', [{ partitionKey: 'k', data }]), 'INVALID_ARGUMENT', /records\[0\]\.data/, /base64/);
        }
        assert.equal(await countRecords(stream), 0);
        // Non-zero trailing bits ("QR==" decodes as "QQ==") are strict base64 all the same.
        const good = ['', 'QR==', 'YWI=', long, `${long.slice(0, -4)}QR==`];
        const result = await t.engine.putRecords('lim-base64', good.map((data) => ({ partitionKey: 'k', data })));
        assert.equal(result.failedRecordCount, 0);
        const stored = await readAll('lim-base64');
        assert.deepEqual(stored.map((r) => r.data), good.map((d) => Buffer.from(d, 'base64').toString('base64')));
      });

      it('limits data plus partition key to 1 MiB (LIMIT_EXCEEDED above, exactly 1 MiB accepted)', async () => {
        const stream = await t.engine.catalog.create({ name: 'lim-record', shardCount: 1 });
        // 1 MiB of data alone, plus a 1-byte key: one byte over.
        await rejectsWith(t.engine.putRecords('lim-record', [{ partitionKey: 'k', data: bytes64(MIB) }]), 'LIMIT_EXCEEDED', /records\[0\]/, /1 MiB|1048576/, /1048577/);
        // The key's UTF-8 bytes count: 1 MiB − 1 byte of data + a 2-byte key.
        await rejectsWith(t.engine.putRecords('lim-record', [{ partitionKey: 'é', data: bytes64(MIB - 1) }]), 'LIMIT_EXCEEDED', /1048576/);
        assert.equal(await countRecords(stream), 0);
        const result = await t.engine.putRecords('lim-record', [{ partitionKey: 'kk', data: bytes64(MIB - 2) }]);
        assert.equal(result.failedRecordCount, 0);
        const [stored] = await readAll('lim-record');
        assert.equal(Buffer.from(stored!.data, 'base64').length, MIB - 2);
        assert.equal(stored!.data, bytes64(MIB - 2));
        assert.equal(stored!.sizeBytes, MIB);
      });

      it('limits a call to 5 MiB in total (LIMIT_EXCEEDED above, exactly 5 MiB accepted)', async () => {
        const stream = await t.engine.catalog.create({ name: 'lim-total', shardCount: 2 });
        const record = (i: number) => ({ partitionKey: `k${i}`, data: bytes64(MIB - 2) }); // exactly 1 MiB each
        await rejectsWith(
          t.engine.putRecords('lim-total', [...[0, 1, 2, 3, 4].map(record), { partitionKey: 'z', data: '' }]),
          'LIMIT_EXCEEDED', /5 MiB|5242880/, /5242881/,
        );
        assert.equal(await countRecords(stream), 0);
        const result = await t.engine.putRecords('lim-total', [0, 1, 2, 3, 4].map(record));
        assert.equal(result.failedRecordCount, 0);
        assert.equal(await countRecords(stream), 5);
      });

      it('rejects data that is not base64, as a whole request', async () => {
        const stream = await t.engine.catalog.create({ name: 'lim-b64', shardCount: 1 });
        for (const data of ['not base64!', 'abcde', '@@@@', 'YQ=', 'Y===', 'YW Jj']) {
          await rejectsWith(
            t.engine.putRecords('lim-b64', [{ partitionKey: 'a', data: b64('fine') }, { partitionKey: 'b', data }]),
            'INVALID_ARGUMENT', /records\[1\]\.data/, /base64/,
          );
        }
        assert.equal(await countRecords(stream), 0);
      });

      it('accepts empty data and round-trips it and binary data', async () => {
        await t.engine.catalog.create({ name: 'empty-data', shardCount: 1 });
        const binary = Buffer.from([0, 255, 10, 13, 0, 128]).toString('base64');
        const long = bytes64(1000); // long enough that Postgres would wrap its base64 output
        const result = await t.engine.putRecords('empty-data', [
          { partitionKey: 'e', data: '' },
          { partitionKey: 'b', data: binary },
          { partitionKey: 'l', data: long },
        ]);
        assert.equal(result.failedRecordCount, 0);
        const stored = await readAll('empty-data');
        assert.deepEqual(stored.map((r) => r.data), ['', binary, long]);
        assert.deepEqual(stored.map((r) => r.sizeBytes), [1, 7, 1001]);
        assert.deepEqual(stored.map((r) => r.sequenceNumber), result.records.map((r) => r.sequenceNumber));
        assert.deepEqual(stored.map((r) => r.shardId), result.records.map((r) => r.shardId));
        for (const r of stored) assert.equal(r.eventID, `${r.shardId}:${r.sequenceNumber}`);
      });

      it('rejects writes to an unknown stream with STREAM_NOT_FOUND', async () => {
        await rejectsWith(t.engine.putRecords('no-such-stream', [{ partitionKey: 'a', data: '' }]), 'STREAM_NOT_FOUND', /no-such-stream/);
        await rejectsWith(t.engine.reader.page('no-such-stream', {}), 'STREAM_NOT_FOUND', /no-such-stream/);
      });

      it('rejects putRecords to a DYNAMODB stream and writes nothing', async () => {
        const stream = await t.engine.catalog.create({ name: 'ddb-not-kinesis', kind: 'DYNAMODB', shardCount: 1 });
        await rejectsWith(t.engine.putRecords('ddb-not-kinesis', [{ partitionKey: 'a', data: '' }]), 'INVALID_ARGUMENT', /KINESIS/);
        assert.equal(await countRecords(stream), 0);
      });

      it('a rejected request writes nothing, whichever record breaks the rule', async () => {
        const stream = await t.engine.catalog.create({ name: 'atomic', shardCount: 3 });
        await t.engine.putRecords('atomic', [{ partitionKey: 'before', data: b64('kept') }]);
        const good = Array.from({ length: 30 }, (_, i) => ({ partitionKey: `g${i}`, data: b64(`g${i}`) }));
        const breakers = [
          { partitionKey: '', data: '' },
          { partitionKey: 'x', data: '***' },
          { partitionKey: 'x', data: '', explicitHashKey: '-5' },
          { partitionKey: 'x', data: bytes64(MIB) },
        ];
        for (const breaker of breakers) {
          for (const at of [0, 15, 30]) {
            const records = [...good.slice(0, at), breaker, ...good.slice(at)];
            await assert.rejects(t.engine.putRecords('atomic', records), ShardlineError);
          }
        }
        assert.equal(await countRecords(stream), 1);
        assert.deepEqual((await readAll('atomic')).map((r) => r.partitionKey), ['before']);
      });
    });
  });
}
