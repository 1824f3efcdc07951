/**
 * test/fixtures holds copies of the shared contract and Lambda event fixtures, so a clean
 * clone tests on its own. When the shared originals sit beside the repository, the copies
 * must be identical to them.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const SHARED = new URL('../../shared/', import.meta.url);
const COPIES: [string, string][] = [
  ['contract/schema.graphql', 'contract.graphql'],
  ['fixtures/kinesis-lambda-event.json', 'kinesis-lambda-event.json'],
  ['fixtures/dynamodb-lambda-event.json', 'dynamodb-lambda-event.json'],
];

describe('shared fixtures', () => {
  for (const [original, copy] of COPIES) {
    it(`test/fixtures/${copy} matches shared/${original}`, (t) => {
      const originalUrl = new URL(original, SHARED);
      if (!existsSync(originalUrl)) {
        t.skip('the shared folder is not beside this checkout');
        return;
      }
      assert.equal(readFileSync(new URL(`./fixtures/${copy}`, import.meta.url), 'utf8'), readFileSync(originalUrl, 'utf8'));
    });
  }
});
