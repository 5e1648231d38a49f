import { Transform, type TransformCallback } from 'node:stream';
import { ArtifactError } from './errors.js';

/**
 * Decoder of S3's `aws-chunked` content encoding, unsigned with trailers
 * (`x-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER`): what `@aws-sdk/client-s3` sends
 * for a stream body, with the flexible checksum as a trailer after the last chunk:
 *
 *     <hex size>\r\n<bytes>\r\n … 0\r\n<name>:<value>\r\n … \r\n
 *
 * The decoded bytes flow on; the trailers are read (lowercase names) once the stream has ended.
 * A malformed or truncated body fails the stream with S3's error, nothing is buffered past one
 * chunk header or trailer line.
 */

const MAX_LINE = 4096;
const MAX_TRAILERS = 16;

type State = 'size' | 'data' | 'data-end' | 'trailers' | 'done';

export class AwsChunkedDecoder extends Transform {
  readonly trailers = new Map<string, string>();
  private state: State = 'size';
  private pending: Buffer = Buffer.alloc(0);
  private remaining = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    try {
      this.drain();
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.state !== 'done') {
      callback(new ArtifactError('IncompleteBody', 'The aws-chunked request body ended before its last chunk.'));
      return;
    }
    callback();
  }

  private line(): string | undefined {
    const end = this.pending.indexOf('\r\n');
    if (end === -1) {
      if (this.pending.length > MAX_LINE) throw malformed('a chunk header or trailer line is too long');
      return undefined;
    }
    if (end > MAX_LINE) throw malformed('a chunk header or trailer line is too long');
    const text = this.pending.subarray(0, end).toString('latin1');
    this.pending = this.pending.subarray(end + 2);
    return text;
  }

  private drain(): void {
    for (;;) {
      switch (this.state) {
        case 'size': {
          const text = this.line();
          if (text === undefined) return;
          // Signed variants carry `;chunk-signature=…`: refused where the request was accepted.
          const size = text.split(';', 1)[0] as string;
          if (!/^[0-9a-fA-F]{1,16}$/.test(size)) throw malformed(`bad chunk size ${JSON.stringify(size)}`);
          this.remaining = Number.parseInt(size, 16);
          this.state = this.remaining === 0 ? 'trailers' : 'data';
          break;
        }
        case 'data': {
          if (this.pending.length === 0) return;
          const take = Math.min(this.remaining, this.pending.length);
          this.push(this.pending.subarray(0, take));
          this.pending = this.pending.subarray(take);
          this.remaining -= take;
          if (this.remaining === 0) this.state = 'data-end';
          break;
        }
        case 'data-end': {
          if (this.pending.length < 2) return;
          if (this.pending[0] !== 0x0d || this.pending[1] !== 0x0a) throw malformed('a chunk does not end with CRLF');
          this.pending = this.pending.subarray(2);
          this.state = 'size';
          break;
        }
        case 'trailers': {
          const text = this.line();
          if (text === undefined) return;
          if (text === '') {
            this.state = 'done';
            break;
          }
          const colon = text.indexOf(':');
          if (colon <= 0) throw malformed('a trailer is not name:value');
          if (this.trailers.size >= MAX_TRAILERS) throw malformed('too many trailers');
          this.trailers.set(text.slice(0, colon).trim().toLowerCase(), text.slice(colon + 1).trim());
          break;
        }
        case 'done':
          if (this.pending.length > 0) throw malformed('bytes follow the final chunk');
          return;
      }
    }
  }
}

function malformed(why: string): ArtifactError {
  return new ArtifactError('InvalidRequest', `The aws-chunked request body is malformed: ${why}.`);
}
