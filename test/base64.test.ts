/**
 * Strict base64: the fast native check agrees with the character table on valid payloads,
 * on every kind of invalid one (other alphabets, misplaced padding, whitespace, characters the
 * decoder would read by their low byte) and on random strings over a mixed alphabet.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { base64Length, isBase64, isBase64ByTable } from '../engine/records/base64.ts';

const STRICT = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

describe('isBase64', () => {
  it('accepts padded standard base64 of any length, and its decoded length is exact', () => {
    for (let n = 0; n < 300; n++) {
      const text = randomBytes(n).toString('base64');
      assert.ok(isBase64(text), text);
      assert.equal(base64Length(text), n);
    }
    assert.ok(isBase64(randomBytes(1024 * 1024).toString('base64')));
    assert.ok(isBase64('QR==')); // non-zero padding bits: still base64, as before
  });

  it('refuses what is not strict base64', () => {
    const invalid = [
      'Q', 'QQ', 'QQ=', 'QQ===', 'A===', '====', 'QQ==QQ==', 'AA=A', 'A=AA', 'QUJD\n', 'QU D', 'QUJ\tRA==',
      '-_AA', 'QUJ-', 'QUJ_', 'ŁAAA', 'AīAA', 'İAAA', 'QUJń', 'ＡAAA', 'AAÁA', 'é=AA', '😀AA', 'QQ=Ā', 'AAAA\u0000AAA',
      'QUJ$', 'QU*D', `${randomBytes(30).toString('base64')}!`, `${randomBytes(1024 * 1024).toString('base64')}Ł===`,
    ];
    for (const text of invalid) {
      assert.equal(isBase64(text), false, JSON.stringify(text));
      assert.equal(isBase64ByTable(text), false, JSON.stringify(text));
    }
  });

  it('agrees with the strict grammar on random strings', () => {
    const alphabet = 'AQgw+/=-_ \n$Łé😀';
    for (let i = 0; i < 20_000; i++) {
      const chars = Array.from({ length: 4 * (1 + (i % 3)) }, () => [...alphabet][Math.floor(Math.random() * [...alphabet].length)]);
      const text = chars.join('');
      assert.equal(isBase64(text), STRICT.test(text), JSON.stringify(text));
    }
  });
});
