/**
 * A database that is restarting or out of reach reaches a GraphQL client as UNAVAILABLE (retry),
 * not as an internal fault; the detail stays in the server log. (The Postgres restart drill,
 * test/drills/postgresRestart.drill.ts, asserts producers see nothing else.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GraphQLError } from 'graphql';
import { createMaskError } from '../api/errors.ts';

const wrapped = (code: string) => Object.assign(new Error('Failed query: select 1'), {
  cause: Object.assign(new Error(`write ${code} 127.0.0.1:5432`), { code }),
});

describe('errors of an unavailable database', () => {
  it('are UNAVAILABLE, with no detail, and logged', () => {
    for (const code of ['CONNECTION_CLOSED', 'ECONNREFUSED', '57P01', '57P03']) {
      const logged: unknown[] = [];
      const masked = createMaskError((e) => logged.push(e))(new GraphQLError('x', { originalError: wrapped(code) }), 'x');
      assert.equal((masked as GraphQLError).extensions.code, 'UNAVAILABLE', code);
      assert.match(masked.message, /retry/);
      assert.doesNotMatch(masked.message, /127\.0\.0\.1|select/);
      assert.equal(logged.length, 1);
    }
  });

  it('leave other faults INTERNAL', () => {
    const masked = createMaskError(() => {})(new GraphQLError('x', { originalError: Object.assign(new Error('boom'), { code: '42P01' }) }), 'x');
    assert.equal((masked as GraphQLError).extensions.code, 'INTERNAL');
  });
});

describe('text Postgres cannot hold', () => {
  it('is INVALID_ARGUMENT (found by the fuzzing drill: a function name holding NUL answered INTERNAL)', () => {
    const logged: unknown[] = [];
    const nul = Object.assign(new Error('Failed query'), { cause: Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code: '22021' }) });
    const masked = createMaskError((e) => logged.push(e))(new GraphQLError('x', { originalError: nul }), 'x');
    assert.equal((masked as GraphQLError).extensions.code, 'INVALID_ARGUMENT');
    assert.match(masked.message, /NUL/);
    assert.equal(logged.length, 0);
  });
});
