import { AgentError } from '../errors.js';
import type { UpdateFs } from './layout.js';

/** A download that did not complete: `code` says whether trying again can help. */
export class DownloadError extends AgentError {
  override name = 'DownloadError';
}

export interface DownloadOptions {
  readonly url: string;
  readonly file: string;
  /** The manifest's size: no more bytes than this are written, whatever the server sends. */
  readonly size: number;
  readonly fetch: typeof globalThis.fetch;
  readonly fs: UpdateFs;
  /** Called after each chunk written (bytes so far), e.g. for progress. */
  readonly onBytes?: (bytes: number) => void;
}

async function existingSize(fs: UpdateFs, file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch {
    return 0;
  }
}

/**
 * Downloads `url` into `file`, continuing a partial file with a `Range: bytes=N-` request (a
 * presigned S3 GET honours Range, the local core's artifact store too); a server that answers 200
 * instead, or a partial file longer than the release, starts over. The file is fsynced before this
 * returns, so a later step never reads bytes that a power cut can still take away.
 *
 * Errors: `DOWNLOAD_HTTP` (the server refused: an expired presigned URL is 403), `DOWNLOAD_TOO_LARGE`
 * (more bytes than the signed size), `DOWNLOAD_INTERRUPTED` (the connection broke: the next call
 * resumes), and the file system's own errors (ENOSPC) as they are.
 */
export async function downloadRelease(o: DownloadOptions): Promise<number> {
  let have = await existingSize(o.fs, o.file);
  if (have > o.size) {
    await o.fs.rm(o.file, { force: true });
    have = 0;
  }
  if (have === o.size) return have;
  let res: Response;
  try {
    res = await o.fetch(o.url, have > 0 ? { headers: { range: `bytes=${have}-` } } : {});
  } catch (err) {
    throw new DownloadError('DOWNLOAD_INTERRUPTED', `download failed: ${errMessage(err)}`, { cause: err });
  }
  if (res.status === 416 && have > 0) {
    // The partial file does not match what the server has: start over.
    await res.body?.cancel();
    await o.fs.rm(o.file, { force: true });
    return downloadRelease(o);
  }
  let offset: number;
  if (res.status === 206 && have > 0 && contentRangeStart(res.headers.get('content-range')) === have) {
    offset = have;
  } else if (res.status === 200) {
    offset = 0;
  } else {
    await res.body?.cancel();
    throw new DownloadError('DOWNLOAD_HTTP', `download refused: HTTP ${res.status}`, { data: { status: res.status } });
  }
  const handle = await o.fs.open(o.file, offset === 0 ? 'w' : 'a', 0o600);
  let written = offset;
  try {
    if (!res.body) throw new DownloadError('DOWNLOAD_INTERRUPTED', 'download has no body');
    const reader = res.body.getReader();
    try {
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (err) {
          throw new DownloadError(
            'DOWNLOAD_INTERRUPTED',
            `download interrupted after ${written} bytes: ${errMessage(err)}`,
            {
              cause: err,
            },
          );
        }
        if (chunk.done) break;
        if (written + chunk.value.byteLength > o.size) {
          throw new DownloadError(
            'DOWNLOAD_TOO_LARGE',
            `release is larger than the ${o.size} bytes its manifest signs`,
          );
        }
        await handle.write(chunk.value);
        written += chunk.value.byteLength;
        o.onBytes?.(written);
      }
    } finally {
      reader.releaseLock();
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  if (written < o.size) {
    throw new DownloadError('DOWNLOAD_INTERRUPTED', `download ended after ${written} of ${o.size} bytes`);
  }
  return written;
}

function contentRangeStart(header: string | null): number | undefined {
  const m = header ? /^bytes (\d+)-\d+\/(?:\d+|\*)$/.exec(header) : null;
  return m ? Number(m[1]) : undefined;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
