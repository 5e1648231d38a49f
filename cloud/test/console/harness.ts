import { type IncomingHttpHeaders, request } from 'node:http';

/** An SSE reader for console tests (plain requests: ../http/plain-request.ts). */

export interface SseEvent {
  readonly event: string;
  readonly data: unknown;
}

export interface SseStream {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly events: SseEvent[];
  /** Resolves with the first event (seen so far or later) that matches; rejects after `timeoutMs`. */
  waitFor(match: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
}

export function openSse(base: string, path: string, headers: Record<string, string>): Promise<SseStream> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        headers: { host: url.host, ...headers },
      },
      (res) => {
        const events: SseEvent[] = [];
        const waiters = new Set<() => void>();
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let end = buffer.indexOf('\n\n');
          while (end !== -1) {
            const frame = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            let event = 'message';
            const data: string[] = [];
            for (const line of frame.split('\n')) {
              if (line.startsWith('event: ')) event = line.slice(7);
              else if (line.startsWith('data: ')) data.push(line.slice(6));
            }
            if (data.length > 0) events.push({ event, data: JSON.parse(data.join('\n')) });
            end = buffer.indexOf('\n\n');
          }
          for (const w of [...waiters]) w();
        });
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          events,
          waitFor(match, timeoutMs = 5_000) {
            return new Promise((done, fail) => {
              let seen = 0;
              const check = () => {
                for (; seen < events.length; seen++) {
                  const e = events[seen] as SseEvent;
                  if (match(e)) {
                    waiters.delete(check);
                    clearTimeout(timer);
                    done(e);
                    return;
                  }
                }
              };
              const timer = setTimeout(() => {
                waiters.delete(check);
                fail(new Error(`no matching event in ${timeoutMs} ms; got ${events.map((e) => e.event).join(', ')}`));
              }, timeoutMs);
              waiters.add(check);
              check();
            });
          },
          close: () => req.destroy(),
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}
