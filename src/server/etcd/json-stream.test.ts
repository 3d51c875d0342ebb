/** JsonValueSplitter: values split at any byte boundary, strings with braces, limits and errors. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonStreamError, JsonValueSplitter } from './json-stream.js';

const texts = (values: Buffer[]) => values.map((v) => v.toString('utf8'));

describe('JsonValueSplitter', () => {
  it('splits concatenated and newline-delimited values', () => {
    const splitter = new JsonValueSplitter(1024);
    const body = '{"a":1}{"b":{"c":[1,2]}}\n  {"d":"}{\\"x"}\r\n[{"e":"é"}]';
    assert.deepEqual(texts(splitter.push(Buffer.from(body))), [
      '{"a":1}',
      '{"b":{"c":[1,2]}}',
      '{"d":"}{\\"x"}',
      '[{"e":"é"}]',
    ]);
    splitter.end();
  });

  it('gives the same values whatever the chunk boundaries', () => {
    const body = Buffer.from(
      '{"create_request":{"key":"YQ=="}} {"s":"a\\\\"}{"cancel_request":{}}',
    );
    const whole = texts(new JsonValueSplitter(1024).push(body));
    assert.equal(whole.length, 3);
    for (let size = 1; size <= 7; size++) {
      const splitter = new JsonValueSplitter(1024);
      const values: string[] = [];
      for (let at = 0; at < body.length; at += size) {
        values.push(...texts(splitter.push(body.subarray(at, at + size))));
      }
      splitter.end();
      assert.deepEqual(values, whole, `chunks of ${size}`);
    }
  });

  it('reports a value left incomplete at the end', () => {
    const splitter = new JsonValueSplitter(1024);
    assert.deepEqual(texts(splitter.push(Buffer.from('{"a":1} {"create_request":'))), ['{"a":1}']);
    assert.throws(() => splitter.end(), JsonStreamError);
  });

  it('refuses a value that is not an object or array', () => {
    assert.throws(
      () => new JsonValueSplitter(1024).push(Buffer.from('{} 42')),
      /invalid character '4'/,
    );
  });

  it('refuses a value over the byte limit, complete or not', () => {
    assert.throws(() => new JsonValueSplitter(8).push(Buffer.from('{"a":"123456789"}')), /over 8/);
    const splitter = new JsonValueSplitter(8);
    splitter.push(Buffer.from('{"a":'));
    assert.throws(
      () => splitter.push(Buffer.from('"123456789')),
      (error: unknown) => error instanceof JsonStreamError && error.tooLarge,
    );
  });
});
