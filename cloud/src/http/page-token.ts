import { invalidRequest } from './errors.js';
import type { ApiRequest } from './server.js';

/**
 * The `nextToken` of the control plane's list operations that page by a store's sort key (jobs,
 * provisioning templates): the key as base64url JSON, opaque to clients. Anything that does not
 * decode to a key of the expected kind is 400 InvalidRequestException, as IoT answers a forged token.
 */
export const encodePageToken = (key: number | string) => Buffer.from(JSON.stringify(key)).toString('base64url');

/** `{ nextToken }` for a page with more after it, `{}` for the last one. */
export const nextTokenOf = (next: number | string | undefined) =>
  next === undefined ? {} : { nextToken: encodePageToken(next) };

export function decodePageToken<K extends 'number' | 'string'>(
  request: ApiRequest,
  kind: K,
): (K extends 'number' ? number : string) | undefined {
  const raw = request.query.get('nextToken');
  if (raw === undefined || raw === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (typeof value !== kind) throw invalidRequest('The nextToken is not valid.');
  return value as K extends 'number' ? number : string;
}
