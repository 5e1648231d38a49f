import { MAX_QUERY_LIMIT, type TelemetryQuery } from '../../ports/telemetry-store.js';
import { InvalidPageTokenError, InvalidTelemetryQueryError } from './errors.js';
import { readingKeyRange } from './keys.js';
import { decodePageToken } from './page-token.js';

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
  if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > MAX_QUERY_LIMIT) {
    throw new InvalidTelemetryQueryError(`limit must be an integer from 1 to ${MAX_QUERY_LIMIT}`, { limit: q.limit });
  }
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
