/**
 * Judging a function's successful response: the AWS-validated success and failure shapes of
 * ReportBatchItemFailures, partial failures, and the tumbling-window `state` rule.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { judgeResponse } from '../engine/delivery/batchResponse.ts';

const sequenceNumbers = ['49668000000000000000000000000000000000000000000000000000', '49668000000000000000000000000000000000000000000000007919', '49668000000000000000000000000000000000000000000000015838'];
const [first, second, third] = sequenceNumbers as [string, string, string];
const rbif = { sequenceNumbers, reportBatchItemFailures: true, tumbling: false };

describe('responses without ReportBatchItemFailures', () => {
  it('are a success whatever they say', () => {
    for (const body of [null, '', 'not json', {}, [], 42, { batchItemFailures: [{ itemIdentifier: first }] }, { batchItemFailures: [{ foo: 1 }] }]) {
      assert.deepEqual(judgeResponse(body, { ...rbif, reportBatchItemFailures: false }), { verdict: 'SUCCESS' }, JSON.stringify(body));
    }
  });
});

describe('ReportBatchItemFailures responses', () => {
  it('mean success when empty: null, "", [], {}, an empty or null list', () => {
    for (const body of [null, undefined, '', [], {}, { batchItemFailures: [] }, { batchItemFailures: null }, { statusCode: 200 }]) {
      assert.deepEqual(judgeResponse(body, rbif), { verdict: 'SUCCESS' }, JSON.stringify(body));
    }
  });

  it('mean a whole-batch failure when an entry is unusable or the body is not a response', () => {
    const failures: unknown[] = [
      { batchItemFailures: [{ itemIdentifier: '' }] },
      { batchItemFailures: [{ itemIdentifier: null }] },
      { batchItemFailures: [{ itemIdentifier: 123 }] },
      { batchItemFailures: [{ itemIdentifier: '123' }] },
      { batchItemFailures: [{ foo: 123 }] },
      { batchItemFailures: [{ foo: null }] },
      { batchItemFailures: [{ itemidentifier: first }] },
      { batchItemFailures: [null] },
      { batchItemFailures: [first] },
      { batchItemFailures: [{ itemIdentifier: second }, { itemIdentifier: 'nope' }] },
      { batchItemFailures: 'all' },
      { batchItemFailures: { itemIdentifier: first } },
      'not json {',
      'ok',
      [1],
      42,
      true,
    ];
    for (const body of failures) {
      const verdict = judgeResponse(body, rbif);
      assert.equal(verdict.verdict, 'FAILURE', JSON.stringify(body));
      assert.ok(verdict.verdict === 'FAILURE' && verdict.reason.length > 0);
    }
  });

  it('say which entry is wrong and why', () => {
    assert.deepEqual(judgeResponse({ batchItemFailures: [{ itemIdentifier: second }, { itemIdentifier: '123' }] }, rbif), {
      verdict: 'FAILURE', reason: 'batchItemFailures[1].itemIdentifier "123" is not a sequence number of this batch.',
    });
    assert.match((judgeResponse({ batchItemFailures: [{ foo: 1 }] }, rbif) as { reason: string }).reason, /batchItemFailures\[0\]\.itemIdentifier .* got nothing/);
    assert.match((judgeResponse('<html>', rbif) as { reason: string }).reason, /not JSON/);
  });

  it('mean a partial failure from the lowest reported record', () => {
    assert.deepEqual(judgeResponse({ batchItemFailures: [{ itemIdentifier: second }] }, rbif), { verdict: 'PARTIAL', firstFailedIndex: 1 });
    assert.deepEqual(judgeResponse({ batchItemFailures: [{ itemIdentifier: third }, { itemIdentifier: second }] }, rbif), { verdict: 'PARTIAL', firstFailedIndex: 1 });
    assert.deepEqual(judgeResponse({ batchItemFailures: [{ itemIdentifier: first }] }, rbif), { verdict: 'PARTIAL', firstFailedIndex: 0 });
    assert.deepEqual(judgeResponse({ batchItemFailures: [{ itemIdentifier: third }, { itemIdentifier: third }] }, rbif), { verdict: 'PARTIAL', firstFailedIndex: 2 });
    // Extra keys in an entry are ignored.
    assert.deepEqual(judgeResponse({ batchItemFailures: [{ itemIdentifier: third, reason: 'x' }] }, rbif), { verdict: 'PARTIAL', firstFailedIndex: 2 });
  });

  it('match DynamoDB sequence numbers the same way', () => {
    const ddb = { sequenceNumbers: ['7300000000000000000000', '7300000000000000000131'], reportBatchItemFailures: true, tumbling: false };
    assert.deepEqual(judgeResponse({ batchItemFailures: [{ itemIdentifier: '7300000000000000000131' }] }, ddb), { verdict: 'PARTIAL', firstFailedIndex: 1 });
  });
});

describe('tumbling-window responses', () => {
  const tumbling = { sequenceNumbers, reportBatchItemFailures: false, tumbling: true };

  it('succeed with their state', () => {
    assert.deepEqual(judgeResponse({ state: { total: 3 } }, tumbling), { verdict: 'SUCCESS', state: { total: 3 } });
    assert.deepEqual(judgeResponse({ state: {} }, tumbling), { verdict: 'SUCCESS', state: {} });
  });

  it('fail without state', () => {
    for (const body of [null, '', {}, [], 'text', { state: null }, { batchItemFailures: [] }]) {
      const verdict = judgeResponse(body, tumbling);
      assert.equal(verdict.verdict, 'FAILURE', JSON.stringify(body));
      assert.match((verdict as { reason: string }).reason, /state/);
    }
    assert.equal(judgeResponse({ batchItemFailures: [] }, { ...tumbling, reportBatchItemFailures: true }).verdict, 'FAILURE');
  });

  it('combine state with batch item failures', () => {
    const both = { ...tumbling, reportBatchItemFailures: true };
    assert.deepEqual(judgeResponse({ state: { n: 1 }, batchItemFailures: [{ itemIdentifier: third }] }, both), { verdict: 'PARTIAL', firstFailedIndex: 2, state: { n: 1 } });
    assert.deepEqual(judgeResponse({ state: { n: 1 }, batchItemFailures: [] }, both), { verdict: 'SUCCESS', state: { n: 1 } });
    assert.equal(judgeResponse({ state: { n: 1 }, batchItemFailures: [{ itemIdentifier: '' }] }, both).verdict, 'FAILURE');
  });
});
