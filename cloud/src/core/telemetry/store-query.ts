import { type ConnectivityListing, MAX_QUERY_LIMIT, type TelemetryQuery } from '../../ports/telemetry-store.js';
import { InvalidPageTokenError, InvalidTelemetryQueryError } from './errors.js';
import { readingKeyRange } from './keys.js';
import { decodeConnectivityPageToken, decodePageToken } from './page-token.js';

export interface KeyRangePlan {
  /** Inclusive lower bound of the sort key. */
  readonly lower: string;
  /** Inclusive upper bound of the sort key. */
  readonly upper: string;
  /** Continue strictly after this key (from the page token), if any. */
  readonly after: string | undefined;
}

/**
 * Checks a store query and turns it into sort-key bounds, the same for every store.
 * Throws `InvalidTelemetryQueryError` or `InvalidPageTokenError`.
 */
export function planQuery(q: TelemetryQuery): KeyRangePlan {
  checkLimit(q.limit);
  if (!Number.isSafeInteger(q.from) || !Number.isSafeInteger(q.to) || q.from < 0 || q.to < 0) {
    throw new InvalidTelemetryQueryError('from and to must be non-negative integers (ms since the epoch)', {
      from: q.from,
      to: q.to,
    });
  }
  if (q.from > q.to) throw new InvalidTelemetryQueryError('from must not be after to', { from: q.from, to: q.to });
  const { lower, upper } = readingKeyRange(q.from, q.to);
  if (q.nextToken === undefined) return { lower, upper, after: undefined };
  const decoded = decodePageToken(q.nextToken, q);
  if (!decoded.ok) throw new InvalidPageTokenError(decoded.reason);
  return { lower, upper, after: decoded.afterKey };
}

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
    throw new InvalidTelemetryQueryError(`limit must be an integer from 1 to ${MAX_QUERY_LIMIT}`, { limit });
  }
}

/**
 * Checks a connectivity listing, the same for every store: the thing name to continue after
 * (from the token), or undefined for the first page. Throws `InvalidTelemetryQueryError` or
 * `InvalidPageTokenError`.
 */
export function planConnectivityListing(listing: ConnectivityListing): { readonly after: string | undefined } {
  checkLimit(listing.limit);
  if (listing.nextToken === undefined) return { after: undefined };
  const decoded = decodeConnectivityPageToken(listing.nextToken);
  if (!decoded.ok) throw new InvalidPageTokenError(decoded.reason);
  return { after: decoded.afterThingName };
}
