/**
 * ShortMemo: reads shared within their time to live, never across a change the caller knows
 * of, and a failed read forgotten without forgetting a newer one.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ShortMemo } from '../engine/shortMemo.ts';

describe('ShortMemo', () => {
  it('shares a read within its time to live, with the time the read began', async () => {
    const memo = new ShortMemo<number>(10_000);
    let reads = 0;
    const read = async () => ++reads;
    const before = Date.now();
    const a = memo.entry('k', read);
    const b = memo.entry('k', read);
    assert.equal(a, b);
    assert.equal(await a.value, 1);
    assert.ok(a.at >= before && a.at <= Date.now());
    assert.equal(await memo.get('other', read), 2, 'keys apart');
  });

  it('does not share a read that began before a change the caller heard of', async () => {
    const memo = new ShortMemo<number>(10_000);
    let reads = 0;
    const read = async () => ++reads;
    const first = memo.entry('k', read);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const changedAt = Date.now();
    const second = memo.entry('k', read, changedAt);
    assert.notEqual(second, first);
    assert.equal(await second.value, 2);
    assert.ok(second.at >= changedAt);
    assert.equal(memo.entry('k', read, second.at - 1), second, 'the newer read is shared from then on');
    assert.notEqual(memo.entry('k', read, second.at), second, 'not with a change in the millisecond it began');
  });

  it('forgets a failed read, but not a newer read of the key that replaced it', async () => {
    const memo = new ShortMemo<number>(10_000);
    let fail!: (e: Error) => void;
    const failing = memo.entry('k', () => new Promise<number>((_, reject) => { fail = reject; }));
    const newer = memo.entry('k', async () => 7, Date.now() + 1);
    fail(new Error('away'));
    await assert.rejects(failing.value, /away/);
    assert.equal(memo.entry('k', async () => 8), newer, 'the newer read stays');
  });
});
