import {
  type JsonObject,
  type JsonValue,
  noShadowMessage,
  ownValue,
  SHADOW_ERRORS,
  type ShadowErrorCode,
  type ShadowMetadataNode,
  setOwn,
} from '@pifleet/protocol';
import { cloneJson, isJsonObject, jsonByteLength, jsonEqual } from './json.js';
import { DEFAULT_SHADOW_DOCUMENT_LIMITS, type ShadowDocumentLimits } from './limits.js';
import type { ShadowUpdateInput } from './request.js';

/**
 * Device Shadow semantics as the AWS IoT Developer Guide defines them ("Device Shadow service
 * documents", "Interacting with shadows"). Pure: the caller passes the stored shadow and the time,
 * and gets back the next stored shadow plus every message to send.
 *
 * Every key here comes from a device or an operator, and IoT treats `__proto__`, `constructor`
 * and `prototype` as ordinary keys: they are read with `ownValue` (never a member of
 * `Object.prototype`) and written with `setOwn` (never the `__proto__` setter). A merge that did
 * `state[key]` for `__proto__` once wrote a device's keys into `Object.prototype`.
 */

export type MetadataObject = { [key: string]: ShadowMetadataNode };

export interface ShadowSections {
  desired?: JsonObject;
  reported?: JsonObject;
}

export interface ShadowMetadataSections {
  desired?: MetadataObject;
  reported?: MetadataObject;
}

/** A shadow as the store keeps it. */
export interface StoredShadow {
  readonly thingName: string;
  /** Undefined for the classic (unnamed) shadow. */
  readonly shadowName: string | undefined;
  /**
   * The version of the current document, or of the last one before a delete: a shadow created
   * again after a delete continues from it ("Deleting a shadow does not reset its version number").
   */
  readonly version: number;
  /** False after a delete: the shadow does not exist, only its version counter is kept. */
  readonly exists: boolean;
  readonly state: ShadowSections;
  readonly metadata: ShadowMetadataSections;
}

/** A rejection with IoT's code and message; `clientToken` is echoed when the request had a valid one. */
export interface ShadowRejection {
  readonly code: ShadowErrorCode;
  readonly message: string;
  readonly clientToken?: string;
}

export type Outcome<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: ShadowRejection };

export function reject(error: { code: ShadowErrorCode; message: string }, clientToken?: string): ShadowRejection {
  return clientToken === undefined
    ? { code: error.code, message: error.message }
    : { code: error.code, message: error.message, clientToken };
}

/** Payload of every `/rejected` topic: `{code, message, timestamp, clientToken?}`. */
export function rejectedPayload(rejection: ShadowRejection, nowMs: number): JsonObject {
  return withToken(
    { code: rejection.code, message: rejection.message, timestamp: epochSeconds(nowMs) },
    rejection.clientToken,
  );
}

/** Shadow timestamps are whole seconds since the epoch. */
export function epochSeconds(nowMs: number): number {
  return Math.floor(nowMs / 1000);
}

function withToken<T extends JsonObject>(body: T, clientToken: string | undefined): T {
  if (clientToken !== undefined) (body as JsonObject).clientToken = clientToken;
  return body;
}

/** Metadata for a value written at `ts`: leaves get `{timestamp}`, objects and arrays mirror their shape. */
export function metadataFor(value: JsonValue, ts: number): ShadowMetadataNode {
  if (Array.isArray(value)) return value.map((item) => metadataFor(item, ts));
  if (isJsonObject(value)) {
    const out: MetadataObject = {};
    for (const [k, v] of Object.entries(value)) setOwn(out, k, metadataFor(v, ts));
    return out;
  }
  return { timestamp: ts };
}

/**
 * Merges `patch` into `state` (and `meta`) in place: `null` deletes a key, objects merge
 * recursively, anything else (primitives, arrays) replaces the old value whole.
 */
function mergeInto(state: JsonObject, meta: MetadataObject, patch: JsonObject, ts: number): void {
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) {
      delete state[key];
      delete meta[key];
    } else if (isJsonObject(value)) {
      let child = ownValue(state, key);
      let childMeta = ownValue(meta, key);
      if (!isJsonObject(child) || !isMetadataObject(childMeta)) {
        child = {};
        childMeta = {};
        setOwn(state, key, child);
        setOwn(meta, key, childMeta);
      }
      mergeInto(child, childMeta, value, ts);
    } else {
      setOwn(state, key, cloneJson(value));
      setOwn(meta, key, metadataFor(value, ts));
    }
  }
}

function isMetadataObject(node: ShadowMetadataNode | undefined): node is MetadataObject {
  return node !== undefined && !Array.isArray(node) && typeof node === 'object';
}

export interface DeltaPart {
  readonly state: JsonObject;
  readonly metadata: MetadataObject;
}

/**
 * The delta: every desired key whose value differs from reported (missing in reported counts as
 * different), recursing into objects so the path to a changed leaf is kept, comparing arrays
 * whole. Its metadata is the desired metadata of those keys.
 */
export function computeDelta(
  desired: JsonObject | undefined,
  reported: JsonObject | undefined,
  desiredMeta: MetadataObject | undefined,
): DeltaPart {
  const state: JsonObject = {};
  const metadata: MetadataObject = {};
  if (desired === undefined) return { state, metadata };
  for (const [key, want] of Object.entries(desired)) {
    const have = reported === undefined ? undefined : ownValue(reported, key);
    const wantMeta = desiredMeta === undefined ? undefined : ownValue(desiredMeta, key);
    if (isJsonObject(want) && isJsonObject(have)) {
      const sub = computeDelta(want, have, isMetadataObject(wantMeta) ? wantMeta : undefined);
      if (Object.keys(sub.state).length > 0) {
        setOwn(state, key, sub.state);
        setOwn(metadata, key, sub.metadata);
      }
    } else if (have === undefined || !jsonEqual(want, have)) {
      setOwn(state, key, cloneJson(want));
      if (wantMeta !== undefined) setOwn(metadata, key, structuredClone(wantMeta));
    }
  }
  return { state, metadata };
}

/** `previous`/`current` of `/update/documents`. */
export interface ShadowSnapshot {
  state: ShadowSections;
  metadata: ShadowMetadataSections;
  version: number;
}

function snapshot(shadow: StoredShadow): ShadowSnapshot {
  return { state: structuredClone(shadow.state), metadata: structuredClone(shadow.metadata), version: shadow.version };
}

/** Every message an accepted update produces, as JSON objects ready to serialize. */
export interface UpdateResult {
  readonly next: StoredShadow;
  /** `/update/accepted` (and the UpdateThingShadow response body). */
  readonly accepted: JsonObject;
  /** `/update/documents`. */
  readonly documents: JsonObject;
  /** `/update/delta`, only when the delta is not empty. */
  readonly delta: JsonObject | undefined;
}

/** Applies a validated update request to the stored shadow (undefined: never created). */
export function applyUpdate(
  thingName: string,
  shadowName: string | undefined,
  current: StoredShadow | undefined,
  request: ShadowUpdateInput,
  nowMs: number,
  limits: Pick<ShadowDocumentLimits, 'maxDocumentBytes'> = DEFAULT_SHADOW_DOCUMENT_LIMITS,
): Outcome<UpdateResult> {
  const token = request.clientToken;
  const exists = current?.exists === true;
  const lastVersion = current?.version ?? 0;
  if (request.version !== undefined && request.version !== lastVersion) {
    return { ok: false, error: reject(SHADOW_ERRORS.versionConflict, token) };
  }
  const ts = epochSeconds(nowMs);
  const state: ShadowSections = exists && current ? structuredClone(current.state) : {};
  const metadata: ShadowMetadataSections = exists && current ? structuredClone(current.metadata) : {};

  const requestState = request.state;
  for (const section of ['desired', 'reported'] as const) {
    // `"state": null` clears both sections; `"desired": null` clears one.
    const patch = requestState === null ? null : requestState[section];
    if (patch === undefined) continue;
    if (patch === null) {
      delete state[section];
      delete metadata[section];
      continue;
    }
    const target = state[section] ?? {};
    const targetMeta = metadata[section] ?? {};
    mergeInto(target, targetMeta, patch, ts);
    if (Object.keys(target).length === 0) {
      delete state[section];
      delete metadata[section];
    } else {
      state[section] = target;
      metadata[section] = targetMeta;
    }
  }

  if (jsonByteLength(state as JsonObject) > limits.maxDocumentBytes) {
    return { ok: false, error: reject(SHADOW_ERRORS.payloadTooLarge, token) };
  }

  const version = lastVersion + 1;
  const next: StoredShadow = { thingName, shadowName, version, exists: true, state, metadata };

  const accepted = withToken(acceptedBody(requestState, ts, version), token);

  const documents = withToken(
    {
      previous: exists && current ? (snapshot(current) as unknown as JsonObject) : null,
      current: snapshot(next) as unknown as JsonObject,
      timestamp: ts,
    },
    token,
  );

  const delta = computeDelta(state.desired, state.reported, metadata.desired);
  const deltaMessage =
    Object.keys(delta.state).length > 0
      ? withToken(
          { version, timestamp: ts, state: delta.state, metadata: delta.metadata as unknown as JsonObject },
          token,
        )
      : undefined;

  return { ok: true, value: { next, accepted, documents, delta: deltaMessage } };
}

/**
 * `/update/accepted` (and the UpdateThingShadow response): the request's state echoed, with a
 * metadata timestamp for every value it wrote. For `"state": null`, which empties the shadow,
 * IoT Core echoes `"state": null` and carries no metadata (there is no value to stamp): the
 * accepted document is `{"state": null, "version", "timestamp"[, "clientToken"]}`, as the
 * Greengrass shadow manager's sync of a cleared cloud shadow receives it (it had to learn to
 * take `"state": null`, aws-greengrass-shadow-manager#196) and as the Python device SDK's shadow
 * sample handles it (a `None` state after clearing, aws-iot-device-sdk-python-v2#268).
 */
function acceptedBody(requestState: ShadowUpdateInput['state'], ts: number, version: number): JsonObject {
  if (requestState === null) return { state: null, version, timestamp: ts };
  const state: JsonObject = {};
  const metadata: JsonObject = {};
  for (const section of ['desired', 'reported'] as const) {
    const patch = requestState[section];
    if (patch === undefined) continue;
    state[section] = patch === null ? null : cloneJson(patch);
    metadata[section] = patch === null ? { timestamp: ts } : (metadataFor(patch, ts) as JsonObject);
  }
  return { state, metadata, version, timestamp: ts };
}

function notFound(thingName: string, shadowName: string | undefined, token: string | undefined): ShadowRejection {
  return reject({ code: 404, message: noShadowMessage(shadowName ?? thingName) }, token);
}

/** `/get/accepted` (and the GetThingShadow body): the whole document including the delta. */
export function getDocument(
  thingName: string,
  shadowName: string | undefined,
  current: StoredShadow | undefined,
  clientToken: string | undefined,
  nowMs: number,
): Outcome<JsonObject> {
  if (!current?.exists) return { ok: false, error: notFound(thingName, shadowName, clientToken) };
  const state: JsonObject = structuredClone(current.state) as JsonObject;
  const metadata: JsonObject = structuredClone(current.metadata) as JsonObject;
  const delta = computeDelta(current.state.desired, current.state.reported, current.metadata.desired);
  if (Object.keys(delta.state).length > 0) {
    state.delta = delta.state;
    metadata.delta = delta.metadata as unknown as JsonObject;
  }
  return {
    ok: true,
    value: withToken({ state, metadata, version: current.version, timestamp: epochSeconds(nowMs) }, clientToken),
  };
}

/** Deletes a shadow: the next stored record keeps the version so a new document continues from it. */
export function deleteDocument(
  thingName: string,
  shadowName: string | undefined,
  current: StoredShadow | undefined,
  clientToken: string | undefined,
  nowMs: number,
): Outcome<{ next: StoredShadow; accepted: JsonObject }> {
  if (!current?.exists) return { ok: false, error: notFound(thingName, shadowName, clientToken) };
  const next: StoredShadow = {
    thingName,
    shadowName,
    version: current.version,
    exists: false,
    state: {},
    metadata: {},
  };
  return {
    ok: true,
    value: { next, accepted: withToken({ version: current.version, timestamp: epochSeconds(nowMs) }, clientToken) },
  };
}
