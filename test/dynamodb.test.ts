import assert from 'node:assert/strict';
import type { ErrorCode } from '../engine/errors.ts';
import { after, before, describe, it } from 'node:test';
import { attributeValuesEqual, canonicalKey, itemsEqual, normalizeNumber, storedNumber } from '../engine/dynamodb/attributeValues.ts';
import type { StoredRecord } from '../engine/records/readRecords.ts';
import { evenRanges, hashKeyOf } from '../engine/streams/hashKeys.ts';
import type { ViewType } from '../engine/streams/model.ts';
import { type TestEngine, b64, backends, openTestEngine, rejectsWith as rejectsWithCode } from './harness.ts';

const S = (value: string) => ({ S: value });
const N = (value: string) => ({ N: value });

/** Asserts a ShardlineError with `code` whose message names `field`. */
/** The engine rejects with `code` and a message naming `field`. */
const rejectsWith = (promise: Promise<unknown>, code: string, field: string) =>
  rejectsWithCode(promise, code as ErrorCode, new RegExp(field.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));

describe('attribute values', () => {
  it('normalises numbers so that equal numbers are one key', () => {
    assert.equal(normalizeNumber('1.0'), normalizeNumber('1'));
    assert.equal(normalizeNumber('100'), normalizeNumber('1e2'));
    assert.equal(normalizeNumber('-0.50'), normalizeNumber('-.5'));
    assert.equal(normalizeNumber('0.000'), '0');
    assert.notEqual(normalizeNumber('10'), normalizeNumber('1'));
    for (const bad of ['', '.', 'abc', '1e', '0x10', ' 1', '1'.repeat(39), '1e126']) assert.equal(normalizeNumber(bad), undefined, bad);
  });

  it('renders numbers as DynamoDB stores them: plain, with leading and trailing zeros trimmed', () => {
    const cases: [string, string][] = [
      ['01.50', '1.5'], ['+7', '7'], ['-0.0', '0'], ['100', '100'], ['1e2', '100'], ['1.5E+3', '1500'],
      ['-.25', '-0.25'], ['0.000120', '0.00012'], ['12.345e-5', '0.00012345'], ['1e-3', '0.001'], ['123.0', '123'],
    ];
    for (const [given, stored] of cases) assert.equal(storedNumber(given), stored, given);
    // Every stored form is the same number as what was given.
    for (const [given, stored] of cases) assert.equal(normalizeNumber(stored), normalizeNumber(given), given);
  });

  it('builds one canonical key whatever the attribute order and number spelling', () => {
    const a = canonicalKey({ line: N('1.0'), cartId: S('c-1') }, 'keys');
    const b = canonicalKey({ cartId: S('c-1'), line: N('1') }, 'keys');
    assert.equal(a.itemKey, b.itemKey);
    assert.notEqual(a.itemKey, canonicalKey({ cartId: S('c-1'), line: S('1') }, 'keys').itemKey);
  });

  it('compares items deeply, sets without order', () => {
    assert.ok(itemsEqual(
      { id: S('a'), tags: { SS: ['x', 'y'] }, nums: { NS: ['1', '2.50'] }, m: { M: { n: N('3') } } },
      { m: { M: { n: N('3.0') } }, nums: { NS: ['2.5', '1.0'] }, tags: { SS: ['y', 'x'] }, id: S('a') },
    ));
    assert.ok(!itemsEqual({ l: { L: [N('1'), N('2')] } }, { l: { L: [N('2'), N('1')] } }));
    assert.ok(!itemsEqual({ a: S('1') }, { a: N('1') }));
    assert.ok(!itemsEqual({ a: S('1') }, { a: S('1'), b: S('2') }));
    assert.ok(attributeValuesEqual({ B: b64('hi') }, { B: b64('hi') }));
  });
});

for (const backend of backends) {
  describe(`dynamodb writeItems (${backend.name})`, () => {
    let t: TestEngine;
    before(async () => { t = await openTestEngine(backend); });
    after(async () => { await t.close(); });

    const create = (name: string, viewType: ViewType = 'NEW_AND_OLD_IMAGES', shardCount = 1) =>
      t.engine.catalog.create({ name, kind: 'DYNAMODB', shardCount, viewType });
    const readAll = async (name: string): Promise<StoredRecord[]> =>
      (await t.engine.reader.page(name, { first: 1000 })).records.map((r) => r.record);

    it('derives INSERT, MODIFY and REMOVE from the stored item', async () => {
      await create('carts');
      const keys = { cartId: S('c-1'), line: N('1') };
      const put = (newImage: unknown) => t.engine.writeItems('carts', [{ keys, newImage }]);
      const inserted = await put({ sku: S('tea'), qty: N('2') });
      await put({ sku: S('tea'), qty: N('3') });
      await t.engine.writeItems('carts', [{ keys }]);
      await put({ sku: S('coffee'), qty: N('1') });
      assert.equal(inserted.failedRecordCount, 0);
      assert.match(inserted.records[0]!.sequenceNumber!, /^\d{21}$/);

      const records = await readAll('carts');
      assert.deepEqual(records.map((r) => r.eventName), ['INSERT', 'MODIFY', 'REMOVE', 'INSERT']);
      assert.equal(records[0]!.sequenceNumber, inserted.records[0]!.sequenceNumber);
      assert.equal(records[0]!.shardId, inserted.records[0]!.shardId);
      // Images are whole items: the key attributes are added to newImage.
      assert.deepEqual(records[0]!.newImage, { ...keys, sku: S('tea'), qty: N('2') });
      assert.equal(records[0]!.oldImage, null);
      assert.deepEqual(records[1]!.oldImage, { ...keys, sku: S('tea'), qty: N('2') });
      assert.deepEqual(records[1]!.newImage, { ...keys, sku: S('tea'), qty: N('3') });
      assert.equal(records[2]!.newImage, null);
      assert.deepEqual(records[2]!.oldImage, { ...keys, sku: S('tea'), qty: N('3') });
      for (const r of records) assert.deepEqual(r.keys, keys);
      const ids = records.map((r) => r.eventID);
      assert.ok(ids.every((id) => /^[0-9a-f]{32}$/.test(id)), ids.join());
      assert.equal(new Set(ids).size, ids.length);

      const data = JSON.parse(records[1]!.data) as Record<string, unknown>;
      assert.deepEqual(Object.keys(data), ['ApproximateCreationDateTime', 'Keys', 'NewImage', 'OldImage', 'SequenceNumber', 'SizeBytes', 'StreamViewType']);
      assert.equal(data.SequenceNumber, records[1]!.sequenceNumber);
      assert.equal(data.SizeBytes, records[1]!.sizeBytes);
      assert.ok(records[1]!.sizeBytes >= 1);
      assert.equal(data.StreamViewType, 'NEW_AND_OLD_IMAGES');
      assert.equal(data.ApproximateCreationDateTime, Math.floor(records[1]!.approximateArrivalTimestamp.getTime() / 1000));
    });

    it('writes no record for a change that alters nothing', async () => {
      await create('noop');
      const keys = { id: S('a') };
      const item = { id: S('a'), qty: N('2'), tags: { SS: ['x', 'y'] } };
      let notified = 0;
      const off = t.engine.events.on('records', (e) => { if (e.streamName === 'noop') notified++; });
      const first = await t.engine.writeItems('noop', [{ keys, newImage: item }, { keys, newImage: item }]);
      assert.notEqual(first.records[0]!.sequenceNumber, null);
      assert.deepEqual(first.records[1], { shardId: null, sequenceNumber: null, errorCode: null, errorMessage: null });
      assert.equal(notified, 1);
      // Same item spelled differently: attribute order, set order, "2.0".
      const same = await t.engine.writeItems('noop', [
        { keys, newImage: { tags: { SS: ['y', 'x'] }, qty: N('2.0') } },
        { keys: { id: S('missing') }, newImage: null },
        { keys: { id: S('missing') } },
      ]);
      assert.ok(same.records.every((r) => r.shardId === null && r.sequenceNumber === null && r.errorCode === null));
      assert.equal(same.failedRecordCount, 0);
      assert.equal(notified, 1);
      off();
      assert.equal((await readAll('noop')).length, 1);
    });

    const VIEWS: { view: ViewType; newOn: string[]; oldOn: string[] }[] = [
      { view: 'KEYS_ONLY', newOn: [], oldOn: [] },
      { view: 'NEW_IMAGE', newOn: ['INSERT', 'MODIFY'], oldOn: [] },
      { view: 'OLD_IMAGE', newOn: [], oldOn: ['MODIFY', 'REMOVE'] },
      { view: 'NEW_AND_OLD_IMAGES', newOn: ['INSERT', 'MODIFY'], oldOn: ['MODIFY', 'REMOVE'] },
    ];
    for (const { view, newOn, oldOn } of VIEWS) {
      it(`keeps only the images a ${view} stream carries`, async () => {
        const name = `view-${view.toLowerCase().replaceAll('_', '-')}`;
        await create(name, view);
        const keys = { pk: S('p'), sk: N('7') };
        await t.engine.writeItems(name, [
          { keys, newImage: { v: N('1') } },
          { keys, newImage: { v: N('2') } },
          { keys, newImage: null },
        ]);
        const records = await readAll(name);
        assert.deepEqual(records.map((r) => r.eventName), ['INSERT', 'MODIFY', 'REMOVE']);
        for (const r of records) {
          const data = JSON.parse(r.data) as Record<string, unknown>;
          assert.deepEqual(r.keys, keys);
          assert.deepEqual(data.Keys, keys);
          assert.equal(data.StreamViewType, view);
          assert.equal(data.SequenceNumber, r.sequenceNumber);
          assert.equal(data.SizeBytes, r.sizeBytes);
          assert.equal(typeof data.ApproximateCreationDateTime, 'number');
          // Absent, never null (aws-semantics §7 item 16).
          assert.equal('NewImage' in data, newOn.includes(r.eventName!), `${r.eventName} NewImage`);
          assert.equal('OldImage' in data, oldOn.includes(r.eventName!), `${r.eventName} OldImage`);
          assert.equal(r.newImage !== null, newOn.includes(r.eventName!));
          assert.equal(r.oldImage !== null, oldOn.includes(r.eventName!));
          if (r.newImage !== null) assert.deepEqual(data.NewImage, r.newImage);
          if (r.oldImage !== null) assert.deepEqual(data.OldImage, r.oldImage);
        }
        if (newOn.length > 0) assert.deepEqual(records[1]!.newImage, { ...keys, v: N('2') });
        if (oldOn.length > 0) assert.deepEqual(records[2]!.oldImage, { ...keys, v: N('2') });
      });
    }

    it('routes all changes of an item to its partition\'s shard, in order', async () => {
      const stream = await create('routing', 'NEW_IMAGE', 4);
      const shards = await t.engine.catalog.shards(stream, 'OPEN');
      const ranges = evenRanges(4);
      const ids = Array.from({ length: 20 }, (_, i) => `item-${i}`);
      for (let round = 1; round <= 3; round++) {
        await t.engine.writeItems('routing', ids.map((id) => ({ keys: { id: S(id) }, newImage: { round: N(String(round)) } })));
      }
      // Another spelling of a number key is the same item.
      await t.engine.writeItems('routing', [{ keys: { n: N('5') }, newImage: {} }, { keys: { n: N('5.00') }, newImage: { x: S('y') } }]);
      const records = await readAll('routing');
      assert.equal(records.length, 62);
      const byItem = new Map<string, StoredRecord[]>();
      for (const r of records) byItem.set(r.partitionKey, [...(byItem.get(r.partitionKey) ?? []), r]);
      assert.equal(byItem.size, 21);
      const usedShards = new Set<string>();
      for (const [itemKey, list] of byItem) {
        const hash = hashKeyOf(itemKey);
        const partition = ranges.findIndex((r) => hash >= r.start && hash <= r.end);
        const shard = shards.find((s) => s.partition === partition)!;
        assert.ok(list.every((r) => r.shardId === shard.shardId), `${itemKey} on ${shard.shardId}`);
        usedShards.add(shard.shardId);
        if (list.length === 3) {
          assert.deepEqual(list.map((r) => r.eventName), ['INSERT', 'MODIFY', 'MODIFY']);
          assert.deepEqual(list.map((r) => (r.newImage as { round: { N: string } }).round.N), ['1', '2', '3']);
        } else {
          assert.deepEqual(list.map((r) => r.eventName), ['INSERT', 'MODIFY']);
        }
      }
      assert.ok(usedShards.size > 1, 'twenty items spread over more than one shard');
    });

    it('counts SizeBytes as DynamoDB does: the item sizes of the images carried', async () => {
      // The example of AWS's Lambda guide: 26, 59 and 38 bytes.
      await create('sized');
      const keys = { Id: N('101') };
      await t.engine.writeItems('sized', [{ keys, newImage: { Message: S('New item!') } }]);
      await t.engine.writeItems('sized', [{ keys, newImage: { Message: S('This item has changed') } }]);
      await t.engine.writeItems('sized', [{ keys }]);
      const records = await readAll('sized');
      assert.deepEqual(records.map((r) => r.sizeBytes), [26, 59, 38]);
      assert.deepEqual(records.map((r) => (JSON.parse(r.data) as { SizeBytes: number }).SizeBytes), [26, 59, 38]);
      // An explicit oldImage without the keys gets them, as every image holds the whole item.
      await t.engine.writeItems('sized', [{ keys: { Id: N('102') }, oldImage: { Message: S('x') }, newImage: { Message: S('y') } }]);
      assert.deepEqual((await readAll('sized')).at(-1)!.oldImage, { Id: N('102'), Message: S('x') });
    });

    it('stores numbers as DynamoDB does, in keys, images, sets and nested values', async () => {
      await create('numbers');
      await t.engine.writeItems('numbers', [{
        keys: { id: N('007') },
        newImage: { price: N('01.50'), big: N('1e3'), ns: { NS: ['2.0', '+3'] }, m: { M: { l: { L: [N('-0.10')] } } } },
      }]);
      const [record] = await readAll('numbers');
      assert.deepEqual(record!.keys, { id: N('7') });
      assert.deepEqual(record!.newImage, { id: N('7'), price: N('1.5'), big: N('1000'), ns: { NS: ['2', '3'] }, m: { M: { l: { L: [N('-0.1')] } } } });
      // The same item spelt differently changes nothing.
      const again = await t.engine.writeItems('numbers', [{ keys: { id: N('7.0') }, newImage: { price: N('1.5'), big: N('1000'), ns: { NS: ['3', '2'] }, m: { M: { l: { L: [N('-.1')] } } } } }]);
      assert.equal(again.records[0]!.sequenceNumber, null);
    });

    it('limits a partition key to 2,048 bytes and a sort key to 1,024', async () => {
      await create('keysizes');
      const w = (keys: unknown) => t.engine.writeItems('keysizes', [{ keys, newImage: {} }] as never);
      await w({ pk: S('p'.repeat(2048)), sk: S('s'.repeat(1024)) });
      await rejectsWith(w({ pk: S('p'.repeat(2049)) }), 'INVALID_ARGUMENT', 'changes[0].keys.pk');
      await rejectsWith(w({ pk: S('p'), sk: S('s'.repeat(1025)) }), 'INVALID_ARGUMENT', 'changes[0].keys.sk is the sort key and must be at most 1024 bytes');
      // The first attribute given is the partition key, whatever its name sorts as.
      await w({ zz: S('p'.repeat(2048)), aa: S('s') });
      await rejectsWith(w({ zz: S('p'), aa: S('s'.repeat(1025)) }), 'INVALID_ARGUMENT', 'changes[0].keys.aa is the sort key');
      assert.equal((await readAll('keysizes')).length, 2);
    });

    it('uses an explicit oldImage as is', async () => {
      await create('explicit');
      const keys = { id: S('a') };
      await t.engine.writeItems('explicit', [{ keys, newImage: { qty: N('2') } }]);
      const result = await t.engine.writeItems('explicit', [
        { keys, oldImage: { id: S('a'), qty: N('7') }, newImage: { qty: N('8') } },
        // Not stored, but an oldImage says it existed: MODIFY, not INSERT.
        { keys: { id: S('b') }, oldImage: { id: S('b'), qty: N('1') }, newImage: { qty: N('2') } },
        // Equal images: nothing changes.
        { keys: { id: S('c') }, oldImage: { id: S('c'), qty: N('1') }, newImage: { qty: N('1') } },
        { keys: { id: S('d') }, oldImage: { id: S('d'), qty: N('4') } },
      ]);
      assert.equal(result.records[2]!.sequenceNumber, null);
      const records = await readAll('explicit');
      assert.deepEqual(records.map((r) => r.eventName), ['INSERT', 'MODIFY', 'MODIFY', 'REMOVE']);
      assert.deepEqual(records[1]!.oldImage, { id: S('a'), qty: N('7') });
      assert.deepEqual(records[2]!.oldImage, { id: S('b'), qty: N('1') });
      assert.deepEqual(records[3]!.oldImage, { id: S('d'), qty: N('4') });
      // The stored item followed newImage: the next change sees qty 8 as old image.
      await t.engine.writeItems('explicit', [{ keys, newImage: { qty: N('9') } }]);
      assert.deepEqual((await readAll('explicit')).at(-1)!.oldImage, { id: S('a'), qty: N('8') });
    });

    it('rejects invalid changes as a whole, naming the field', async () => {
      await create('invalid');
      await t.engine.catalog.create({ name: 'a-kinesis', shardCount: 1 });
      const ok = { keys: { id: S('ok') }, newImage: { v: N('1') } };
      const w = (changes: unknown[]) => t.engine.writeItems('invalid', changes as never);
      await rejectsWith(w([]), 'INVALID_ARGUMENT', 'changes');
      await rejectsWith(w(Array.from({ length: 501 }, () => ok)), 'LIMIT_EXCEEDED', '500');
      await rejectsWith(w([ok, { keys: {} }]), 'INVALID_ARGUMENT', 'changes[1].keys');
      await rejectsWith(w([ok, { newImage: { v: N('1') } }]), 'INVALID_ARGUMENT', 'changes[1].keys');
      await rejectsWith(w([{ keys: { id: { BOOL: true } } }]), 'INVALID_ARGUMENT', 'changes[0].keys.id');
      await rejectsWith(w([{ keys: { id: S('') } }]), 'INVALID_ARGUMENT', 'changes[0].keys.id');
      await rejectsWith(w([ok, ok, { keys: { id: S('x') }, newImage: { qty: N('abc') } }]), 'INVALID_ARGUMENT', 'changes[2].newImage.qty');
      await rejectsWith(w([{ keys: { id: S('x') }, newImage: { qty: { S: 'a', N: '1' } } }]), 'INVALID_ARGUMENT', 'changes[0].newImage.qty');
      await rejectsWith(w([{ keys: { id: S('x') }, newImage: { qty: { X: '1' } } }]), 'INVALID_ARGUMENT', 'changes[0].newImage.qty');
      await rejectsWith(w([{ keys: { id: S('x') }, newImage: { tags: { SS: [] } } }]), 'INVALID_ARGUMENT', 'changes[0].newImage.tags.SS');
      await rejectsWith(w([{ keys: { id: S('x') }, newImage: { tags: { SS: ['a', 'a'] } } }]), 'INVALID_ARGUMENT', 'changes[0].newImage.tags.SS[1]');
      await rejectsWith(w([{ keys: { id: S('x') }, newImage: { ns: { NS: ['1', '1.0'] } } }]), 'INVALID_ARGUMENT', 'changes[0].newImage.ns.NS[1]');
      await rejectsWith(w([{ keys: { id: S('x') }, newImage: { n: { NULL: false } } }]), 'INVALID_ARGUMENT', 'changes[0].newImage.n.NULL');
      await rejectsWith(w([{ keys: { id: S('x') }, newImage: { b: { B: 'not base64!' } } }]), 'INVALID_ARGUMENT', 'changes[0].newImage.b.B');
      await rejectsWith(w([{ keys: { id: S('x') }, newImage: { m: { M: { deep: { L: [N('1'), { N: 1 }] } } } } }]), 'INVALID_ARGUMENT', 'changes[0].newImage.m.M.deep.L[1]');
      await rejectsWith(w([{ keys: { id: S('x') }, newImage: { id: S('y') } }]), 'INVALID_ARGUMENT', 'changes[0].newImage.id');
      await rejectsWith(w([{ keys: { id: S('x') }, oldImage: { id: N('1') }, newImage: {} }]), 'INVALID_ARGUMENT', 'changes[0].oldImage.id');
      const big = { keys: { id: S('big') }, newImage: { blob: S('x'.repeat(400 * 1024)) } };
      await rejectsWith(w([ok, big]), 'LIMIT_EXCEEDED', 'changes[1]');
      await rejectsWith(t.engine.writeItems('a-kinesis', [ok]), 'INVALID_ARGUMENT', 'KINESIS');
      await rejectsWith(t.engine.writeItems('nope', [ok]), 'STREAM_NOT_FOUND', 'nope');
      // Nothing was written, not even the valid first changes: the item is still new.
      assert.equal((await readAll('invalid')).length, 0);
      await w([ok]);
      assert.deepEqual((await readAll('invalid')).map((r) => r.eventName), ['INSERT']);
    });

    it('serialises concurrent writers of one item', async () => {
      await create('concurrent', 'NEW_AND_OLD_IMAGES', 2);
      const keys = { id: S('hot') };
      await Promise.all(Array.from({ length: 10 }, (_, i) =>
        t.engine.writeItems('concurrent', [{ keys, newImage: { v: N(String(i)) } }])));
      const records = await readAll('concurrent');
      assert.deepEqual(records.map((r) => r.eventName), ['INSERT', ...Array(9).fill('MODIFY')]);
      for (let i = 1; i < records.length; i++) assert.deepEqual(records[i]!.oldImage, records[i - 1]!.newImage);
    });

    it('sends an item\'s changes to the child shard after a rollover', async () => {
      const stream = await create('rolling', 'NEW_AND_OLD_IMAGES', 2);
      const keys = { id: S('a') };
      const first = await t.engine.writeItems('rolling', [{ keys, newImage: { v: N('1') } }]);
      const parent = (await t.engine.catalog.shards(stream)).find((s) => s.shardId === first.records[0]!.shardId)!;
      await t.engine.rolloverShards('rolling');
      const second = await t.engine.writeItems('rolling', [{ keys, newImage: { v: N('2') } }]);
      const shards = await t.engine.catalog.shards(stream);
      const child = shards.find((s) => s.shardId === second.records[0]!.shardId)!;
      assert.notEqual(child.shardId, parent.shardId);
      assert.equal(child.parentShardId, parent.shardId);
      assert.equal(child.partition, parent.partition);
      assert.equal(child.closedAt, null);
      assert.notEqual(shards.find((s) => s.shardId === parent.shardId)!.closedAt, null);
      const records = await readAll('rolling');
      assert.deepEqual(records.map((r) => [r.eventName, r.shardId]), [['INSERT', parent.shardId], ['MODIFY', child.shardId]]);
      assert.deepEqual(records[1]!.oldImage, { id: S('a'), v: N('1') });
    });
  });
}
