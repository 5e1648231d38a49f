import { afterEach, describe, expect, it } from 'vitest';
import { readPage } from '../../src/fleet/api-readback.js';

/** The query API's telemetry page, read from the response text without trusting its shape. */

afterEach(() => {
  expect(Object.keys(Object.prototype)).toEqual([]);
});

describe('readPage', () => {
  it('reads the items (bootId and seq) and the next token', () => {
    expect(
      readPage('{"items":[{"bootId":"b","seq":1,"metrics":{"t":1}},{"bootId":"b","seq":2}],"nextToken":"n"}'),
    ).toEqual({
      items: [
        { bootId: 'b', seq: 1 },
        { bootId: 'b', seq: 2 },
      ],
      nextToken: 'n',
    });
  });

  it.each([
    ['{}', { items: [], nextToken: undefined }],
    ['{"items":[],"nextToken":null}', { items: [], nextToken: undefined }],
    [
      '{"items":[5,{"__proto__":{"bootId":"x"}}]}',
      {
        items: [
          { bootId: undefined, seq: undefined },
          { bootId: undefined, seq: undefined },
        ],
        nextToken: undefined,
      },
    ],
  ])('reads %s', (text, page) => {
    expect(readPage(text)).toEqual(page);
  });

  it.each([
    ['not JSON', '{"items":'],
    ['not an object', '[]'],
    ['items not a list', '{"items":{"0":{}}}'],
    ['a token that is not a string', '{"items":[],"nextToken":7}'],
    ['nested 10,000 levels', `{"items":[${'['.repeat(10_000)}${']'.repeat(10_000)}]}`],
  ])('is undefined for %s', (_label, text) => {
    expect(readPage(text)).toBeUndefined();
  });
});
