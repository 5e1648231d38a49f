import { isJsonObject, ownValue } from '@pifleet/protocol';
import { invalidRequest } from './errors.js';

/**
 * Typed reads of a REST-JSON request body's members, for the control-plane routes that read a body
 * member by member (jobs, provisioning templates): own-key reads (a `__proto__` member is data), a
 * JSON `null` read as absent, and a value of the wrong type refused with 400
 * InvalidRequestException naming the member, as the IoT service does.
 */
export type Body = Readonly<Record<string, unknown>>;

/** `body[name]` when the body has the member itself; a JSON `null` is absent. */
export const field = (body: Body, name: string): unknown => {
  const v = ownValue(body as Record<string, unknown>, name);
  return v === null ? undefined : v;
};

export function str(body: Body, name: string): string | undefined {
  const v = field(body, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalidRequest(`'${name}' must be a string.`);
  return v;
}

export function required(body: Body, name: string): string {
  const v = str(body, name);
  if (v === undefined) throw invalidRequest(`'${name}' is required.`);
  return v;
}

export function bool(body: Body, name: string): boolean | undefined {
  const v = field(body, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw invalidRequest(`'${name}' must be a boolean.`);
  return v;
}

export function num(body: Body, name: string, min: number, max: number, integer: boolean): number | undefined {
  const v = field(body, name);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    throw invalidRequest(`'${name}' must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}.`);
  }
  return v;
}

export function obj(body: Body, name: string): Body | undefined {
  const v = field(body, name);
  if (v === undefined) return undefined;
  if (!isJsonObject(v)) throw invalidRequest(`'${name}' must be an object.`);
  return v;
}

export function list(body: Body, name: string): readonly unknown[] | undefined {
  const v = field(body, name);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw invalidRequest(`'${name}' must be a list.`);
  return v;
}

export function oneOf<T extends string>(value: string | undefined, name: string, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) {
    throw invalidRequest(`'${name}' must be one of ${allowed.join(', ')}.`);
  }
  return value as T;
}
