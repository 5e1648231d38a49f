import { type IncomingHttpHeaders, request } from 'node:http';

/**
 * One plain HTTP request with full control over every header (Host, Origin, Cookie, a signature
 * made elsewhere), answered with status, headers and the body as text. For the console's tests and
 * for signed requests an SDK would not send.
 */

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

/**
 * Sends `body` with `content-type: application/json` (a header given wins); Host is `base`'s unless
 * given. A `path` that starts with `/` goes out exactly as written (a signature covers it); a full
 * URL is sent to `base` with its path and query.
 */
export function http(
  base: string,
  method: string,
  path: string,
  headers: Readonly<Record<string, string>> = {},
  body?: string,
): Promise<Reply> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: path.startsWith('/') ? path : `${url.pathname}${url.search}`,
        headers: { host: url.host, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
