import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DownloadError, downloadRelease } from '../../src/update/download.js';
import { nodeFs } from '../../src/update/layout.js';

const dir = mkdtempSync(path.join(tmpdir(), 'pifleet-download-'));
const body = randomBytes(100_000);
const servers: ReturnType<typeof createServer>[] = [];
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  rmSync(dir, { recursive: true, force: true });
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const ranges: (string | undefined)[] = [];
  const server = createServer((req, res) => {
    ranges.push(req.headers.range);
    handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/r.tar.gz`, ranges };
}

let n = 0;
const file = (partial?: Buffer) => {
  const f = path.join(dir, `f${++n}`);
  if (partial) writeFileSync(f, partial);
  return f;
};
const get = (url: string, f: string) => downloadRelease({ url, file: f, size: body.byteLength, fetch, fs: nodeFs });

describe('downloadRelease', () => {
  it('a server that ignores Range (200): the partial file is started over, not appended to', async () => {
    const { url, ranges } = await serve((_req, res) => res.writeHead(200).end(body));
    const f = file(body.subarray(0, 30_000));
    expect(await get(url, f)).toBe(body.byteLength);
    expect(ranges).toEqual(['bytes=30000-']);
    expect(readFileSync(f).equals(body)).toBe(true);
  });

  it('416 for the Range (the object changed): started over without Range', async () => {
    const { url, ranges } = await serve((req, res) => {
      if (req.headers.range) res.writeHead(416).end();
      else res.writeHead(200).end(body);
    });
    const f = file(Buffer.alloc(10));
    await get(url, f);
    expect(ranges).toEqual(['bytes=10-', undefined]);
    expect(readFileSync(f).equals(body)).toBe(true);
  });

  it('a 206 for another offset than asked is not appended (refused as HTTP 206)', async () => {
    const { url } = await serve((_req, res) =>
      res.writeHead(206, { 'content-range': `bytes 0-99999/100000` }).end(body),
    );
    const f = file(body.subarray(0, 500));
    await expect(get(url, f)).rejects.toMatchObject({ code: 'DOWNLOAD_HTTP' });
    expect(readFileSync(f).byteLength).toBe(500);
  });

  it('a partial file longer than the release is discarded first', async () => {
    const { url, ranges } = await serve((_req, res) => res.writeHead(200).end(body));
    const f = file(Buffer.alloc(body.byteLength + 1));
    await get(url, f);
    expect(ranges).toEqual([undefined]);
    expect(readFileSync(f).equals(body)).toBe(true);
  });

  it('a body shorter than the release is an interrupted download (the next call resumes)', async () => {
    const { url } = await serve((_req, res) => res.writeHead(200).end(body.subarray(0, 1000)));
    const err = await get(url, file()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DownloadError);
    expect(err).toMatchObject({ code: 'DOWNLOAD_INTERRUPTED', message: 'download ended after 1000 of 100000 bytes' });
  });

  it('a refused connection is DOWNLOAD_INTERRUPTED', async () => {
    const { url } = await serve((_req, res) => res.end());
    const closed = url.replace(/:\d+\//, ':1/');
    await expect(get(closed, file())).rejects.toMatchObject({ code: 'DOWNLOAD_INTERRUPTED' });
  });
});
