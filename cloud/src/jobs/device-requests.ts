import {
  DEVICE_SETTABLE_STATUSES,
  isJsonObject,
  type JsonObject,
  type JsonValue,
  jsonValueDepth,
  MAX_CLIENT_TOKEN_BYTES,
  MAX_JSON_DEPTH,
  ownValue,
  parseJson,
  tooDeepMessage,
  utf8Length,
} from '@pifleet/protocol';
import {
  type DescribeRequest,
  type DeviceJobExecution,
  type DeviceSettableStatus,
  type JobExecutionState,
  type JobExecutionSummary,
  JobsDeviceError,
  type StartNextRequest,
  type StatusDetails,
  type UpdateRequest,
} from './device-api.js';

/**
 * The request fields and answer bodies shared by the two device transports of the jobs service
 * (MQTT `$aws/things/{thing}/jobs/…` and the HTTP `iot-jobs-data` plane), as the "Jobs device MQTT
 * API operations" and the IoT API Reference (iot-jobs-data) spell them. Pure: no I/O.
 *
 * Requests are hostile: fields are read as own members only (a `__proto__` key is data), their
 * types are checked here, and their values (statusDetails limits, the step timeout's range) by the
 * service. Times go out in whole seconds since the epoch, as both wires carry them.
 */

/** Milliseconds since the epoch → the whole seconds the jobs wires carry. */
export function epochSeconds(ms: number): number {
  return Math.floor(ms / 1000);
}

const DEVICE_SETTABLE: ReadonlySet<string> = new Set(DEVICE_SETTABLE_STATUSES);

const invalid = (message: string) => new JobsDeviceError('InvalidRequest', message);

/** A field of a request object: absent when missing or JSON null. */
function field(doc: JsonObject, name: string): JsonValue | undefined {
  const value = ownValue(doc, name);
  return value === null ? undefined : value;
}

function integer(doc: JsonObject, name: string, min: number): number | undefined {
  const value = field(doc, name);
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw invalid(`${name} must be an integer${min === 0 ? ' of 0 or more' : min === 1 ? ' of 1 or more' : ''}.`);
  }
  return value;
}

function boolean(doc: JsonObject, name: string): boolean | undefined {
  const value = field(doc, name);
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw invalid(`${name} must be true or false.`);
  return value;
}

/**
 * statusDetails as an object of strings; its count, key pattern and value lengths are the
 * service's to check. The copy keeps every key as an own member, `__proto__` included.
 */
function statusDetails(doc: JsonObject): StatusDetails | undefined {
  const value = field(doc, 'statusDetails');
  if (value === undefined) return undefined;
  if (!isJsonObject(value)) throw invalid('statusDetails must be an object of string values.');
  const out: Record<string, string> = {};
  for (const key of Object.keys(value)) {
    const v = ownValue(value, key);
    if (typeof v !== 'string') throw invalid(`statusDetails.${key.slice(0, 128)} must be a string.`);
    Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** StartNextPendingJobExecution's fields (MQTT payload or HTTP body). */
export function startNextRequest(doc: JsonObject): StartNextRequest {
  const details = statusDetails(doc);
  // -1 is the service's to accept or refuse (it clears a step timer); any other integer reaches it.
  const step = integer(doc, 'stepTimeoutInMinutes', Number.MIN_SAFE_INTEGER);
  return {
    ...(details === undefined ? {} : { statusDetails: details }),
    ...(step === undefined ? {} : { stepTimeoutInMinutes: step }),
  };
}

/** DescribeJobExecution's fields. */
export function describeRequest(doc: JsonObject): DescribeRequest {
  const executionNumber = integer(doc, 'executionNumber', 0);
  const includeJobDocument = boolean(doc, 'includeJobDocument');
  return {
    ...(executionNumber === undefined ? {} : { executionNumber }),
    ...(includeJobDocument === undefined ? {} : { includeJobDocument }),
  };
}

/** UpdateJobExecution's fields: `status` is required and must be one a device may set. */
export function updateRequest(doc: JsonObject): UpdateRequest {
  const status = field(doc, 'status');
  if (status === undefined) throw invalid('status is required: IN_PROGRESS, SUCCEEDED, FAILED or REJECTED.');
  if (typeof status !== 'string' || !DEVICE_SETTABLE.has(status)) {
    throw invalid(
      `status must be IN_PROGRESS, SUCCEEDED, FAILED or REJECTED, not ${JSON.stringify(status).slice(0, 64)}.`,
    );
  }
  const details = statusDetails(doc);
  const step = integer(doc, 'stepTimeoutInMinutes', Number.MIN_SAFE_INTEGER);
  const expectedVersion = integer(doc, 'expectedVersion', 0);
  const executionNumber = integer(doc, 'executionNumber', 0);
  const includeJobExecutionState = boolean(doc, 'includeJobExecutionState');
  const includeJobDocument = boolean(doc, 'includeJobDocument');
  return {
    status: status as DeviceSettableStatus,
    ...(details === undefined ? {} : { statusDetails: details }),
    ...(step === undefined ? {} : { stepTimeoutInMinutes: step }),
    ...(expectedVersion === undefined ? {} : { expectedVersion }),
    ...(executionNumber === undefined ? {} : { executionNumber }),
    ...(includeJobExecutionState === undefined ? {} : { includeJobExecutionState }),
    ...(includeJobDocument === undefined ? {} : { includeJobDocument }),
  };
}

export type RequestDocument =
  | { readonly ok: true; readonly doc: JsonObject; readonly clientToken: string | undefined }
  | { readonly ok: false; readonly error: JobsDeviceError; readonly clientToken: string | undefined };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * An MQTT request payload as a JSON object, its `clientToken` read first so that every later
 * refusal can echo it (the device SDK matches a rejection to its request by that token; a request
 * nested too deep still gets its answer). Not UTF-8 or not JSON: InvalidJson ("could not be
 * interpreted as valid UTF-8-encoded JSON"; an empty payload is not JSON either). Valid JSON that is
 * not an object, a clientToken that is not a string of at most 64 bytes, or nesting past
 * MAX_JSON_DEPTH: InvalidRequest.
 */
export function parseRequestPayload(payload: Uint8Array): RequestDocument {
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return fail(new JobsDeviceError('InvalidJson', 'The request payload is not valid UTF-8.'), undefined);
  }
  // V8's JSON.parse does not recurse, so a payload of any depth (within the broker's 128 KB)
  // parses; the depth is measured below, without recursion, once the clientToken is known.
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch (err) {
    if (err instanceof RangeError) return fail(invalid(tooDeepMessage(MAX_JSON_DEPTH)), undefined);
    return fail(new JobsDeviceError('InvalidJson', 'The request payload is not valid JSON.'), undefined);
  }
  if (!isJsonObject(value)) return fail(invalid('The request payload must be a JSON object.'), undefined);
  const token = field(value, 'clientToken');
  if (
    token !== undefined &&
    (typeof token !== 'string' || token === '' || utf8Length(token) > MAX_CLIENT_TOKEN_BYTES)
  ) {
    return fail(invalid(`clientToken must be a string of 1 to ${MAX_CLIENT_TOKEN_BYTES} bytes.`), undefined);
  }
  const clientToken = token as string | undefined;
  if (jsonValueDepth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH)
    return fail(invalid(tooDeepMessage(MAX_JSON_DEPTH)), clientToken);
  return { ok: true, doc: value, clientToken };
}

function fail(error: JobsDeviceError, clientToken: string | undefined): RequestDocument {
  return { ok: false, error, clientToken };
}

/**
 * An HTTP request body as a JSON object (empty: `{}`, as the SDK sends no body when no field is
 * set). Bad JSON, a non-object or nesting past MAX_JSON_DEPTH: InvalidRequest.
 */
export function parseRequestBody(body: Uint8Array): JsonObject {
  if (body.length === 0) return {};
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw invalid('The request body is not valid UTF-8.');
  }
  const parsed = parseJson(text);
  if (!parsed.ok) throw invalid(parsed.reason === 'depth' ? parsed.message : 'The request body is not valid JSON.');
  if (!isJsonObject(parsed.value)) throw invalid('The request body must be a JSON object.');
  return parsed.value;
}

// ---- answers ---------------------------------------------------------------------------------

/** How a wire carries the job document: MQTT as the JSON object itself, HTTP as its text. */
export type DocumentForm = 'object' | 'string';

/**
 * The document as MQTT carries it: the JSON object (AWS's notify-next examples and the device
 * SDK's `jobDocument?: object`). The service stores only documents that parse as JSON objects;
 * one that did not would go out as its text rather than be lost.
 */
export function documentBody(document: string, form: DocumentForm): JsonValue {
  if (form === 'string') return document;
  const parsed = parseJson(document);
  return parsed.ok ? parsed.value : document;
}

/** JobExecution (iot-jobs-data): times in seconds; absent fields left out. */
export function executionBody(e: DeviceJobExecution, form: DocumentForm): JsonObject {
  const out: JsonObject = {
    jobId: e.jobId,
    thingName: e.thingName,
    status: e.status,
    queuedAt: epochSeconds(e.queuedAt),
    lastUpdatedAt: epochSeconds(e.lastUpdatedAt),
    versionNumber: e.versionNumber,
    executionNumber: e.executionNumber,
  };
  if (e.statusDetails !== undefined) out.statusDetails = { ...e.statusDetails };
  if (e.startedAt !== undefined) out.startedAt = epochSeconds(e.startedAt);
  if (e.approximateSecondsBeforeTimedOut !== undefined) {
    out.approximateSecondsBeforeTimedOut = e.approximateSecondsBeforeTimedOut;
  }
  if (e.jobDocument !== undefined) out.jobDocument = documentBody(e.jobDocument, form);
  return out;
}

/** JobExecutionSummary: times in seconds. */
export function summaryBody(s: JobExecutionSummary): JsonObject {
  return {
    jobId: s.jobId,
    queuedAt: epochSeconds(s.queuedAt),
    ...(s.startedAt === undefined ? {} : { startedAt: epochSeconds(s.startedAt) }),
    lastUpdatedAt: epochSeconds(s.lastUpdatedAt),
    versionNumber: s.versionNumber,
    executionNumber: s.executionNumber,
  };
}

/** JobExecutionState. */
export function stateBody(s: JobExecutionState): JsonObject {
  return {
    status: s.status,
    ...(s.statusDetails === undefined ? {} : { statusDetails: { ...s.statusDetails } }),
    versionNumber: s.versionNumber,
  };
}

/** What the device transports answer for anything the service throws that is not a JobsDeviceError. */
export function internalError(): JobsDeviceError {
  return new JobsDeviceError('InternalError', 'An internal error occurred.');
}
