import {
  agentUpdateDocument,
  configDocument,
  isJsonObject,
  isValidThingName,
  JOB_OPERATIONS,
  type JobOperation,
  type JsonObject,
  MAX_JOB_DOCUMENT_CHARS,
  MAX_JOB_DOCUMENT_DEPTH,
  parseJobDocument,
  parseJson,
  parseReleaseManifest,
  type ReleaseManifest,
  rebootDocument,
} from '@pifleet/protocol';
import { InputError, UsageError } from '../errors.js';
import type { JobConfigurations } from '../ports/jobs.js';
import { checkDesired } from './args.js';

/**
 * What `pifleet jobs create` sends, built from its options: the job's configurations in IoT's
 * shapes and the job document of `@pifleet/protocol`. Pure: values in, values out, or a
 * {@link UsageError} (exit 64) naming the option and its range / an {@link InputError} (65) for
 * bad file contents.
 */

/** The CLI's job types and the document operation each one runs. */
export const JOB_TYPES = {
  'agent-update': JOB_OPERATIONS.agentUpdate,
  config: JOB_OPERATIONS.config,
  reboot: JOB_OPERATIONS.reboot,
} as const satisfies Record<string, JobOperation>;
export type JobType = keyof typeof JOB_TYPES;

export function parseJobType(raw: string): JobType {
  if (!Object.hasOwn(JOB_TYPES, raw)) {
    throw new UsageError(`unknown job type ${JSON.stringify(raw)}`, {
      hint: `--type is one of: ${Object.keys(JOB_TYPES).join(', ')}`,
    });
  }
  return raw as JobType;
}

/** IoT's job id: 1-64 characters of `a-zA-Z0-9_-` ("CreateJob", jobId). */
const JOB_ID = /^[a-zA-Z0-9_-]{1,64}$/;

export function parseJobId(raw: string): string {
  if (!JOB_ID.test(raw)) {
    throw new UsageError(`invalid job id ${JSON.stringify(raw)}`, {
      hint: 'a job id has 1-64 characters of a-z A-Z 0-9 _ -',
    });
  }
  return raw;
}

/** IoT's free text (CreateJob `description`, CancelJob `comment`): at most 2,028 characters of `[^\p{C}]+`. */
export const MAX_JOB_TEXT_CHARS = 2_028;
const FREE_TEXT = /^[^\p{C}]+$/u;

/**
 * `--description` and `--comment`, checked as IoT checks them, so a bad value exits 64 naming the
 * option (it was sent, and IoT's InvalidRequestException came back as exit 65 without a hint).
 */
export function parseJobText(option: string, raw: string): string {
  if (raw.length > MAX_JOB_TEXT_CHARS || !FREE_TEXT.test(raw)) {
    throw new UsageError(
      `${option} must be 1 to ${MAX_JOB_TEXT_CHARS} characters without control characters, got ${raw.length} characters`,
      { hint: 'one line of text, e.g. --comment "wrong target group"' },
    );
  }
  return raw;
}

/** CancelJob's `reasonCode`: at most 128 characters of `[\p{Upper}\p{Digit}_]+`. */
const REASON_CODE = /^[\p{Lu}\p{Nd}_]{1,128}$/u;

export function parseReasonCode(raw: string): string {
  if (!REASON_CODE.test(raw)) {
    throw new UsageError(`--reason-code ${JSON.stringify(raw.slice(0, 140))} is not a reason code`, {
      hint: 'use 1-128 upper-case letters, digits and _, e.g. --reason-code BAD_RELEASE',
    });
  }
  return raw;
}

/**
 * A job id when none is given: the type, the UTC time to the second and a random suffix
 * (`agent-update-20261203T105500-3fa9c2`), so ids sort by creation and two runs never collide.
 */
export function defaultJobId(type: JobType, nowMs: number, suffix: string): string {
  const time = new Date(nowMs)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, '');
  return `${type}-${time}-${suffix}`;
}

/** An integer option within [min, max]. */
export function intOption(option: string, raw: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw.trim()))
    throw new UsageError(`${option} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  const n = Number.parseInt(raw, 10);
  if (n < min || n > max) throw new UsageError(`${option} must be an integer from ${min} to ${max}, got ${n}`);
  return n;
}

/**
 * An abort threshold: above 0 and at most 100 percent, with at most two decimals (IoT's
 * `thresholdPercentage`: "up to two digits after the decimal (for example, 10.9 and 10.99, but not
 * 10.999)", maximum 100). 0 would cancel the job on its first executed thing whatever it did.
 */
export function parsePercent(option: string, raw: string): number {
  const trimmed = raw.trim();
  const n = Number(trimmed);
  if (!/^\d{1,3}(\.\d{1,2})?$/.test(trimmed) || n <= 0 || n > 100) {
    throw new UsageError(
      `${option} must be a percentage above 0 and at most 100 with at most two decimals, got ${JSON.stringify(raw)}`,
      {
        hint: `e.g. ${option} 10 or ${option} 2.5`,
      },
    );
  }
  return n;
}

/**
 * Executed things before an abort criterion applies when `--abort-min-executed` is not given: a
 * first failure alone (100 % of one executed thing) would otherwise cancel a rollout of any size.
 */
export const DEFAULT_ABORT_MIN_EXECUTED = 10;

/** The ranges IoT documents for each configuration (see the README's job table). */
export const JOB_LIMITS = {
  /** `maximumPerMinute`: 1 to 1,000 ("Job rollout configuration"). */
  rolloutPerMinute: { min: 1, max: 1_000 },
  /** `inProgressTimeoutInMinutes`: 1 minute to 7 days ("Job execution timeout configuration"). */
  inProgressTimeoutMinutes: { min: 1, max: 10_080 },
  /** `numberOfRetries`: 0 to 10 ("Job execution retry configuration"). */
  retries: { min: 0, max: 10 },
  /** `expiresInSec` of presigned URLs: 60 to 3,600 ("PresignedUrlConfig"). */
  urlExpiresSec: { min: 60, max: 3_600 },
  minExecuted: { min: 1, max: 1_000_000 },
} as const;

export interface JobConfigOptions {
  readonly rolloutPerMinute?: string;
  readonly abortFailurePercent?: string;
  readonly abortMinExecuted?: string;
  readonly inProgressTimeoutMinutes?: string;
  readonly retries?: string;
  readonly continuous?: boolean;
}

/**
 * The job's configurations: SNAPSHOT unless `continuous`; rollout, abort, timeout and retry only
 * when asked for. An abort criterion counts every kind of failed execution (`ALL`: FAILED,
 * REJECTED and TIMED_OUT), a retry retries failed and timed-out ones (`ALL`).
 */
export function jobConfigurations(o: JobConfigOptions): Omit<JobConfigurations, 'presignedUrlConfig'> {
  if (o.abortMinExecuted !== undefined && o.abortFailurePercent === undefined) {
    throw new UsageError('--abort-min-executed needs --abort-failure-percent', {
      hint: 'e.g. --abort-failure-percent 10 --abort-min-executed 20',
    });
  }
  const L = JOB_LIMITS;
  const rollout =
    o.rolloutPerMinute === undefined
      ? undefined
      : intOption('--rollout-per-minute', o.rolloutPerMinute, L.rolloutPerMinute.min, L.rolloutPerMinute.max);
  const percent =
    o.abortFailurePercent === undefined ? undefined : parsePercent('--abort-failure-percent', o.abortFailurePercent);
  const minExecuted =
    o.abortMinExecuted === undefined
      ? DEFAULT_ABORT_MIN_EXECUTED
      : intOption('--abort-min-executed', o.abortMinExecuted, L.minExecuted.min, L.minExecuted.max);
  const timeout =
    o.inProgressTimeoutMinutes === undefined
      ? undefined
      : intOption(
          '--in-progress-timeout-minutes',
          o.inProgressTimeoutMinutes,
          L.inProgressTimeoutMinutes.min,
          L.inProgressTimeoutMinutes.max,
        );
  const retries = o.retries === undefined ? 0 : intOption('--retries', o.retries, L.retries.min, L.retries.max);
  return {
    targetSelection: o.continuous === true ? 'CONTINUOUS' : 'SNAPSHOT',
    ...(rollout !== undefined ? { jobExecutionsRolloutConfig: { maximumPerMinute: rollout } } : {}),
    ...(percent !== undefined
      ? {
          abortConfig: {
            criteriaList: [
              {
                failureType: 'ALL',
                action: 'CANCEL',
                thresholdPercentage: percent,
                minNumberOfExecutedThings: minExecuted,
              },
            ],
          },
        }
      : {}),
    ...(timeout !== undefined ? { timeoutConfig: { inProgressTimeoutInMinutes: timeout } } : {}),
    ...(retries > 0
      ? { jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'ALL', numberOfRetries: retries }] } }
      : {}),
  };
}

/** Whom the job targets: the named things, or one thing group (never both, never neither). */
export type JobTargets = { readonly things: readonly string[] } | { readonly group: string };

export function parseTargets(o: { things?: string; group?: string }): JobTargets {
  if ((o.things === undefined) === (o.group === undefined)) {
    throw new UsageError(o.things === undefined ? 'give --things or --group' : 'give --things or --group, not both', {
      hint: 'a job targets --things a,b,c or one --group G (its child groups included)',
    });
  }
  if (o.group !== undefined) {
    if (!isValidThingName(o.group)) {
      throw new UsageError(`invalid thing group name ${JSON.stringify(o.group)}`, {
        hint: 'use 1-128 characters of a-z A-Z 0-9 : _ -',
      });
    }
    return { group: o.group };
  }
  const names = (o.things ?? '').split(',').map((t) => t.trim());
  if (names.some((t) => t === '')) throw new UsageError('--things has an empty name', { hint: '--things pi-1,pi-2' });
  for (const name of names) {
    if (!isValidThingName(name)) {
      throw new UsageError(`invalid thing name ${JSON.stringify(name)} in --things`, {
        hint: 'use 1-128 characters of a-z A-Z 0-9 : _ -',
      });
    }
  }
  return { things: [...new Set(names)] };
}

// ---- S3 URLs and presigning -----------------------------------------------------------------

export interface S3ObjectUrl {
  readonly bucket: string;
  readonly key: string;
  readonly url: string;
}

/**
 * An S3 object URL of the forms IoT's presigned-URL placeholder takes: path style
 * `https://s3.amazonaws.com/BUCKET/KEY` or `https://s3.REGION.amazonaws.com/BUCKET/KEY`, or
 * virtual-hosted `https://BUCKET.s3[.REGION].amazonaws.com/KEY`. The local core resolves the same
 * forms against its own object store, so one document works in both places.
 */
export function parseS3ObjectUrl(raw: string): S3ObjectUrl {
  const bad = (why: string) =>
    new UsageError(`--url ${JSON.stringify(raw)} is not an S3 object URL: ${why}`, {
      hint: 'give the URL `pifleet release upload` printed: https://s3.REGION.amazonaws.com/BUCKET/KEY',
    });
  if (!URL.canParse(raw)) throw bad('it does not parse');
  const u = new URL(raw);
  if (u.protocol !== 'https:') throw bad('it is not https');
  if (u.search !== '' || u.hash !== '' || u.username !== '' || u.port !== '')
    throw bad('it has a query, fragment, user or port');
  const host = u.hostname;
  let segments: string[];
  try {
    segments = u.pathname
      .split('/')
      .slice(1)
      .map((s) => decodeURIComponent(s));
  } catch {
    // The URL parser keeps a `%` sequence that is not UTF-8 as it is; decoding it throws.
    throw bad('its path is not validly percent-encoded UTF-8');
  }
  const pathStyle = /^s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com$/.test(host);
  const hosted = /^([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com$/.exec(host);
  let bucket: string | undefined;
  let key: string;
  if (pathStyle) {
    bucket = segments[0];
    key = segments.slice(1).join('/');
  } else if (hosted) {
    bucket = hosted[1];
    key = segments.join('/');
  } else throw bad('its host is not s3[.REGION].amazonaws.com or BUCKET.s3[.REGION].amazonaws.com');
  if (!bucket || key === '') throw bad('it names no bucket and key');
  return { bucket, key, url: raw };
}

/** The S3 object URL `release upload` prints for a key: path style, in the bucket's region. */
export function s3ObjectUrl(region: string, bucket: string, key: string): string {
  const path = key.split('/').map(encodeURIComponent).join('/');
  return `https://s3.${region}.amazonaws.com/${bucket}/${path}`;
}

/** IoT's placeholder that it replaces with a presigned GET URL of the object when a device reads the document. */
export function presignedUrlPlaceholder(url: string): string {
  return `\${aws:iot:s3-presigned-url:${url}}`;
}

const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;

export function parseRoleArn(option: string, raw: string): string {
  if (!ROLE_ARN.test(raw)) {
    throw new UsageError(`${option} ${JSON.stringify(raw)} is not an IAM role ARN`, {
      hint: 'arn:aws:iam::ACCOUNT:role/NAME: the role IoT assumes to presign (the stack output ArtifactsPresignRoleArn)',
    });
  }
  return raw;
}

// ---- job documents ----------------------------------------------------------------------------

/** The document's JSON text, checked as a device will parse it and within IoT's 32,768 characters. */
function finish(document: JsonObject, deviceView: JsonObject = document): string {
  const text = JSON.stringify(document);
  if (text.length > MAX_JOB_DOCUMENT_CHARS) {
    throw new InputError(`the job document is ${text.length} characters; IoT allows ${MAX_JOB_DOCUMENT_CHARS}`);
  }
  const parsed = parseJobDocument(JSON.stringify(deviceView));
  if (!parsed.ok) throw new InputError(parsed.reason);
  return text;
}

export interface ReleaseFiles {
  readonly manifestBytes: Uint8Array;
  readonly signature: Uint8Array;
}

/** The release's manifest, as a device will read it (the same parser), or exit 65. */
export function releaseManifestOf(manifestBytes: Uint8Array, file: string): ReleaseManifest {
  const parsed = parseReleaseManifest(manifestBytes);
  if (!parsed.ok) {
    throw new InputError(`${file} is not a release manifest: ${parsed.rejection.message}`, {
      hint: 'give the .manifest.json that pifleet release build wrote',
    });
  }
  return parsed.manifest;
}

/**
 * A `pifleet.agent-update` document: the version, the placeholder IoT replaces with a presigned
 * URL of the tarball, and the manifest and its signature (base64) that the device checks before
 * it downloads anything.
 */
export function agentUpdateJobDocument(input: {
  readonly manifest: ReleaseManifest;
  readonly files: ReleaseFiles;
  readonly url: S3ObjectUrl;
  readonly reason?: string;
}): string {
  const release = {
    manifest: Buffer.from(input.files.manifestBytes).toString('base64'),
    signature: Buffer.from(input.files.signature).toString('base64'),
  };
  const doc = (url: string) =>
    agentUpdateDocument({
      version: input.manifest.version,
      release: { url, ...release },
      ...(input.reason !== undefined ? { reason: input.reason } : {}),
    }) as unknown as JsonObject;
  // The device sees the document with the placeholder replaced: check that one, send this one.
  return finish(doc(presignedUrlPlaceholder(input.url.url)), doc(input.url.url));
}

/**
 * A `pifleet.config` document from `--config` JSON: an object of desired-state settings,
 * validated by the shadow's rules (the device checks it again against its own sensors/outputs).
 */
export function configJobDocument(text: string, reason?: string): string {
  const parsed = parseJson(text, { maxDepth: MAX_JOB_DOCUMENT_DEPTH });
  if (!parsed.ok) throw new InputError(`--config is not valid JSON: ${parsed.message}`);
  if (!isJsonObject(parsed.value) || Object.keys(parsed.value).length === 0) {
    throw new InputError('--config must be a JSON object of settings', {
      hint: `e.g. --config '{"sampling":{"bme280":5000},"logLevel":"debug"}'`,
    });
  }
  const config = checkDesired(parsed.value);
  return finish(configDocument(config, reason) as unknown as JsonObject);
}

export function rebootJobDocument(reason?: string): string {
  return finish(rebootDocument(reason) as unknown as JsonObject);
}
