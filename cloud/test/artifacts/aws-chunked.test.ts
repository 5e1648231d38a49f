import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ArtifactError, AwsChunkedDecoder } from '../../src/artifacts/index.js';

/**
 * The aws-chunked decoder on the exact bytes `@aws-sdk/client-s3` sends for a stream body
 * (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`, captured from the client: two 3-byte chunks and a CRC32
 * trailer), cut at every possible place, and on bodies that are malformed or cut short.
 */

const WIRE = '3\r\nabc\r\n3\r\ndef\r\n0\r\nx-amz-checksum-crc32:S4457w==\r\n\r\n';

async function decode(parts: readonly Buffer[]): Promise<{ body: string; trailers: Map<string, string> }> {
  const decoder = new AwsChunkedDecoder();
  const chunks: Buffer[] = [];
  for await (const chunk of Readable.from(parts).pipe(decoder)) chunks.push(chunk as Buffer);
  return { body: Buffer.concat(chunks).toString(), trailers: decoder.trailers };
}

async function failure(wire: string): Promise<ArtifactError> {
  const err = await decode([Buffer.from(wire)]).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ArtifactError);
  return err as ArtifactError;
}

describe('AwsChunkedDecoder', () => {
  it('decodes the client’s body and reads its trailer', async () => {
    const { body, trailers } = await decode([Buffer.from(WIRE)]);
    expect(body).toBe('abcdef');
    expect(trailers.get('x-amz-checksum-crc32')).toBe('S4457w==');
  });

  it.each(Array.from({ length: WIRE.length - 1 }, (_, i) => i + 1))(
    'decodes the same when the bytes arrive split at %i',
    async (at) => {
      const wire = Buffer.from(WIRE);
      const { body, trailers } = await decode([wire.subarray(0, at), wire.subarray(at)]);
      expect(body).toBe('abcdef');
      expect(trailers.get('x-amz-checksum-crc32')).toBe('S4457w==');
    },
  );

  it('decodes a body arriving one byte at a time', async () => {
    const wire = Buffer.from(WIRE);
    const { body } = await decode(Array.from(wire, (b) => Buffer.from([b])));
    expect(body).toBe('abcdef');
  });

  it('decodes an empty body (one zero chunk)', async () => {
    const { body, trailers } = await decode([Buffer.from('0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n')]);
    expect(body).toBe('');
    expect(trailers.get('x-amz-checksum-crc32')).toBe('AAAAAA==');
  });

  it.each([
    ['a body cut in a chunk', '3\r\nab', 'IncompleteBody'],
    ['a body without its last chunk', '3\r\nabc\r\n', 'IncompleteBody'],
    ['a body without the final empty line', '3\r\nabc\r\n0\r\nx-amz-checksum-crc32:S4457w==\r\n', 'IncompleteBody'],
    ['a chunk size that is not hex', 'zz\r\nabc\r\n0\r\n\r\n', 'InvalidRequest'],
    ['a chunk longer than its size', '2\r\nabc\r\n0\r\n\r\n', 'InvalidRequest'],
    ['a trailer without a colon', '0\r\nnocolon\r\n\r\n', 'InvalidRequest'],
    ['bytes after the end', '0\r\n\r\nextra', 'InvalidRequest'],
    ['a chunk header line past 4 KiB', `${'0'.repeat(5000)}`, 'InvalidRequest'],
  ])('refuses %s (%s)', async (_what, wire, code) => {
    expect((await failure(wire)).s3Code).toBe(code);
  });
});
