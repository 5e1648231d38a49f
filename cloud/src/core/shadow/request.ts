import {
  invalidNodeMessage,
  type JsonObject,
  LIMITS,
  MAX_CLIENT_TOKEN_BYTES,
  SHADOW_ERRORS,
  utf8Length,
} from '@pifleet/protocol';
import { type Outcome, reject } from './document.js';
import { hasNullInArray, isJsonObject, nestingDepth } from './json.js';
import { DEFAULT_SHADOW_DOCUMENT_LIMITS, type ShadowDocumentLimits, tooDeepError } from './limits.js';

/** A validated `/update` request. */
export interface ShadowUpdateInput {
  /** `null` clears both sections (the shadow itself stays). */
  readonly state: { readonly desired?: JsonObject | null; readonly reported?: JsonObject | null } | null;
  readonly clientToken?: string;
  readonly version?: number;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function decode(payload: Uint8Array | string): string | undefined {
  if (typeof payload === 'string') return payload;
  try {
    return decoder.decode(payload);
  } catch {
    return undefined;
  }
}

function isValidClientToken(token: unknown): token is string {
  return typeof token === 'string' && utf8Length(token) <= MAX_CLIENT_TOKEN_BYTES;
}

function isValidVersion(version: unknown): version is number {
  return typeof version === 'number' && Number.isSafeInteger(version) && version >= 0;
}

/**
 * Validates an `/update` request document in the order IoT reports problems: encoding, JSON,
 * clientToken, version, then `state` and its sections (type, unknown nodes, nulls in arrays,
 * nesting depth). Top-level nodes other than `state`, `clientToken` and `version` are ignored
 * ("JSON content outside of those sections is ignored").
 */
export function parseUpdateRequest(
  payload: Uint8Array | string,
  limits: Pick<ShadowDocumentLimits, 'maxDepth'> = DEFAULT_SHADOW_DOCUMENT_LIMITS,
): Outcome<ShadowUpdateInput> {
  const { maxDepth } = limits;
  if (payload.length > LIMITS.maxMessageBytes) return { ok: false, error: reject(SHADOW_ERRORS.payloadTooLarge) };
  const text = decode(payload);
  if (text === undefined) return { ok: false, error: reject(SHADOW_ERRORS.unsupportedEncoding) };
  // Parsed whole (V8's JSON.parse does not recurse, so any depth parses) so that a document too
  // deep still has its clientToken read and echoed: the device SDK matches a rejection to its
  // request by that token. The depth is then measured without recursion, below.
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    // An engine that parses recursively throws RangeError on very deep input: that is nesting, not syntax.
    return { ok: false, error: reject(err instanceof RangeError ? tooDeepError(maxDepth) : SHADOW_ERRORS.invalidJson) };
  }
  if (!isJsonObject(doc)) return { ok: false, error: reject(SHADOW_ERRORS.invalidJson) };

  let clientToken: string | undefined;
  if (doc.clientToken !== undefined) {
    if (!isValidClientToken(doc.clientToken)) return { ok: false, error: reject(SHADOW_ERRORS.invalidClientToken) };
    clientToken = doc.clientToken;
  }
  const fail = (error: { code: 400; message: string }): Outcome<ShadowUpdateInput> => ({
    ok: false,
    error: reject(error, clientToken),
  });

  let version: number | undefined;
  if (doc.version !== undefined) {
    if (!isValidVersion(doc.version)) return fail(SHADOW_ERRORS.invalidVersion);
    version = doc.version;
  }

  if (!Object.hasOwn(doc, 'state')) return fail(SHADOW_ERRORS.missingState);
  const rawState = doc.state;
  let state: ShadowUpdateInput['state'];
  if (rawState === null) {
    state = null;
  } else if (!isJsonObject(rawState)) {
    return fail(SHADOW_ERRORS.stateNotObject);
  } else {
    for (const key of Object.keys(rawState)) {
      if (key !== 'desired' && key !== 'reported') return fail({ code: 400, message: invalidNodeMessage(key) });
    }
    const { desired, reported } = rawState;
    if (desired !== undefined && desired !== null && !isJsonObject(desired))
      return fail(SHADOW_ERRORS.desiredNotObject);
    if (reported !== undefined && reported !== null && !isJsonObject(reported)) {
      return fail(SHADOW_ERRORS.reportedNotObject);
    }
    for (const section of [desired, reported]) {
      if (!isJsonObject(section)) continue;
      // "Arrays can't have null values" (Device Shadow service documents, Array values).
      if (hasNullInArray(section)) return fail(SHADOW_ERRORS.invalidJson);
      // Levels below the section: {"desired": {"one": {"two": 1}}} has 2 (the section itself is not a level).
      if (nestingDepth(section, maxDepth + 1) - 1 > maxDepth) return fail(tooDeepError(maxDepth));
    }
    const parsed: { desired?: JsonObject | null; reported?: JsonObject | null } = {};
    if (desired !== undefined) parsed.desired = desired as JsonObject | null;
    if (reported !== undefined) parsed.reported = reported as JsonObject | null;
    state = parsed;
  }

  const out: { state: ShadowUpdateInput['state']; clientToken?: string; version?: number } = { state };
  if (clientToken !== undefined) out.clientToken = clientToken;
  if (version !== undefined) out.version = version;
  return { ok: true, value: out };
}

/**
 * The clientToken of a `/get` or `/delete` request. IoT ignores the rest of the payload ("The
 * content of the message is ignored"); an empty payload or one that is not a JSON object carries no
 * token. A token that is not a string of at most 64 bytes is rejected.
 */
export function parseTokenRequest(payload: Uint8Array | string): Outcome<{ clientToken?: string }> {
  const text = decode(payload);
  if (text === undefined || text.trim() === '') return { ok: true, value: {} };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // Not JSON, or (on an engine that parses recursively) too deep to parse: no token.
    return { ok: true, value: {} };
  }
  if (!isJsonObject(doc) || doc.clientToken === undefined) return { ok: true, value: {} };
  if (!isValidClientToken(doc.clientToken)) return { ok: false, error: reject(SHADOW_ERRORS.invalidClientToken) };
  return { ok: true, value: { clientToken: doc.clientToken } };
}

/** Best-effort clientToken of any request payload, for rejections raised before parsing (429). */
export function peekClientToken(payload: Uint8Array | string): string | undefined {
  const parsed = parseTokenRequest(payload);
  return parsed.ok ? parsed.value.clientToken : undefined;
}
