import { isJsonObject, type JsonValue, ownValue, parseJson } from '@pifleet/protocol';
import { SimulatorError } from '../errors.js';
import { type CommandApiTarget, signRequest } from './command-load.js';

/** What the telemetry query API holds for a set of things. */
export interface ApiReadback {
  readonly readings: number;
  /** Distinct (bootId, seq) among the readings. */
  readonly batches: number;
}

interface Page {
  readonly items: readonly { readonly bootId: JsonValue | undefined; readonly seq: JsonValue | undefined }[];
  readonly nextToken: string | undefined;
}

/**
 * One page of `GET /things/{thing}/telemetry` (`{items: [{bootId, seq, ...}], nextToken?}`), read
 * from the response text with the depth-bounded parser and own-key lookups; undefined when the
 * text is not such a page. Only what the count needs is read.
 */
export function readPage(text: string): Page | undefined {
  const parsed = parseJson(text);
  if (!parsed.ok || !isJsonObject(parsed.value)) return undefined;
  const items = ownValue(parsed.value, 'items') ?? [];
  const nextToken = ownValue(parsed.value, 'nextToken') ?? undefined;
  if (!Array.isArray(items) || (nextToken !== undefined && typeof nextToken !== 'string')) return undefined;
  return {
    items: items.map((item) =>
      isJsonObject(item)
        ? { bootId: ownValue(item, 'bootId'), seq: ownValue(item, 'seq') }
        : { bootId: undefined, seq: undefined },
    ),
    nextToken,
  };
}

/**
 * Counts every stored reading of `things` in [from, to] through the query API
 * (`GET /things/{thing}/telemetry`, SigV4 `execute-api`), following `nextToken` pages, with
 * `concurrency` things in flight. This is how a run against AWS reads back what DynamoDB holds
 * (API Gateway → the query Lambda), and it works the same against the local core's API.
 */
export async function readBackViaQueryApi(
  api: CommandApiTarget,
  things: readonly string[],
  window: { readonly from: number; readonly to: number },
  concurrency = 8,
): Promise<ApiReadback> {
  let readings = 0;
  const batches = new Set<string>();
  let next = 0;
  const one = async (thing: string) => {
    let token: string | undefined;
    do {
      const url = new URL(`${api.baseUrl.replace(/\/$/, '')}/things/${encodeURIComponent(thing)}/telemetry`);
      url.searchParams.set('from', String(window.from));
      url.searchParams.set('to', String(window.to));
      url.searchParams.set('limit', '1000');
      if (token !== undefined) url.searchParams.set('nextToken', token);
      const headers = await signRequest({ method: 'GET', url, body: '', now: new Date() }, api);
      const res = await fetch(url, { method: 'GET', headers });
      const text = await res.text();
      if (res.status !== 200) {
        throw new SimulatorError(
          'FLEET_READBACK',
          `query API answered ${res.status} for ${thing}: ${text.slice(0, 200)}`,
        );
      }
      const page = readPage(text);
      if (page === undefined) {
        throw new SimulatorError('FLEET_READBACK', `query API answered ${thing} with no page: ${text.slice(0, 200)}`);
      }
      for (const item of page.items) {
        readings += 1;
        batches.add(`${thing}\u0000${item.bootId}\u0000${item.seq}`);
      }
      token = page.nextToken;
    } while (token !== undefined);
  };
  const worker = async () => {
    while (next < things.length) {
      const thing = things[next++] as string;
      await one(thing);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, things.length)) }, worker));
  return { readings, batches: batches.size };
}
