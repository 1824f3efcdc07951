/**
 * Event filtering: each matcher with positive and negative cases, Kinesis data (JSON, not
 * JSON, other fields), DynamoDB typed leaves, and the validation errors of bad patterns.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { buildEventRecord } from '../engine/delivery/eventShapes.ts';
import { compileFilterPatterns, matchesFilters, type FilterKind } from '../engine/delivery/filterPatterns.ts';
import { ShardlineError, type ErrorCode } from '../engine/errors.ts';
import type { StoredRecord } from '../engine/records/readRecords.ts';
import type { StreamInfo } from '../engine/streams/model.ts';
import { b64 } from './harness.ts';

type Json = Record<string, unknown>;

const kinesisStream: StreamInfo = {
  id: 1, name: 'orders', kind: 'KINESIS', status: 'ACTIVE', retentionHours: 24, viewType: null,
  createdAt: new Date(0), arn: 'arn:aws:kinesis:eu-west-1:111122223333:stream/orders', enforceThroughput: false,
};

/** A Kinesis event record as the engine builds it, with `data` given as base64. */
function kinesisRecord(dataBase64: string, partitionKey = 'customer-17'): Json {
  const record: StoredRecord = {
    eventID: 'shardId-000000000002:49668', shardId: 'shardId-000000000002', shardKey: 1, sequenceNumber: '49668',
    partitionKey, data: dataBase64, approximateArrivalTimestamp: new Date(1763900000125), sizeBytes: 1,
    eventName: null, keys: null, newImage: null, oldImage: null, origin: null,
  };
  return buildEventRecord(kinesisStream, record, { region: 'eu-west-1', accountId: '111122223333' });
}

const matches = (kind: FilterKind, patterns: string[], eventRecord: Json) =>
  matchesFilters(compileFilterPatterns(patterns, kind), kind, eventRecord);

/** Does the pattern `{"data": <dataPattern>}` match a Kinesis record whose data is `dataText`? */
const matchesData = (dataPattern: string, dataText: string) =>
  matches('KINESIS', [`{"data":${dataPattern}}`], kinesisRecord(b64(dataText)));

/** [data pattern, data JSON text, expected] */
const CASES: Record<string, [string, string, boolean][]> = {
  'exact strings': [
    ['{"k":["a"]}', '{"k":"a"}', true],
    ['{"k":["a"]}', '{"k":"b"}', false],
    ['{"k":["a"]}', '{}', false],
    ['{"k":["a","b"]}', '{"k":"b"}', true],
    ['{"k":["1"]}', '{"k":1}', false],
    ['{"k":["A"]}', '{"k":"a"}', false],
  ],
  'exact numbers (compared as written)': [
    ['{"k":[300]}', '{"k":300}', true],
    ['{"k":[300]}', '{"k":300.0}', false],
    ['{"k":[300]}', '{"k":3.0e2}', false],
    ['{"k":[300.0]}', '{"k":300.0}', true],
    ['{"k":[1]}', '{"k":"1"}', false],
    ['{"k":[-1.5]}', '{"k":[-1.5]}', true],
  ],
  'booleans, null and the empty string': [
    ['{"k":[true]}', '{"k":true}', true],
    ['{"k":[true]}', '{"k":"true"}', false],
    ['{"k":[false]}', '{"k":true}', false],
    ['{"k":[null]}', '{"k":null}', true],
    ['{"k":[null]}', '{}', false],
    ['{"k":[null]}', '{"k":"null"}', false],
    ['{"k":[""]}', '{"k":""}', true],
    ['{"k":[""]}', '{"k":"a"}', false],
  ],
  prefix: [
    ['{"k":[{"prefix":"us-"}]}', '{"k":"us-east-1"}', true],
    ['{"k":[{"prefix":"us-"}]}', '{"k":"eu-west-1"}', false],
    ['{"k":[{"prefix":"us-"}]}', '{"k":"US-east-1"}', false],
    ['{"k":[{"prefix":"1"}]}', '{"k":12}', false],
    ['{"k":[{"prefix":{"equals-ignore-case":"US-"}}]}', '{"k":"us-east-1"}', true],
    ['{"k":[{"prefix":{"equals-ignore-case":"US-"}}]}', '{"k":"eu-us-1"}', false],
  ],
  suffix: [
    ['{"k":[{"suffix":".png"}]}', '{"k":"cat.png"}', true],
    ['{"k":[{"suffix":".png"}]}', '{"k":"cat.jpg"}', false],
    ['{"k":[{"suffix":".png"}]}', '{"k":"cat.PNG"}', false],
    ['{"k":[{"suffix":{"equals-ignore-case":".PNG"}}]}', '{"k":"cat.png"}', true],
    ['{"k":[{"suffix":{"equals-ignore-case":".PNG"}}]}', '{"k":"png.cat"}', false],
  ],
  'equals-ignore-case': [
    ['{"k":[{"equals-ignore-case":"alice"}]}', '{"k":"ALICE"}', true],
    ['{"k":[{"equals-ignore-case":"alice"}]}', '{"k":"alicia"}', false],
    ['{"k":[{"equals-ignore-case":"1"}]}', '{"k":1}', false],
  ],
  'anything-but': [
    ['{"k":[{"anything-but":"x"}]}', '{"k":"y"}', true],
    ['{"k":[{"anything-but":"x"}]}', '{"k":"x"}', false],
    ['{"k":[{"anything-but":"x"}]}', '{}', false],
    ['{"k":[{"anything-but":["a","b"]}]}', '{"k":"c"}', true],
    ['{"k":[{"anything-but":["a","b"]}]}', '{"k":"b"}', false],
    ['{"k":[{"anything-but":123}]}', '{"k":124}', true],
    ['{"k":[{"anything-but":123}]}', '{"k":123}', false],
    ['{"k":[{"anything-but":[1,2]}]}', '{"k":2.0}', false],
    ['{"k":[{"anything-but":123}]}', '{"k":"123"}', true],
  ],
  numeric: [
    ['{"k":[{"numeric":["=",100]}]}', '{"k":100}', true],
    ['{"k":[{"numeric":["=",100]}]}', '{"k":100.0}', true],
    ['{"k":[{"numeric":["=",100]}]}', '{"k":"100"}', false],
    ['{"k":[{"numeric":[">",10,"<=",20]}]}', '{"k":10}', false],
    ['{"k":[{"numeric":[">",10,"<=",20]}]}', '{"k":15}', true],
    ['{"k":[{"numeric":[">",10,"<=",20]}]}', '{"k":20}', true],
    ['{"k":[{"numeric":[">",10,"<=",20]}]}', '{"k":20.5}', false],
    ['{"k":[{"numeric":[">=",0,"<",1]}]}', '{"k":0}', true],
    ['{"k":[{"numeric":["<",0]}]}', '{"k":-0.5}', true],
    ['{"k":[{"numeric":["<=",0]}]}', '{"k":1e-3}', false],
    ['{"k":[{"numeric":[">",0]}]}', '{}', false],
  ],
  exists: [
    ['{"k":[{"exists":true}]}', '{"k":"a"}', true],
    ['{"k":[{"exists":true}]}', '{"k":null}', true],
    ['{"k":[{"exists":true}]}', '{}', false],
    ['{"k":[{"exists":true}]}', '{"k":{"x":1}}', false],
    ['{"k":[{"exists":true}]}', '{"k":[]}', false],
    ['{"k":[{"exists":false}]}', '{}', true],
    ['{"k":[{"exists":false}]}', '{"k":"a"}', false],
    ['{"k":["a",{"exists":false}]}', '{}', true],
    ['{"k":["a",{"exists":false}]}', '{"k":"b"}', false],
    ['{"a":{"b":[{"exists":false}]}}', '{}', true],
  ],
  wildcard: [
    ['{"k":[{"wildcard":"*/lib/*"}]}', '{"k":"/usr/lib/node"}', true],
    ['{"k":[{"wildcard":"*/lib/*"}]}', '{"k":"/usr/bin/node"}', false],
    ['{"k":[{"wildcard":"a*b*c"}]}', '{"k":"abc"}', true],
    ['{"k":[{"wildcard":"a*b*c"}]}', '{"k":"aXbYc"}', true],
    ['{"k":[{"wildcard":"a*b*c"}]}', '{"k":"acb"}', false],
    ['{"k":[{"wildcard":"ab*ba"}]}', '{"k":"aba"}', false],
    ['{"k":[{"wildcard":"*"}]}', '{"k":""}', true],
    ['{"k":[{"wildcard":"x\\\\*"}]}', '{"k":"x*"}', true],
    ['{"k":[{"wildcard":"x\\\\*"}]}', '{"k":"xy"}', false],
    ['{"k":[{"wildcard":"plain"}]}', '{"k":"plain"}', true],
    ['{"k":[{"wildcard":"*"}]}', '{"k":1}', false],
  ],
  cidr: [
    ['{"ip":[{"cidr":"10.0.0.0/24"}]}', '{"ip":"10.0.0.42"}', true],
    ['{"ip":[{"cidr":"10.0.0.0/24"}]}', '{"ip":"10.0.1.1"}', false],
    ['{"ip":[{"cidr":"10.0.0.0/24"}]}', '{"ip":"10.0.0"}', false],
    ['{"ip":[{"cidr":"192.168.0.0/16"}]}', '{"ip":"192.168.255.1"}', true],
    ['{"ip":[{"cidr":"0.0.0.0/0"}]}', '{"ip":"255.255.255.255"}', true],
    ['{"ip":[{"cidr":"1.2.3.4/32"}]}', '{"ip":"1.2.3.5"}', false],
  ],
  '$or': [
    ['{"$or":[{"a":["1"]},{"b":["2"]}]}', '{"b":"2"}', true],
    ['{"$or":[{"a":["1"]},{"b":["2"]}]}', '{"a":"3","b":"3"}', false],
    ['{"c":["x"],"$or":[{"a":["1"]},{"b":["2"]}]}', '{"a":"1"}', false],
    ['{"c":["x"],"$or":[{"a":["1"]},{"b":["2"]}]}', '{"a":"1","c":"x"}', true],
    ['{"o":{"$or":[{"a":[{"numeric":[">",5]}]},{"b":[{"exists":true}]}]}}', '{"o":{"a":7}}', true],
    ['{"o":{"$or":[{"a":[{"numeric":[">",5]}]},{"b":[{"exists":true}]}]}}', '{"o":{"a":3}}', false],
  ],
  'nesting, AND and arrays': [
    ['{"a":{"b":["1"]}}', '{"a":{"b":"1"}}', true],
    ['{"a":{"b":["1"]}}', '{"a":"b"}', false],
    ['{"a":["1"],"b":["2"]}', '{"a":"1"}', false],
    ['{"a":["1"],"b":["2"]}', '{"a":"1","b":"2"}', true],
    ['{"k":["b"]}', '{"k":["a","b"]}', true],
    ['{"k":["c"]}', '{"k":["a","b"]}', false],
    ['{"k":[{"numeric":[">",5]}]}', '{"k":[1,[7]]}', true],
    ['{"a":{"b":["1"],"c":["2"]}}', '{"a":[{"b":"1","c":"3"},{"b":"3","c":"2"}]}', false],
    ['{"a":{"b":["1"],"c":["2"]}}', '{"a":[{"b":"3"},{"b":"1","c":"2"}]}', true],
    ['{"constructor":[{"exists":true}]}', '{}', false],
    ['{"__proto__":["x"]}', '{"__proto__":"x"}', true],
  ],
};

describe('filter matchers', () => {
  for (const [name, cases] of Object.entries(CASES)) {
    it(name, () => {
      for (const [pattern, data, expected] of cases) {
        assert.equal(matchesData(pattern, data), expected, `${pattern} on ${data}`);
      }
    });
  }

  it('match everything without patterns, and OR separate patterns', () => {
    const record = kinesisRecord(b64('{"type":"order"}'));
    assert.equal(matches('KINESIS', [], record), true);
    assert.equal(matches('KINESIS', ['{"data":{"type":["refund"]}}'], record), false);
    assert.equal(matches('KINESIS', ['{"data":{"type":["refund"]}}', '{"data":{"type":["order"]}}'], record), true);
  });

  it('keep a duplicate key\'s last value, as JSON does', () => {
    assert.equal(matchesData('{"k":["a"],"k":["b"]}', '{"k":"b"}'), true);
    assert.equal(matchesData('{"k":["a"]}', '{"k":"b","k":"a"}'), true);
  });

  it('handle deeply nested data without overflowing the stack', () => {
    const deep = `{"k":${'['.repeat(200_000)}7${']'.repeat(200_000)}}`;
    assert.equal(matchesData('{"k":[7]}', deep), true);
    assert.equal(matchesData('{"k":[{"numeric":[">",5]}]}', deep), true);
  });
});

describe('Kinesis filtering', () => {
  const json = kinesisRecord(b64('{"type":"order","id":1001,"total":42.5}'));
  const text = kinesisRecord(b64('hello, not JSON'));

  it('matches JSON data and other record fields', () => {
    assert.equal(matches('KINESIS', ['{"data":{"type":["order"],"total":[{"numeric":[">",40]}]}}'], json), true);
    assert.equal(matches('KINESIS', ['{"partitionKey":["customer-17"]}'], json), true);
    assert.equal(matches('KINESIS', ['{"partitionKey":["customer-9"]}'], json), false);
    assert.equal(matches('KINESIS', ['{"partitionKey":[{"prefix":"customer-"}],"data":{"id":[1001]}}'], json), true);
    assert.equal(matches('KINESIS', ['{"eventSource":["aws:kinesis"]}'], json), true);
  });

  it('never matches data that is not JSON against a pattern that constrains data', () => {
    assert.equal(matches('KINESIS', ['{"data":{"type":[{"exists":false}]}}'], text), false);
    assert.equal(matches('KINESIS', ['{"data":{"type":[{"anything-but":"x"}]}}'], text), false);
    assert.equal(matches('KINESIS', [`{"data":{"x":[1]}}`], kinesisRecord(Buffer.from([0x7b, 0xff, 0x7d]).toString('base64'))), false);
    // Valid JSON that is not an object has no fields.
    assert.equal(matches('KINESIS', ['{"data":{"x":[{"exists":true}]}}'], kinesisRecord(b64('42'))), false);
  });

  it('evaluates a pattern without data rules on the other fields, whatever the data', () => {
    assert.equal(matches('KINESIS', ['{"partitionKey":["customer-17"]}'], text), true);
    assert.equal(matches('KINESIS', ['{"$or":[{"data":{"type":["order"]}},{"partitionKey":["customer-17"]}]}'], text), true);
    assert.equal(matches('KINESIS', ['{"data":{"type":["order"]}}', '{"partitionKey":["customer-17"]}'], text), true);
  });

  it('cannot filter on metadata Lambda adds after filtering', () => {
    for (const pattern of ['{"awsRegion":["eu-west-1"]}', '{"eventSourceARN":[{"prefix":"arn:"}]}', '{"invokeIdentityArn":[{"exists":true}]}']) {
      assert.equal(matches('KINESIS', [pattern], json), false, pattern);
    }
  });

  it('leaves the delivered record untouched (data stays base64)', () => {
    const record = kinesisRecord(b64('{"type":"order"}'));
    const before = JSON.stringify(record);
    matches('KINESIS', ['{"data":{"type":["order"]}}'], record);
    assert.equal(JSON.stringify(record), before);
  });
});

describe('DynamoDB filtering', () => {
  const records = (JSON.parse(readFileSync(new URL('./fixtures/dynamodb-lambda-event.json', import.meta.url), 'utf8')) as { Records: Json[] }).Records;
  const [insert, modify, remove] = records as [Json, Json, Json];
  const ddb = (pattern: object, record: Json) => matches('DYNAMODB', [JSON.stringify(pattern)], record);

  it('matches the whole record: eventName, eventSource, typed leaves', () => {
    assert.equal(ddb({ eventName: ['INSERT'] }, insert), true);
    assert.equal(ddb({ eventName: ['INSERT'] }, modify), false);
    assert.equal(ddb({ eventName: ['INSERT', 'MODIFY'] }, modify), true);
    assert.equal(ddb({ eventName: ['INSERT'], eventSource: ['aws:dynamodb'] }, insert), true);
    assert.equal(ddb({ dynamodb: { NewImage: { sku: { S: ['tea-green'] } } } }, insert), true);
    assert.equal(ddb({ dynamodb: { NewImage: { sku: { S: [{ prefix: 'tea-' }] } } } }, insert), true);
    assert.equal(ddb({ dynamodb: { NewImage: { tags: { SS: ['promo'] } } } }, insert), true);
    assert.equal(ddb({ dynamodb: { Keys: { line: { N: ['1'] } } } }, insert), true);
  });

  it('needs the type key: a leaf pattern on the attribute itself never matches', () => {
    assert.equal(ddb({ dynamodb: { NewImage: { sku: ['tea-green'] } } }, insert), false);
    assert.equal(ddb({ dynamodb: { NewImage: { sku: [{ exists: true }] } } }, insert), false);
    assert.equal(ddb({ dynamodb: { NewImage: { sku: { S: [{ exists: true }] } } } }, insert), true);
  });

  it('supports exists:false at the attribute level', () => {
    assert.equal(ddb({ dynamodb: { NewImage: { note: [{ exists: false }] } } }, insert), true);
    assert.equal(ddb({ dynamodb: { NewImage: { note: { NULL: [{ exists: false }] } } } }, modify), false);
    assert.equal(ddb({ dynamodb: { NewImage: [{ exists: false }] } }, remove), true);
  });

  it('never matches "N" strings numerically, but ApproximateCreationDateTime is a number', () => {
    assert.equal(ddb({ dynamodb: { NewImage: { qty: { N: [{ numeric: ['>', 1] }] } } } }, insert), false);
    assert.equal(ddb({ dynamodb: { NewImage: { qty: { N: ['2'] } } } }, insert), true);
    assert.equal(ddb({ dynamodb: { NewImage: { qty: { N: [2] } } } }, insert), false);
    assert.equal(ddb({ dynamodb: { ApproximateCreationDateTime: [{ numeric: ['>', 0] }] } }, insert), true);
    assert.equal(ddb({ dynamodb: { ApproximateCreationDateTime: [1763900100] } }, insert), true);
    assert.equal(ddb({ dynamodb: { SizeBytes: [{ numeric: ['>=', 80, '<', 100] }] } }, modify), true);
  });

  it('can select TTL deletes by userIdentity, and cannot filter on awsRegion or eventSourceARN', () => {
    const ttl = { userIdentity: { type: ['Service'], principalId: ['dynamodb.amazonaws.com'] } };
    assert.equal(ddb(ttl, remove), true);
    assert.equal(ddb(ttl, insert), false);
    assert.equal(ddb({ awsRegion: ['eu-west-1'] }, insert), false);
    assert.equal(ddb({ eventSourceARN: [{ prefix: 'arn:' }] }, insert), false);
  });
});

describe('filter pattern validation', () => {
  function throwsWith(fn: () => unknown, code: ErrorCode, ...patterns: RegExp[]) {
    let caught: unknown;
    try {
      fn();
    } catch (raw) {
      caught = raw;
    }
    assert.ok(caught instanceof ShardlineError, `expected ${code}, got ${caught === undefined ? 'success' : String(caught)}`);
    assert.equal(caught.code, code, caught.message);
    for (const pattern of patterns) assert.match(caught.message, pattern);
  }
  const compile = (pattern: string, kind: FilterKind = 'DYNAMODB') => () => compileFilterPatterns([pattern], kind);

  it('limits the number and length of patterns', () => {
    throwsWith(() => compileFilterPatterns(Array(6).fill('{"a":["1"]}'), 'KINESIS'), 'LIMIT_EXCEEDED', /at most 5/);
    compileFilterPatterns(Array(5).fill('{"a":["1"]}'), 'KINESIS');
    const long = `{"a":["${'x'.repeat(4090)}"]}`;
    throwsWith(compile(long), 'LIMIT_EXCEEDED', /filterPatterns\[0\]/, /4096/);
    compileFilterPatterns([long.slice(0, 4088) + '"]}'], 'DYNAMODB');
  });

  const INVALID: [string, RegExp][] = [
    ['not json', /filterPatterns\[0\] is not valid JSON/],
    ['[1]', /must be a JSON object/],
    ['"text"', /must be a JSON object/],
    ['{}', /at least one field/],
    ['{"a":"x"}', /at a: must be an array of matchers or an object/],
    ['{"a":{}}', /at a: an object in a pattern must name at least one field/],
    ['{"a":[]}', /must not be empty/],
    ['{"a":[[1]]}', /a matcher must be/],
    ['{"a":[{"regex":"x"}]}', /regex: is not a supported matcher/],
    ['{"a":[{"prefix":"x","suffix":"y"}]}', /exactly one key/],
    ['{"a":[{}]}', /exactly one key/],
    ['{"a":[{"prefix":1}]}', /prefix: must be a string/],
    ['{"a":[{"suffix":{"equals-ignore-case":1}}]}', /suffix: must be a string/],
    ['{"a":[{"equals-ignore-case":["x"]}]}', /equals-ignore-case: must be a string/],
    ['{"a":[{"numeric":["<",10,">",5]}]}', /lower bound \(> or >=\) followed by an upper bound/],
    ['{"a":[{"numeric":["=",1,"<",2]}]}', /lower bound/],
    ['{"a":[{"numeric":[">",10,"<",5]}]}', /lower bound 10 must be below the upper bound 5/],
    ['{"a":[{"numeric":[">",5,"<",5]}]}', /must be below/],
    ['{"a":[{"numeric":["~",1]}]}', /"~" is not an operator/],
    ['{"a":[{"numeric":[">","1"]}]}', /operand of > must be a finite number/],
    ['{"a":[{"numeric":[">"]}]}', /must be \[operator, number\]/],
    ['{"a":[{"numeric":">5"}]}', /must be \[operator, number\]/],
    ['{"a":[{"wildcard":"a**b"}]}', /wildcard: .*\*\*/],
    ['{"a":[{"wildcard":"a\\\\b"}]}', /backslash may only escape/],
    ['{"a":[{"cidr":"10.0.0.0"}]}', /not an IPv4 CIDR block/],
    ['{"a":[{"cidr":"10.0.0.256/8"}]}', /not an IPv4 CIDR block/],
    ['{"a":[{"cidr":"10.0.0.0/33"}]}', /not an IPv4 CIDR block/],
    ['{"a":[{"cidr":"::1/128"}]}', /only IPv4/],
    ['{"a":[{"exists":"yes"}]}', /exists: must be true or false/],
    ['{"a":[{"anything-but":{"prefix":"x"}}]}', /forms of anything-but are not supported/],
    ['{"a":[{"anything-but":["a",1]}]}', /only strings or only numbers/],
    ['{"a":[{"anything-but":[]}]}', /must not be an empty list/],
    ['{"$or":[]}', /\$or must be an array of pattern objects/],
    ['{"$or":[["a"]]}', /\$or must be an array of pattern objects/],
  ];

  it('rejects bad patterns with INVALID_ARGUMENT saying which and what is wrong', () => {
    for (const [pattern, message] of INVALID) throwsWith(compile(pattern), 'INVALID_ARGUMENT', /filterPatterns\[0\]/, message);
  });

  it('names the pattern by its field and index, and the path inside it', () => {
    throwsWith(() => compileFilterPatterns(['{"a":["1"]}', '{"data":{"amount":[{"numeric":[">",10,"<",5]}]}}'], 'KINESIS', 'input.filterPatterns'),
      'INVALID_ARGUMENT', /^input\.filterPatterns\[1\] at data\.amount: numeric: /);
  });

  it('requires a Kinesis data rule to be an object pattern', () => {
    throwsWith(compile('{"data":["hello"]}', 'KINESIS'), 'INVALID_ARGUMENT', /at data: Kinesis data is matched as JSON/);
    throwsWith(compile('{"$or":[{"partitionKey":["p"]},{"data":[{"prefix":"x"}]}]}', 'KINESIS'), 'INVALID_ARGUMENT', /at data/);
    // Only the top-level data key is Kinesis data; elsewhere, and for DynamoDB, data is an ordinary field.
    compileFilterPatterns(['{"data":{"data":["x"]}}'], 'KINESIS');
    compileFilterPatterns(['{"data":["hello"]}'], 'DYNAMODB');
  });

  it('accepts every supported matcher', () => {
    compileFilterPatterns([
      '{"a":["s",1,true,null,"",{"prefix":"p"},{"prefix":{"equals-ignore-case":"P"}},{"suffix":"s"},{"suffix":{"equals-ignore-case":"S"}}]}',
      '{"a":[{"equals-ignore-case":"x"},{"anything-but":"x"},{"anything-but":["x","y"]},{"anything-but":1},{"anything-but":[1,2]}]}',
      '{"a":[{"numeric":["=",1]},{"numeric":[">",0,"<",1]},{"numeric":[">=",-1.5,"<=",2e3]},{"exists":true},{"exists":false}]}',
      '{"a":[{"wildcard":"*x\\\\*y*"},{"cidr":"10.0.0.0/8"}],"$or":[{"b":["1"]},{"c":{"d":["2"]}}]}',
    ], 'DYNAMODB');
  });
});
