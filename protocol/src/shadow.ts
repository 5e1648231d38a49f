/**
 * Device Shadow documents and responses as AWS IoT Core defines them
 * (AWS IoT Developer Guide: "Device Shadow service documents", "Device Shadow error messages").
 */

export type JsonPrimitive = string | number | boolean | null;
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Metadata mirrors the state's shape; every leaf is `{ timestamp }` (seconds since the epoch). */
export type ShadowMetadataLeaf = { timestamp: number };
export type ShadowMetadataNode = ShadowMetadataLeaf | { [key: string]: ShadowMetadataNode } | ShadowMetadataNode[];

export interface ShadowState<D = JsonObject, R = JsonObject> {
  desired?: D | null;
  reported?: R | null;
  delta?: JsonObject;
}

/** Request document published to `/update` (or sent to UpdateThingShadow). */
export interface ShadowUpdateRequest<D = JsonObject, R = JsonObject> {
  state: { desired?: D | null; reported?: R | null } | null;
  clientToken?: string;
  version?: number;
}

/** Request document published to `/get` or `/delete`. */
export interface ShadowRequest {
  clientToken?: string;
  version?: number;
}

/** A shadow document as `/get/accepted` returns it. */
export interface ShadowDocument<D = JsonObject, R = JsonObject> {
  state: ShadowState<D, R>;
  metadata: { desired?: { [key: string]: ShadowMetadataNode }; reported?: { [key: string]: ShadowMetadataNode } };
  version: number;
  timestamp: number;
  clientToken?: string;
}

/** Payload of `/update/accepted`: the request's state with metadata for the keys it set. */
export interface ShadowUpdateAccepted {
  state: { desired?: JsonObject | null; reported?: JsonObject | null };
  metadata: { desired?: { [key: string]: ShadowMetadataNode }; reported?: { [key: string]: ShadowMetadataNode } };
  version: number;
  timestamp: number;
  clientToken?: string;
}

/** Payload of `/update/delta`. */
export interface ShadowDeltaEvent {
  state: JsonObject;
  metadata: { [key: string]: ShadowMetadataNode };
  version: number;
  timestamp: number;
  clientToken?: string;
}

/** One side of `/update/documents`. */
export interface ShadowDocumentSnapshot {
  state: { desired?: JsonObject; reported?: JsonObject };
  metadata: { desired?: { [key: string]: ShadowMetadataNode }; reported?: { [key: string]: ShadowMetadataNode } };
  version: number;
}

/** Payload of `/update/documents`. `previous` is null for a shadow's first update after creation or deletion. */
export interface ShadowDocumentsEvent {
  previous: ShadowDocumentSnapshot | null;
  current: ShadowDocumentSnapshot;
  timestamp: number;
  clientToken?: string;
}

/** Payload of `/delete/accepted`. */
export interface ShadowDeleteAccepted {
  version: number;
  timestamp: number;
  clientToken?: string;
}

/** Payload of every `/rejected` topic. */
export interface ShadowErrorResponse {
  code: ShadowErrorCode;
  message: string;
  timestamp?: number;
  clientToken?: string;
}

export type ShadowErrorCode = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 500 | 503;

/** The messages IoT Core uses in shadow error responses, by case. */
export const SHADOW_ERRORS = {
  invalidJson: { code: 400, message: 'Invalid JSON' },
  missingState: { code: 400, message: 'Missing required node: state' },
  stateNotObject: { code: 400, message: 'State node must be an object' },
  desiredNotObject: { code: 400, message: 'Desired node must be an object' },
  reportedNotObject: { code: 400, message: 'Reported node must be an object' },
  invalidVersion: { code: 400, message: 'Invalid version' },
  invalidClientToken: { code: 400, message: 'Invalid clientToken' },
  tooDeep: { code: 400, message: 'JSON contains too many levels of nesting; maximum is 6' },
  invalidNode: { code: 400, message: 'State contains an invalid node' },
  unauthorized: { code: 401, message: 'Unauthorized' },
  forbidden: { code: 403, message: 'Forbidden' },
  thingNotFound: { code: 404, message: 'Thing not found' },
  versionConflict: { code: 409, message: 'Version conflict' },
  payloadTooLarge: { code: 413, message: 'The payload exceeds the maximum size allowed' },
  unsupportedEncoding: { code: 415, message: 'Unsupported documented encoding; supported encoding is UTF-8' },
  tooManyRequests: { code: 429, message: 'Too Many Requests' },
  internal: { code: 500, message: 'Internal service failure' },
} as const satisfies Record<string, { code: ShadowErrorCode; message: string }>;

/** The 404 message for a missing shadow. */
export function noShadowMessage(shadowName: string): string {
  return `No shadow exists with name: '${shadowName}'`;
}

/** A client token is at most 64 bytes (IoT answers 400 "Invalid clientToken" above that). */
export const MAX_CLIENT_TOKEN_BYTES = 64;

/**
 * The 400 message for a node inside `state` other than `desired` and `reported`; IoT names the
 * node, for example `State contains an invalid node: 'delta'`.
 */
export function invalidNodeMessage(node: string): string {
  return `${SHADOW_ERRORS.invalidNode.message}: '${node}'`;
}
