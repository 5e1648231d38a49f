import type { ServerResponse } from 'node:http';

/**
 * Server-Sent Events streams of the console. Each client subscribes to the fleet or to one thing.
 * A client that stops reading (its socket buffer passes `maxBufferedBytes`) is closed; its
 * EventSource reconnects by itself and starts again from a fresh snapshot, so nothing is queued
 * without bound. A comment line every `heartbeatMs` keeps idle connections and proxies alive.
 */

export interface SseClient {
  /** The thing this stream follows; undefined for the fleet stream. */
  readonly thing: string | undefined;
  send(event: string, data: unknown): void;
  close(): void;
}

export interface SseHub {
  open(res: ServerResponse, thing: string | undefined): SseClient;
  /** Sends to every fleet stream. */
  toFleet(event: string, data: unknown): void;
  /** Sends to every stream following `thing`. */
  toThing(thing: string, event: string, data: unknown): void;
  /** Things some stream follows now. */
  watched(): ReadonlySet<string>;
  readonly clients: number;
  /** Streams of the fleet view. */
  readonly fleetClients: number;
  closeAll(): void;
}

export interface SseHubOptions {
  readonly heartbeatMs?: number;
  readonly maxBufferedBytes?: number;
  /** Reconnect delay the browser should use (the `retry:` field). */
  readonly retryMs?: number;
  readonly onClose?: (client: SseClient) => void;
}

export function createSseHub(options: SseHubOptions = {}): SseHub {
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const maxBuffered = options.maxBufferedBytes ?? 4 * 1024 * 1024;
  const fleet = new Set<Client>();
  const byThing = new Map<string, Set<Client>>();
  let heartbeat: NodeJS.Timeout | undefined;

  interface Client extends SseClient {
    readonly res: ServerResponse;
  }

  function updateHeartbeat(): void {
    const count = fleet.size + byThing.size;
    if (count > 0 && heartbeat === undefined) {
      heartbeat = setInterval(() => {
        for (const c of fleet) c.res.write(': ping\n\n');
        for (const set of byThing.values()) for (const c of set) c.res.write(': ping\n\n');
      }, heartbeatMs);
      heartbeat.unref();
    } else if (count === 0 && heartbeat !== undefined) {
      clearInterval(heartbeat);
      heartbeat = undefined;
    }
  }

  function remove(client: Client): void {
    let removed = fleet.delete(client);
    if (client.thing !== undefined) {
      const set = byThing.get(client.thing);
      if (set?.delete(client)) removed = true;
      if (set?.size === 0) byThing.delete(client.thing);
    }
    if (removed) {
      updateHeartbeat();
      options.onClose?.(client);
    }
  }

  return {
    open(res, thing) {
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-content-type-options': 'nosniff',
        'x-accel-buffering': 'no',
      });
      res.socket?.setNoDelay(true);
      res.write(`retry: ${options.retryMs ?? 2000}\n\n`);
      let closed = false;
      const client: Client = {
        thing,
        res,
        send(event, data) {
          if (closed) return;
          res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
          if (res.writableLength > maxBuffered) client.close();
        },
        close() {
          if (closed) return;
          closed = true;
          remove(client);
          res.end();
        },
      };
      res.on('close', () => {
        closed = true;
        remove(client);
      });
      if (thing === undefined) fleet.add(client);
      else {
        let set = byThing.get(thing);
        if (set === undefined) {
          set = new Set();
          byThing.set(thing, set);
        }
        set.add(client);
      }
      updateHeartbeat();
      return client;
    },
    toFleet(event, data) {
      if (fleet.size === 0) return;
      // Serialize once for every client.
      const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
      for (const c of [...fleet]) {
        c.res.write(frame);
        if (c.res.writableLength > maxBuffered) c.close();
      }
    },
    toThing(thing, event, data) {
      const set = byThing.get(thing);
      if (set === undefined) return;
      const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
      for (const c of [...set]) {
        c.res.write(frame);
        if (c.res.writableLength > maxBuffered) c.close();
      }
    },
    watched: () => new Set(byThing.keys()),
    get fleetClients() {
      return fleet.size;
    },
    get clients() {
      let n = fleet.size;
      for (const set of byThing.values()) n += set.size;
      return n;
    },
    closeAll() {
      for (const c of [...fleet]) c.close();
      for (const set of [...byThing.values()]) for (const c of [...set]) c.close();
      updateHeartbeat();
    },
  };
}
