import { isUtf8 } from 'node:buffer';
import {
  agentUpdateDocument,
  configDocument,
  type Issue,
  isJsonObject,
  isValidThingName,
  JOB_OPERATIONS,
  type JobOperation,
  type JsonObject,
  type JsonValue,
  MAX_JOB_DOCUMENT_CHARS,
  MAX_JOB_DOCUMENT_DEPTH,
  MAX_MANIFEST_BYTES,
  MAX_SIGNATURE_BYTES,
  parseJobDocument,
  parseJson,
  parseReleaseManifest,
  rebootDocument,
  validateDesiredState,
} from '@pifleet/protocol';
import type { AbortCriterion, PresignedUrlConfig, RolloutConfig } from '../jobs/model.js';
import { hasAtMostDecimals } from '../jobs/validation.js';

/**
 * What the console's "new job" and "cancel" forms send, checked before the jobs service sees it.
 * Pure: a request body in, the service's input out, or every problem with the field it belongs to
 * (so the page can put each message beside its field). The body is outside input: parsed
 * size-first (the route group's body bound) and depth-bounded, with strict keys (`__proto__` is an
 * unknown key like any other), and the job document is checked by the parser the agent uses.
 */

/** The console's job types and the document operation each runs (the CLI's `--type` names). */
export const CONSOLE_JOB_TYPES: Readonly<Record<string, JobOperation>> = {
  'agent-update': JOB_OPERATIONS.agentUpdate,
  config: JOB_OPERATIONS.config,
  reboot: JOB_OPERATIONS.reboot,
};

/** Bounds of the form's fields (IoT's CreateJob ranges; see the README's job table). */
export const CONSOLE_JOB_LIMITS = {
  /** `maximumPerMinute`: 1 to 1,000. */
  rolloutPerMinute: { min: 1, max: 1_000 },
  /** `minNumberOfExecutedThings`: at least 1. */
  abortMinExecuted: { min: 1, max: 1_000_000 },
  /** Things named one by one (a larger fleet is a thing group). */
  maxThings: 1_000,
  /** CreateJob `description` and CancelJob `comment`: at most 2,028 characters. */
  maxText: 2_028,
} as const;

/**
 * Executed things before the abort threshold applies when the form leaves it empty (the CLI's
 * default): a first failure alone would otherwise be 100 % and cancel a rollout of any size.
 */
export const DEFAULT_ABORT_MIN_EXECUTED = 10;

/**
 * The role a presigned-URL job names when the console creates it: the local core signs with its
 * own read-only identity whatever the role, but IoT (and the local core) presign only for a job
 * that names one, so the console names the same stand-in the CLI uses locally.
 */
export const LOCAL_PRESIGN_ROLE = 'pifleet-local-presign';

const JOB_ID = /^[a-zA-Z0-9_-]{1,64}$/;
/** IoT's pattern for free text (`[^\p{C}]+`). */
const FREE_TEXT = /^[^\p{C}]*$/u;
const PLACEHOLDER = /^\$\{aws:iot:s3-presigned-url(?:-v2)?:([^}"\\\s]+)\}$/;
/** The S3 object URL forms IoT's placeholder takes (path style and virtual-hosted, with or without a region). */
const S3_HOST = /^(?:[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\.)?s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

const CREATE_KEYS: Readonly<Record<string, readonly string[]>> = {
  common: [
    'type',
    'jobId',
    'things',
    'group',
    'rolloutPerMinute',
    'abortFailurePercent',
    'abortMinExecuted',
    'description',
    'reason',
  ],
  'agent-update': ['version', 'url', 'manifest', 'signature'],
  config: ['config'],
  reboot: [],
};

/** What the registry says of a target: its ARN, or undefined when it does not exist. */
export interface TargetLookup {
  thingArn(thingName: string): string | undefined;
  groupArn(groupName: string): string | undefined;
}

export interface CreateJobContext {
  readonly targets: TargetLookup;
  /** The account the presign role belongs to. */
  readonly accountId: string;
  /** Milliseconds since the epoch (the default job id's time). */
  readonly now: number;
  /** Six random hex characters (the default job id's suffix). */
  readonly suffix: string;
}

export interface ConsoleCreateJob {
  readonly jobId: string;
  readonly operation: JobOperation;
  readonly targets: readonly string[];
  readonly document: string;
  readonly description?: string;
  readonly rollout?: RolloutConfig;
  readonly abort?: readonly AbortCriterion[];
  readonly presignedUrlConfig?: PresignedUrlConfig;
}

export type Checked<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly message: string; readonly issues: readonly Issue[] };

const refused = (message: string, issues: readonly Issue[] = []): Checked<never> => ({ ok: false, message, issues });

/** The body as a JSON object, or why not (not JSON, too deep, not an object). */
function bodyObject(body: Buffer, what: string): Checked<JsonObject> {
  // toString('utf8') would turn a byte that is not UTF-8 into U+FFFD, text nobody typed.
  if (!isUtf8(body)) return refused('The body is not valid UTF-8.');
  const parsed = parseJson(body.toString('utf8'), { maxDepth: MAX_JOB_DOCUMENT_DEPTH });
  if (!parsed.ok) return refused(`The body is not valid JSON: ${parsed.message}.`);
  if (!isJsonObject(parsed.value)) return refused(`The body must be a JSON object (${what}).`);
  return { ok: true, value: parsed.value };
}

/** Keys not in `allowed`, each as an issue (`__proto__` included: JSON.parse makes it an own key). */
function unknownKeys(obj: JsonObject, allowed: readonly string[], why: string): Issue[] {
  return Object.keys(obj)
    .filter((k) => !allowed.includes(k))
    .map((k) => ({ path: k.length > 64 ? `${k.slice(0, 64)}…` : k, message: why }));
}

const own = (obj: JsonObject, key: string): JsonValue | undefined => (Object.hasOwn(obj, key) ? obj[key] : undefined);

function integerIn(value: JsonValue | undefined, path: string, min: number, max: number, issues: Issue[]) {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    issues.push({ path, message: `must be an integer from ${min} to ${max}` });
    return undefined;
  }
  return value;
}

function textField(value: JsonValue | undefined, path: string, max: number, issues: Issue[]): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') issues.push({ path, message: 'must be a string' });
  else if (value.length > max) issues.push({ path, message: `must be at most ${max} characters` });
  else if (!FREE_TEXT.test(value)) issues.push({ path, message: 'must not contain control or format characters' });
  else return value;
  return undefined;
}

/** The things and group the form names, as ARNs of existing targets. */
function targetsOf(input: JsonObject, lookup: TargetLookup, issues: Issue[]): string[] {
  const targets: string[] = [];
  const things = own(input, 'things');
  if (things !== undefined && things !== null) {
    if (!Array.isArray(things) || things.some((t) => typeof t !== 'string')) {
      issues.push({ path: 'things', message: 'must be a list of thing names' });
    } else if (things.length > CONSOLE_JOB_LIMITS.maxThings) {
      issues.push({
        path: 'things',
        message: `names ${things.length} things; at most ${CONSOLE_JOB_LIMITS.maxThings} (target a thing group instead)`,
      });
    } else {
      for (const name of new Set(things as string[])) {
        const shown = JSON.stringify(name.slice(0, 130));
        const arn = isValidThingName(name) ? lookup.thingArn(name) : undefined;
        if (!isValidThingName(name)) issues.push({ path: 'things', message: `${shown} is not a valid thing name` });
        else if (arn === undefined) issues.push({ path: 'things', message: `no thing is named ${name}` });
        else targets.push(arn);
      }
    }
  }
  const group = own(input, 'group');
  if (group !== undefined && group !== null && group !== '') {
    const arn = typeof group === 'string' && isValidThingName(group) ? lookup.groupArn(group) : undefined;
    if (typeof group !== 'string' || !isValidThingName(group)) {
      issues.push({ path: 'group', message: 'is not a valid thing group name' });
    } else if (arn === undefined) issues.push({ path: 'group', message: `no thing group is named ${group}` });
    else targets.push(arn);
  }
  if (targets.length === 0 && !issues.some((i) => i.path === 'things' || i.path === 'group')) {
    issues.push({ path: 'things', message: 'name at least one thing, or a thing group' });
  }
  return targets;
}

/** The rollout rate and abort threshold (IoT's `jobExecutionsRolloutConfig` and `abortConfig`). */
function rolloutAndAbort(input: JsonObject, issues: Issue[]): Pick<ConsoleCreateJob, 'rollout' | 'abort'> {
  const L = CONSOLE_JOB_LIMITS;
  const rate = integerIn(
    own(input, 'rolloutPerMinute'),
    'rolloutPerMinute',
    L.rolloutPerMinute.min,
    L.rolloutPerMinute.max,
    issues,
  );
  const rawPercent = own(input, 'abortFailurePercent');
  let percent: number | undefined;
  if (rawPercent !== undefined && rawPercent !== null) {
    // IoT: "up to two digits after the decimal", above 0 (0 would cancel on the first executed thing), at most 100.
    if (typeof rawPercent !== 'number' || !(rawPercent > 0 && rawPercent <= 100) || !hasAtMostDecimals(rawPercent, 2)) {
      issues.push({
        path: 'abortFailurePercent',
        message: 'must be a percentage above 0 and at most 100, with at most two decimals',
      });
    } else percent = rawPercent;
  }
  const minExecuted = integerIn(
    own(input, 'abortMinExecuted'),
    'abortMinExecuted',
    L.abortMinExecuted.min,
    L.abortMinExecuted.max,
    issues,
  );
  if (minExecuted !== undefined && rawPercent === undefined) {
    issues.push({ path: 'abortMinExecuted', message: 'applies only with an abort failure percentage' });
  }
  return {
    ...(rate === undefined ? {} : { rollout: { maximumPerMinute: rate } }),
    ...(percent === undefined
      ? {}
      : {
          abort: [
            {
              // Every kind of failed execution counts, as the CLI's --abort-failure-percent does.
              failureType: 'ALL',
              action: 'CANCEL',
              thresholdPercentage: percent,
              minNumberOfExecutedThings: minExecuted ?? DEFAULT_ABORT_MIN_EXECUTED,
            },
          ],
        }),
  };
}

function configOf(input: JsonObject, issues: Issue[]): Readonly<Record<string, unknown>> | undefined {
  let config = own(input, 'config');
  if (typeof config === 'string') {
    const parsed = parseJson(config, { maxDepth: MAX_JOB_DOCUMENT_DEPTH });
    if (!parsed.ok) {
      issues.push({ path: 'config', message: `is not valid JSON: ${parsed.message}` });
      return undefined;
    }
    config = parsed.value;
  }
  if (!isJsonObject(config) || Object.keys(config).length === 0) {
    issues.push({ path: 'config', message: 'must be a JSON object of settings, e.g. {"logLevel":"debug"}' });
    return undefined;
  }
  // The shadow's rules: a config job and a desired-state change accept exactly the same settings.
  const checked = validateDesiredState(config);
  if (!checked.ok) {
    for (const i of checked.issues)
      issues.push({ path: i.path === '$' ? 'config' : `config.${i.path}`, message: i.message });
    return undefined;
  }
  return config;
}

function base64Field(input: JsonObject, path: string, maxBytes: number, issues: Issue[]): Uint8Array | undefined {
  const value = own(input, path);
  if (typeof value !== 'string' || value === '') {
    issues.push({ path, message: 'is required' });
    return undefined;
  }
  const compact = value.replace(/\s+/g, '');
  if (!BASE64.test(compact)) {
    issues.push({ path, message: 'must be standard base64' });
    return undefined;
  }
  const bytes = Buffer.from(compact, 'base64');
  if (bytes.length === 0 || bytes.length > maxBytes) {
    issues.push({ path, message: `must decode to 1 to ${maxBytes} bytes` });
    return undefined;
  }
  return bytes;
}

/**
 * The release URL as the document carries it, and the URL the device will see: an IoT presign
 * placeholder is kept as given; an S3 object URL is wrapped in one (the core presigns it per device, as IoT
 * does); any other http(s) URL is used as it is.
 */
function releaseUrl(
  input: JsonObject,
  issues: Issue[],
): { stored: string; seen: string; presign: boolean } | undefined {
  const value = own(input, 'url');
  if (typeof value !== 'string' || value.trim() === '') {
    issues.push({ path: 'url', message: 'is required' });
    return undefined;
  }
  const text = value.trim();
  const inner = PLACEHOLDER.exec(text)?.[1];
  const url = inner ?? text;
  if (!URL.canParse(url)) {
    issues.push({ path: 'url', message: 'is not a URL' });
    return undefined;
  }
  const parsed = new URL(url);
  const isS3 = parsed.protocol === 'https:' && S3_HOST.test(parsed.hostname) && parsed.search === '';
  if (inner !== undefined && !isS3) {
    issues.push({ path: 'url', message: 'a presigned-URL placeholder must name an S3 object URL' });
    return undefined;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    issues.push({ path: 'url', message: 'must be an http(s) URL' });
    return undefined;
  }
  if (!isS3) return { stored: url, seen: url, presign: false };
  // A placeholder keeps the spelling given (the current docs show `-v2`; the CLI writes the first one).
  return { stored: inner === undefined ? `\${aws:iot:s3-presigned-url:${url}}` : text, seen: url, presign: true };
}

interface Built {
  readonly document: JsonObject;
  /** The document as the device will see it (a placeholder replaced by its URL). */
  readonly deviceView: JsonObject;
  readonly presign: boolean;
}

function agentUpdate(input: JsonObject, reason: string | undefined, issues: Issue[]): Built | undefined {
  const before = issues.length;
  const manifestBytes = base64Field(input, 'manifest', MAX_MANIFEST_BYTES, issues);
  const signature = base64Field(input, 'signature', MAX_SIGNATURE_BYTES, issues);
  const url = releaseUrl(input, issues);
  let version: string | undefined;
  if (manifestBytes !== undefined) {
    const parsed = parseReleaseManifest(manifestBytes);
    if (!parsed.ok)
      issues.push({ path: 'manifest', message: `is not a release manifest: ${parsed.rejection.message}` });
    else {
      version = parsed.manifest.version;
      const given = own(input, 'version');
      if (given !== undefined && given !== null && given !== '' && given !== version) {
        issues.push({
          path: 'version',
          message: `must be the manifest's version ${version} (the device installs what the signed manifest names)`,
        });
      }
    }
  }
  if (issues.length > before || !manifestBytes || !signature || !url || version === undefined) return undefined;
  const release = {
    manifest: Buffer.from(manifestBytes).toString('base64'),
    signature: Buffer.from(signature).toString('base64'),
  };
  const doc = (u: string) =>
    agentUpdateDocument({
      version: version as string,
      release: { url: u, ...release },
      ...(reason === undefined ? {} : { reason }),
    }) as unknown as JsonObject;
  return { document: doc(url.stored), deviceView: doc(url.seen), presign: url.presign };
}

/** The job a "new job" form asks for, or every problem with it. */
export function parseCreateJobRequest(body: Buffer, context: CreateJobContext): Checked<ConsoleCreateJob> {
  const obj = bodyObject(body, '{type, things, group, …}');
  if (!obj.ok) return obj;
  const input = obj.value;
  const type = own(input, 'type');
  if (typeof type !== 'string' || !Object.hasOwn(CONSOLE_JOB_TYPES, type)) {
    const shown = typeof type === 'string' ? JSON.stringify(type.slice(0, 64)) : 'missing';
    const message = `The job type is ${shown}; it must be one of ${Object.keys(CONSOLE_JOB_TYPES).join(', ')}.`;
    return refused(message, [{ path: 'type', message: `must be one of ${Object.keys(CONSOLE_JOB_TYPES).join(', ')}` }]);
  }
  const operation = CONSOLE_JOB_TYPES[type] as JobOperation;
  const issues: Issue[] = unknownKeys(
    input,
    [...(CREATE_KEYS.common ?? []), ...(CREATE_KEYS[type] ?? [])],
    `is not a field of a ${type} job`,
  );

  let jobId = own(input, 'jobId');
  if (jobId === undefined || jobId === null || jobId === '') {
    const time = new Date(context.now)
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, '');
    jobId = `${type}-${time}-${context.suffix}`;
  } else if (typeof jobId !== 'string' || !JOB_ID.test(jobId)) {
    issues.push({ path: 'jobId', message: 'must be 1 to 64 characters of a-z A-Z 0-9 _ -' });
  }
  const targets = targetsOf(input, context.targets, issues);
  const configs = rolloutAndAbort(input, issues);
  const description = textField(own(input, 'description'), 'description', CONSOLE_JOB_LIMITS.maxText, issues);
  const reason = textField(own(input, 'reason'), 'reason', 256, issues);

  let built: Built | undefined;
  if (operation === JOB_OPERATIONS.config) {
    const config = configOf(input, issues);
    if (config !== undefined) {
      const document = configDocument(config, reason) as unknown as JsonObject;
      built = { document, deviceView: document, presign: false };
    }
  } else if (operation === JOB_OPERATIONS.reboot) {
    const document = rebootDocument(reason) as unknown as JsonObject;
    built = { document, deviceView: document, presign: false };
  } else {
    built = agentUpdate(input, reason, issues);
  }

  let document: string | undefined;
  if (built !== undefined) {
    document = JSON.stringify(built.document);
    if (document.length > MAX_JOB_DOCUMENT_CHARS) {
      issues.push({
        path: operation === JOB_OPERATIONS.config ? 'config' : '$',
        message: `makes a job document of ${document.length} characters; IoT allows ${MAX_JOB_DOCUMENT_CHARS}`,
      });
    } else {
      // The agent's own parser: what it would reject is refused here, before any device sees it.
      const parsed = parseJobDocument(JSON.stringify(built.deviceView));
      if (!parsed.ok) for (const i of parsed.issues) issues.push({ path: i.path, message: i.message });
    }
  }
  if (issues.length > 0 || document === undefined) {
    return refused(`The ${type} job is not valid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}.`, issues);
  }
  return {
    ok: true,
    value: {
      jobId: jobId as string,
      operation,
      targets,
      document,
      ...(description === undefined ? {} : { description }),
      ...configs,
      ...(built?.presign === true
        ? { presignedUrlConfig: { roleArn: `arn:aws:iam::${context.accountId}:role/${LOCAL_PRESIGN_ROLE}` } }
        : {}),
    },
  };
}

export interface ConsoleCancelJob {
  readonly force: boolean;
  readonly comment?: string;
}

/** A cancel form: `{force?, comment?}` (an empty body cancels the queued executions only). */
export function parseCancelJobRequest(body: Buffer): Checked<ConsoleCancelJob> {
  if (body.length === 0) return { ok: true, value: { force: false } };
  const obj = bodyObject(body, '{force?, comment?}');
  if (!obj.ok) return obj;
  const issues = unknownKeys(obj.value, ['force', 'comment'], 'is not a field of a cancel request');
  const force = own(obj.value, 'force');
  if (force !== undefined && typeof force !== 'boolean')
    issues.push({ path: 'force', message: 'must be true or false' });
  const comment = textField(own(obj.value, 'comment'), 'comment', CONSOLE_JOB_LIMITS.maxText, issues);
  if (issues.length > 0) {
    return refused(
      `The cancel request is not valid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}.`,
      issues,
    );
  }
  return { ok: true, value: { force: force === true, ...(comment === undefined ? {} : { comment }) } };
}
