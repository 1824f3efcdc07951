/**
 * plainJson: whenever it reads a body, JSON.parse reads the same value (blob members aside,
 * which the request check holds to strict base64); anything else it leaves to JSON.parse.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parsePlainJson } from '../api/aws/plainJson.ts';
import { SHAPES } from '../api/aws/kinesis/shapes.ts';
import { type Shape, structure } from '../api/aws/validation.ts';

const same = (text: string, shape: Shape = SHAPES.PutRecords) => {
  const plain = parsePlainJson(Buffer.from(text, 'utf8'), shape);
  if (plain === undefined) return 'left to JSON.parse';
  assert.deepEqual(plain, JSON.parse(text), text.slice(0, 200));
  return 'read';
};

describe('plain JSON bodies', () => {
  it('reads what the SDKs send, as JSON.parse does', () => {
    const records = Array.from({ length: 500 }, (_, i) => ({ Data: Buffer.from(`payload ${i}`).toString('base64'), PartitionKey: `customer-${i}` }));
    assert.equal(same(JSON.stringify({ StreamName: 'orders', Records: records })), 'read');
    assert.equal(same(JSON.stringify({ Records: records, StreamARN: 'arn:aws:kinesis:us-east-1:000000000000:stream/orders' })), 'read');
    assert.equal(same(JSON.stringify({ StreamName: 'orders', Records: records }, null, 2)), 'read', 'with white space');
    assert.equal(same(' { } '), 'read');
    assert.equal(same('"text"'), 'read');
    assert.equal(same('{"Records":[],"Unknown":{"Nested":[["a"],{}],"Data":"x"}}'), 'read', 'unknown members');
    assert.equal(same('{"a":"1","a":"2"}'), 'read', 'the last of a repeated key, as JSON.parse');
    assert.equal(same('{"constructor":"c","toString":"t"}'), 'read');
  });

  it('leaves everything else to JSON.parse', () => {
    for (const text of [
      '', 'null', '{"Limit":5}', '{"a":true}', '{"a":null}', '{"a":"\\n"}', '{"a":"é"}', '{"__proto__":"x"}',
      '{"a":"1"', '{"a":"1"} x', '{"a" "1"}', '{"a":"1",}', '["a",]', '{"a":"tab\there"}', '{"Records":[{"PartitionKey":"k\u0001"}]}',
      '['.repeat(100) + ']'.repeat(100),
    ]) {
      assert.equal(parsePlainJson(Buffer.from(text, 'utf8'), SHAPES.PutRecords), undefined, JSON.stringify(text));
    }
  });

  it('checks every string but a blob for control characters', () => {
    const blob = structure({ Data: { type: 'blob' }, Name: { type: 'string' } });
    // In a blob it is the request check's to refuse (not base64), and the body is then read again.
    assert.deepEqual(parsePlainJson(Buffer.from('{"Data":"a\u0001b"}'), blob), { Data: 'a\u0001b' });
    assert.equal(parsePlainJson(Buffer.from('{"Name":"a\u0001b"}'), blob), undefined);
    assert.equal(parsePlainJson(Buffer.from('{"Other":{"Data":"a\u0001b"}}'), blob), undefined, 'a Data member of no blob shape');
  });

  it('agrees with JSON.parse on arbitrary JSON', () => {
    fc.assert(fc.property(fc.jsonValue(), fc.boolean(), (value, spaced) => {
      const text = JSON.stringify(value, null, spaced ? 1 : undefined);
      same(text);
      same(text, structure({}));
    }), { numRuns: 2000 });
    // Strings of every ASCII character, in keys and values.
    const ascii = fc.string({ unit: fc.integer({ min: 0, max: 127 }).map((c) => String.fromCharCode(c)) });
    fc.assert(fc.property(fc.dictionary(ascii, fc.oneof(ascii, fc.array(ascii))), (value) => {
      same(JSON.stringify(value));
    }), { numRuns: 2000 });
  });
});
