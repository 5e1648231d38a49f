import { isValidThingName } from '@pifleet/protocol';
import type { TelemetryQuery } from '../../ports/telemetry-store.js';
import { READING_KEY_PREFIX, readingKeyRange } from './keys.js';

/**
 * Page tokens: base64url of `{"v":1,"t":<thingName>,"k":<sort key of the last item returned>}`.
 * The next page starts strictly after `k`. A token is bound to its thing and must fall inside
 * the query's time range, so a token from another query is rejected rather than silently
 * returning someone else's position. The same token works on every store (same keys).
 */
interface TokenBody {
  readonly v: 1;
  readonly t: string;
  readonly k: string;
}

export function encodePageToken(thingName: string, lastKey: string): string {
  const body: TokenBody = { v: 1, t: thingName, k: lastKey };
  return Buffer.from(JSON.stringify(body), 'utf8').toString('base64url');
}

export type DecodedPageToken =
  | { readonly ok: true; readonly afterKey: string }
  | { readonly ok: false; readonly reason: string };

/** Checks a token against the query it comes back with; returns the key to continue after. */
export function decodePageToken(
  token: string,
  query: Pick<TelemetryQuery, 'thingName' | 'from' | 'to'>,
): DecodedPageToken {
  if (token.length === 0 || token.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(token)) {
    return { ok: false, reason: 'not a token this API issued' };
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'not a token this API issued' };
  }
  if (!isTokenBody(body)) return { ok: false, reason: 'not a token this API issued' };
  if (body.t !== query.thingName) return { ok: false, reason: 'token belongs to another thing' };
  const { lower, upper } = readingKeyRange(query.from, query.to);
  if (body.k < lower || body.k > upper) return { ok: false, reason: 'token lies outside the requested time range' };
  return { ok: true, afterKey: body.k };
}

function isTokenBody(x: unknown): x is TokenBody {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as Record<string, unknown>;
  return o.v === 1 && typeof o.t === 'string' && typeof o.k === 'string' && o.k.startsWith(READING_KEY_PREFIX);
}

/**
 * Page tokens of the fleet's connectivity listing: base64url of `{"v":1,"c":<last thing name>}`;
 * the next page starts strictly after that name. A query token (`t`/`k`) is not one, nor the
 * reverse, and the name must be a thing name (the presence handler stores no other).
 */
export function encodeConnectivityPageToken(lastThingName: string): string {
  return Buffer.from(JSON.stringify({ v: 1, c: lastThingName }), 'utf8').toString('base64url');
}

export function decodeConnectivityPageToken(token: string): DecodedConnectivityPageToken {
  if (token.length === 0 || token.length > 2048 || !/^[A-Za-z0-9_-]+$/.test(token)) {
    return { ok: false, reason: 'not a token this listing issued' };
  }
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'not a token this listing issued' };
  }
  if (typeof body !== 'object' || body === null) return { ok: false, reason: 'not a token this listing issued' };
  const o = body as Record<string, unknown>;
  if (o.v !== 1 || !isValidThingName(o.c)) return { ok: false, reason: 'not a token this listing issued' };
  return { ok: true, afterThingName: o.c };
}

export type DecodedConnectivityPageToken =
  | { readonly ok: true; readonly afterThingName: string }
  | { readonly ok: false; readonly reason: string };
