import { isJsonObject, ownValue, parseJson, setOwn } from '@pifleet/protocol';
import type { StatusDetails } from './device-api.js';
import { JOB_LIMITS } from './model.js';

/**
 * Checks of the values a job and its executions are made of, with the patterns and lengths of the
 * IoT API reference (CreateJob, UpdateJobExecution, CancelJob). Each returns the problem as a
 * sentence (undefined when the value is fine), so the control plane can answer it as an
 * InvalidRequestException and the device API as an `InvalidRequest` rejection.
 */

/** `jobId`: "[a-zA-Z0-9_-]+", 1 to 64 characters. */
export const JOB_ID_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/;
/** Thing names: "[a-zA-Z0-9:_-]+", 1 to 128 characters. */
export const THING_NAME_PATTERN = /^[a-zA-Z0-9:_-]{1,128}$/;
const DETAIL_KEY = /^[a-zA-Z0-9:_-]+$/;
/** `[^\p{C}]+`: no control, format, unassigned or private-use characters. */
const NO_CONTROL = /^[^\p{C}]+$/u;
const REASON_CODE = /^[\p{Lu}\p{Nd}_]+$/u;

export function jobIdProblem(jobId: string): string | undefined {
  return JOB_ID_PATTERN.test(jobId)
    ? undefined
    : `jobId '${jobId.slice(0, 80)}' must be 1 to 64 characters of a-z, A-Z, 0-9, '-' and '_'.`;
}

export function thingNameProblem(thingName: string): string | undefined {
  return THING_NAME_PATTERN.test(thingName)
    ? undefined
    : `Thing name '${thingName.slice(0, 140)}' must be 1 to 128 characters of a-z, A-Z, 0-9, ':', '-' and '_'.`;
}

export type Checked<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly problem: string };

/**
 * `statusDetails`: at most 10 pairs, keys "[a-zA-Z0-9:_-]+" of up to 128 characters, values of 1 to
 * 1024 characters without control characters. Keys are data: the copy has them as own keys
 * (`__proto__` included, which IoT's key pattern admits) on an object whose prototype they cannot
 * reach.
 */
export function checkStatusDetails(input: unknown): Checked<StatusDetails> {
  if (!isJsonObject(input)) return { ok: false, problem: 'statusDetails must be an object of strings.' };
  const keys = Object.keys(input);
  if (keys.length > JOB_LIMITS.maxStatusDetails) {
    return {
      ok: false,
      problem: `statusDetails has ${keys.length} entries; at most ${JOB_LIMITS.maxStatusDetails} are allowed.`,
    };
  }
  const out: Record<string, string> = {};
  for (const key of keys) {
    if (key.length > JOB_LIMITS.maxStatusDetailKeyLength || !DETAIL_KEY.test(key)) {
      return {
        ok: false,
        problem: `statusDetails key '${key.slice(0, 140)}' must be 1 to 128 characters of a-z, A-Z, 0-9, ':', '-' and '_'.`,
      };
    }
    const value = ownValue(input as Record<string, unknown>, key);
    if (typeof value !== 'string' || value.length > JOB_LIMITS.maxStatusDetailValueLength || !NO_CONTROL.test(value)) {
      return {
        ok: false,
        problem: `statusDetails value of '${key}' must be a string of 1 to 1024 characters without control characters.`,
      };
    }
    setOwn(out, key, value);
  }
  return { ok: true, value: Object.freeze(out) };
}

/** `stepTimeoutInMinutes`: 1 to 10080, or -1 to cancel the step timer. */
export function stepTimeoutProblem(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (
    typeof value === 'number' &&
    Number.isInteger(value) &&
    (value === -1 || (value >= 1 && value <= JOB_LIMITS.maxTimeoutMinutes))
  ) {
    return undefined;
  }
  return `stepTimeoutInMinutes must be an integer from 1 to ${JOB_LIMITS.maxTimeoutMinutes}, or -1.`;
}

/**
 * A job document: at most 32,768 characters of a JSON object ("A job document is a UTF-8 encoded
 * JSON document"), nested no deeper than the core accepts any outside JSON (MAX_JSON_DEPTH), so
 * nothing that later walks it (a presigner, a device's parser) can be driven into a stack overflow.
 */
export function documentProblem(document: string): string | undefined {
  if (document.length === 0) return 'The job document is empty.';
  if (document.length > JOB_LIMITS.maxDocumentLength) {
    return `The job document is ${document.length} characters; at most ${JOB_LIMITS.maxDocumentLength} are allowed.`;
  }
  const parsed = parseJson(document);
  if (!parsed.ok) return `The job document is not valid JSON: ${parsed.message}.`;
  if (!isJsonObject(parsed.value)) return 'The job document must be a JSON object.';
  return undefined;
}

/**
 * Whether `value` has at most `digits` digits after the decimal point, as IoT's documented
 * examples count them ("10.9 and 10.99, but not 10.999"). A JSON number is a binary double, so
 * `value * 10^digits` is rarely exact: 1.1 * 100 is 110.00000000000001 and 0.29 * 100 is
 * 28.999999999999996 (1,146 of the 10,000 two-decimal percentages up to 100 are off like this), so
 * the product is compared with its nearest integer within a few units in its last place.
 */
export function hasAtMostDecimals(value: number, digits: number): boolean {
  const scaled = value * 10 ** digits;
  // The product's rounding error is a few units in its last place; a third digit is far more.
  return Number.isFinite(scaled) && Math.abs(scaled - Math.round(scaled)) <= 8 * Number.EPSILON * Math.max(1, scaled);
}

export function textProblem(field: string, value: string, max: number): string | undefined {
  if (value.length > max) return `${field} is longer than ${max} characters.`;
  if (value.length > 0 && !NO_CONTROL.test(value)) return `${field} must not contain control characters.`;
  return undefined;
}

export function reasonCodeProblem(value: string): string | undefined {
  if (value.length > JOB_LIMITS.maxReasonCodeLength || !REASON_CODE.test(value)) {
    return 'reasonCode must be 1 to 128 upper-case letters, digits and underscores.';
  }
  return undefined;
}
