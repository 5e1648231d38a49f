import type { PreProvisioningHookEvent, PreProvisioningHookResult } from '@pifleet/protocol';
import { CloudError } from '../errors.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Env, HandlerConfigError, lambdaLogger, lazyHandler } from './lambda-env.js';

/**
 * pifleet's default pre-provisioning hook: the Lambda a fleet provisioning template names in AWS,
 * and the function the local core calls in process for a template whose hook `targetArn` names
 * {@link PROVISIONING_HOOK_FUNCTION_NAME}. IoT calls it on every RegisterThing with the device's
 * parameters; provisioning goes on only when it answers `allowProvisioning: true`.
 *
 * Policy, in order (the first failure denies, with its reason logged):
 *
 * 1. `parameters.SerialNumber` is 1–64 characters of `[0-9A-Za-z_-]` ({@link SERIAL_NUMBER_PATTERN}):
 *    every such string is safe inside the template's thing name `pi-<serial>` (a thing name is
 *    1–128 characters of `[a-zA-Z0-9:_-]`), and a Pi's serial (16 hex digits) fits. It is
 *    lower-cased, so `ABC` and `abc` are one device and one thing, whatever case a device sends.
 * 2. If an allow-list is configured, the lower-cased serial is on it.
 * 3. `Model`, when given, is at most {@link MAX_MODEL_CHARS} characters; every run of characters
 *    a thing attribute value may not hold (`[a-zA-Z0-9_.,@/:#=[\]-]`) becomes one `_`. A Pi's
 *    model is "Raspberry Pi 4 Model B Rev 1.4": with its spaces, CreateThing would refuse it as
 *    the `model` attribute and the device would fail registration after the hook allowed it.
 * 4. `MacAddress`, when given and not empty, is six hex octets separated by `:` or `-`; it is
 *    written lower-case with `:`.
 *
 * The event is hostile input of any shape (the parameters are whatever the claim certificate's
 * holder sent): only own properties are read (a `__proto__` or `constructor` key is data, never a
 * way to an inherited value), every value must be a string, and nothing in it is logged beyond a
 * bounded preview (never the certificate PEM). Bad input denies; it never throws.
 *
 * Allow-list: {@link ALLOWED_SERIALS_ENV}, comma- or whitespace-separated serials, read once when
 * the hook is built. An environment variable, not an SSM parameter: the hook must answer within
 * 5 seconds, and a list read at cold start costs no network call inside that window, no extra IAM
 * grant, and a change to it is a reviewed redeploy (the CDK app's `pifleet:allowedSerials`),
 * visible in CloudFormation's history. Its limit is Lambda's 4 KB for all of a function's
 * variables: about 230 Pi serials of 16 digits. An SSM standard parameter holds 4 KB as well
 * (advanced: 8 KB, about 480), so neither scales to a fleet of thousands; a longer list belongs in
 * a table the operator's own hook reads. Without an allow-list, any well-formed serial is admitted:
 * the claim certificate is then the gate.
 */

/** The function name the CDK app deploys and the local core recognises in a hook's `targetArn`. */
export const PROVISIONING_HOOK_FUNCTION_NAME = 'pifleet-provisioning-hook';

/** Environment variable holding the allow-list of serials (absent or empty: no allow-list). */
export const ALLOWED_SERIALS_ENV = 'PIFLEET_ALLOWED_SERIALS';

/** A serial the hook accepts: also safe, prefixed with `pi-`, as a thing name and a client id. */
export const SERIAL_NUMBER_PATTERN = /^[0-9A-Za-z_-]{1,64}$/;

/** Longest `Model` accepted. Not an AWS figure (attribute values may be 800): a Pi's is under 60. */
export const MAX_MODEL_CHARS = 128;

/** Characters a thing attribute value may not hold (its pattern is `[a-zA-Z0-9_.,@/:#=[\]-]*`). */
const NOT_ATTRIBUTE_CHARS = /[^a-zA-Z0-9_.,@/:#=[\]-]+/g;

const MAC_ADDRESS = /^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/;

/** Longest preview of a rejected or identifying value in a log line. */
const PREVIEW_CHARS = 80;

export type ProvisioningDenialReason =
  /** The event is not an object, or reading it failed. */
  | 'EVENT_INVALID'
  /** `parameters` is missing or not an object. */
  | 'PARAMETERS_INVALID'
  | 'SERIAL_MISSING'
  /** `SerialNumber` is not a string, or not 1–64 characters of `[0-9A-Za-z_-]`. */
  | 'SERIAL_INVALID'
  /** An allow-list is configured and the serial is not on it. */
  | 'SERIAL_NOT_ALLOWED'
  | 'MODEL_INVALID'
  | 'MAC_ADDRESS_INVALID';

export type ProvisioningDecision =
  | {
      readonly allow: true;
      readonly serialNumber: string;
      readonly parameterOverrides: Readonly<Record<string, string>>;
    }
  | { readonly allow: false; readonly reason: ProvisioningDenialReason; readonly message: string };

export interface ProvisioningPolicy {
  /** Lower-case serials; when set, only these are admitted. */
  readonly allowedSerials?: ReadonlySet<string>;
}

/** The decision for one event: pure, never throws. */
export function decideProvisioning(event: unknown, policy: ProvisioningPolicy = {}): ProvisioningDecision {
  try {
    return decide(event, policy);
  } catch {
    // Only an exotic object (a proxy, a throwing getter) from an in-process caller gets here.
    return deny('EVENT_INVALID', 'the event could not be read');
  }
}

function decide(event: unknown, policy: ProvisioningPolicy): ProvisioningDecision {
  if (!isRecord(event)) return deny('EVENT_INVALID', 'the event is not an object');
  const parameters = own(event, 'parameters');
  if (!isRecord(parameters)) return deny('PARAMETERS_INVALID', 'parameters is missing or not an object');

  const serial = own(parameters, 'SerialNumber');
  if (serial === undefined) return deny('SERIAL_MISSING', 'parameters.SerialNumber is missing');
  if (typeof serial !== 'string' || !SERIAL_NUMBER_PATTERN.test(serial)) {
    return deny('SERIAL_INVALID', 'SerialNumber must be 1-64 characters of 0-9 A-Z a-z _ -');
  }
  const serialNumber = serial.toLowerCase();
  if (policy.allowedSerials !== undefined && !policy.allowedSerials.has(serialNumber)) {
    return deny('SERIAL_NOT_ALLOWED', 'the serial is not on the allow-list');
  }
  const parameterOverrides: Record<string, string> = { SerialNumber: serialNumber };

  const model = own(parameters, 'Model');
  if (model !== undefined) {
    if (typeof model !== 'string' || model.length > MAX_MODEL_CHARS) {
      return deny('MODEL_INVALID', `Model must be a string of at most ${MAX_MODEL_CHARS} characters`);
    }
    parameterOverrides.Model = model.trim().replace(NOT_ATTRIBUTE_CHARS, '_');
  }

  const mac = own(parameters, 'MacAddress');
  if (mac !== undefined) {
    if (typeof mac !== 'string' || (mac !== '' && !MAC_ADDRESS.test(mac))) {
      return deny('MAC_ADDRESS_INVALID', 'MacAddress must be empty or six hex octets separated by : or -');
    }
    parameterOverrides.MacAddress = mac.toLowerCase().replaceAll('-', ':');
  }
  return { allow: true, serialNumber, parameterOverrides };
}

function deny(reason: ProvisioningDenialReason, message: string): ProvisioningDecision {
  return { allow: false, reason, message };
}

function isRecord(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An own property's value; an inherited one (through `__proto__`, `constructor`) is undefined. */
function own(o: object, key: string): unknown {
  return Object.hasOwn(o, key) ? (o as Record<string, unknown>)[key] : undefined;
}

/**
 * Parses an allow-list: serials separated by commas and/or whitespace, each matching
 * {@link SERIAL_NUMBER_PATTERN}, lower-cased. `undefined` for an absent or blank value (no
 * allow-list). Throws {@link HandlerConfigError} for a malformed entry, or for a value that is set
 * but names no serial (`","`): a list meant to restrict must not silently admit every device.
 */
export function parseAllowedSerials(value: string | undefined): ReadonlySet<string> | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const entries = value.split(/[\s,]+/).filter((s) => s !== '');
  if (entries.length === 0) throw new HandlerConfigError(ALLOWED_SERIALS_ENV, 'is set but names no serial');
  const bad = entries.findIndex((s) => !SERIAL_NUMBER_PATTERN.test(s));
  if (bad !== -1) {
    throw new HandlerConfigError(
      ALLOWED_SERIALS_ENV,
      `entry ${bad + 1} is not a serial (1-64 characters of 0-9 A-Z a-z _ -)`,
    );
  }
  return new Set(entries.map((s) => s.toLowerCase()));
}

/** An allow-list given in code that is not a list of serials. */
export class ProvisioningHookConfigError extends CloudError {
  override name = 'ProvisioningHookConfigError';
}

function allowListOf(serials: Iterable<string>): ReadonlySet<string> {
  const list = [...serials];
  const bad = list.findIndex((s) => typeof s !== 'string' || !SERIAL_NUMBER_PATTERN.test(s));
  if (bad !== -1) {
    throw new ProvisioningHookConfigError(
      'HOOK_CONFIG',
      `allowedSerials entry ${bad + 1} is not a serial (1-64 characters of 0-9 A-Z a-z _ -)`,
      { data: { index: bad } },
    );
  }
  return new Set(list.map((s) => s.toLowerCase()));
}

export interface ProvisioningHookOptions {
  /** The allow-list (any case); wins over the environment's. An empty list admits nothing. */
  readonly allowedSerials?: Iterable<string>;
  /** Read for {@link ALLOWED_SERIALS_ENV} when `allowedSerials` is not given. */
  readonly env?: Env;
  readonly logger?: Logger;
}

export type ProvisioningHook = (event: PreProvisioningHookEvent) => Promise<PreProvisioningHookResult>;

/**
 * Builds the hook. Throws {@link HandlerConfigError} for a malformed allow-list (at build time, so
 * a misconfigured core or function fails before any device is judged by it).
 */
export function createProvisioningHook(options: ProvisioningHookOptions = {}): ProvisioningHook {
  const allowedSerials =
    options.allowedSerials === undefined
      ? parseAllowedSerials(options.env?.[ALLOWED_SERIALS_ENV])
      : allowListOf(options.allowedSerials);
  const policy: ProvisioningPolicy = allowedSerials === undefined ? {} : { allowedSerials };
  const log = (options.logger ?? silentLogger()).child({ component: 'provisioning-hook' });
  log.info(
    { allowList: allowedSerials === undefined ? 'none' : 'configured', allowedSerials: allowedSerials?.size },
    'provisioning hook ready',
  );
  return async (event) => {
    const decision = decideProvisioning(event, policy);
    const context = eventContext(event);
    if (decision.allow) {
      log.info({ ...context, serialNumber: decision.serialNumber }, 'provisioning allowed');
      return { allowProvisioning: true, parameterOverrides: decision.parameterOverrides };
    }
    log.warn({ ...context, reason: decision.reason, detail: decision.message }, 'provisioning denied');
    return { allowProvisioning: false };
  };
}

/** Who asked, for the log: bounded previews of the identifying strings, never the PEM or the parameters. */
function eventContext(event: unknown): Record<string, unknown> {
  const context: Record<string, unknown> = {};
  try {
    if (!isRecord(event)) return context;
    for (const key of ['clientId', 'certificateId', 'claimCertificateId', 'templateArn'] as const) {
      const value = own(event, key);
      if (typeof value === 'string') context[key] = preview(value);
    }
    const parameters = own(event, 'parameters');
    const serial = isRecord(parameters) ? own(parameters, 'SerialNumber') : undefined;
    if (typeof serial === 'string') context.serialGiven = preview(serial);
    else if (serial !== undefined) context.serialType = serial === null ? 'null' : typeof serial;
  } catch {
    // An unreadable event is logged without context; the decision already denied it.
  }
  return context;
}

function preview(s: string): string {
  return s.length <= PREVIEW_CHARS ? s : `${s.slice(0, PREVIEW_CHARS)}… (${s.length} characters)`;
}

/** AWS Lambda entry point: the allow-list from {@link ALLOWED_SERIALS_ENV}, built on the first invocation. */
export const handler: ProvisioningHook = lazyHandler(() =>
  createProvisioningHook({ env: process.env, logger: lambdaLogger('provisioning-hook', process.env) }),
);
