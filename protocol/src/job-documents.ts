import { z } from 'zod';
import { formatPath, type Issue } from './issues.js';
import { isJsonObject, jsonValueDepth, parseJson } from './json.js';
import { isReleaseVersion } from './release.js';

/**
 * The job documents pifleet's jobs carry (IoT Jobs: "Job document"): what `pifleet jobs create`
 * writes and what the agent's job runner parses. A document is outside input on the device: it is
 * parsed here (size, depth, keys, then the schema of its operation) before anything acts on it.
 *
 * - `pifleet.agent-update`: install a signed release (`release.url` is a presigned URL: IoT Core
 *   replaces the `${aws:iot:s3-presigned-url:…}` placeholder before the device sees the document).
 * - `pifleet.config`: apply a partial desired state (`sampling`, `batch`, `outputs`, `logLevel`),
 *   validated on the device by the same rules as the shadow's desired state.
 * - `pifleet.reboot`: reboot the device, when its config allows it.
 */

export const JOB_OPERATIONS = {
  agentUpdate: 'pifleet.agent-update',
  config: 'pifleet.config',
  reboot: 'pifleet.reboot',
} as const;
export type JobOperation = (typeof JOB_OPERATIONS)[keyof typeof JOB_OPERATIONS];
const OPERATIONS: readonly string[] = Object.values(JOB_OPERATIONS);

/**
 * IoT Jobs' limit on a job document ("JobExecution": `jobDocument` length at most 32,768
 * characters); a document is measured as the JSON text the device receives.
 */
export const MAX_JOB_DOCUMENT_CHARS = 32_768;

/**
 * How deeply a job document may nest. The deepest valid one is a config job's sampling interval
 * (`config.sampling.<sensor>`: level 3); the bound is checked before any recursive walk.
 */
export const MAX_JOB_DOCUMENT_DEPTH = 8;

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const base64 = (what: string) =>
  z
    .string({ error: `${what} must be a base64 string` })
    .min(1, `${what} must not be empty`)
    .regex(BASE64, `${what} must be standard base64 (A-Z a-z 0-9 + /, padded with =)`);

/** At most this many characters of a URL (a presigned S3 URL with a session token is ~1,500). */
export const MAX_RELEASE_URL_CHARS = 8_192;

const releaseUrl = z
  .string({ error: 'release.url must be a string' })
  .max(MAX_RELEASE_URL_CHARS, `release.url must be at most ${MAX_RELEASE_URL_CHARS} characters`)
  .refine((u) => {
    if (!URL.canParse(u)) return false;
    const { protocol } = new URL(u);
    return protocol === 'https:' || protocol === 'http:';
  }, 'release.url must be an http(s) URL (an unreplaced ${aws:iot:s3-presigned-url:…} placeholder is not one)');

/** A free-text note an operator adds (shown in logs and statusDetails, never interpreted). */
const note = (what: string) =>
  z
    .string({ error: `${what} must be a string` })
    .max(256, `${what} must be at most 256 characters`)
    // IoT's own pattern for free text (`[^\p{C}]+`), so it can be copied into statusDetails as is.
    .regex(/^[^\p{C}]*$/u, `${what} must not contain control or format characters`);

export const agentUpdateDocumentSchema = z.strictObject({
  operation: z.literal(JOB_OPERATIONS.agentUpdate),
  version: z
    .string({ error: 'version must be a string' })
    // The release format's own rule: the version names a directory on the device (releases/<version>/).
    .refine(isReleaseVersion, 'version must be a semantic version such as 1.2.3 (at most 64 characters)'),
  release: z.strictObject(
    {
      url: releaseUrl,
      /** The release manifest's bytes, base64 (its format is `@pifleet/protocol`'s release module's). */
      manifest: base64('release.manifest'),
      /** The signature over the manifest's bytes, base64. */
      signature: base64('release.signature'),
    },
    // Only for a release that is not an object: an unknown key inside keeps zod's own message.
    {
      error: (issue) =>
        issue.code === 'invalid_type' ? 'release must be an object with url, manifest and signature' : undefined,
    },
  ),
  reason: note('reason').optional(),
});

/**
 * `config` is a partial desired state. Its keys are checked on the device by the shadow's rules
 * (`splitDesired` and the agent's reconciler, which also knows the device's sensors and outputs),
 * so that a config job and a shadow update accept and reject exactly the same settings; here it
 * only has to be an object with at least one key.
 */
export const configDocumentSchema = z.strictObject({
  operation: z.literal(JOB_OPERATIONS.config),
  config: z
    .custom<Readonly<Record<string, unknown>>>(isJsonObject, 'config must be an object of settings')
    .refine((c) => Object.keys(c).length > 0, 'config must name at least one setting'),
  reason: note('reason').optional(),
});

export const rebootDocumentSchema = z.strictObject({
  operation: z.literal(JOB_OPERATIONS.reboot),
  reason: note('reason').optional(),
});

export type AgentUpdateDocument = z.infer<typeof agentUpdateDocumentSchema>;
export type ConfigDocument = z.infer<typeof configDocumentSchema>;
export type RebootDocument = z.infer<typeof rebootDocumentSchema>;
export type JobDocument = AgentUpdateDocument | ConfigDocument | RebootDocument;

const SCHEMAS: Readonly<Record<JobOperation, z.ZodType<JobDocument>>> = {
  [JOB_OPERATIONS.agentUpdate]: agentUpdateDocumentSchema,
  [JOB_OPERATIONS.config]: configDocumentSchema,
  [JOB_OPERATIONS.reboot]: rebootDocumentSchema,
};

export type JobDocumentParse =
  | { readonly ok: true; readonly document: JobDocument }
  | {
      readonly ok: false;
      /** The document's operation when it names one of pifleet's (its other fields are wrong). */
      readonly operation?: JobOperation;
      /** One line, for statusDetails and logs (bounded: outside text is quoted and cut). */
      readonly reason: string;
      readonly issues: readonly Issue[];
    };

/** Outside text quoted for a message: JSON-escaped, at most 64 characters of it. */
function quoted(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

const fail = (reason: string, issues: readonly Issue[] = [{ path: '$', message: reason }], operation?: JobOperation) =>
  ({ ok: false, reason, issues, ...(operation ? { operation } : {}) }) as const;

/**
 * Parses a job document as the device receives it: the JSON text (the HTTP data plane) or the
 * object (the MQTT API's `execution.jobDocument`). Checks, in this order, so that nothing walks a
 * hostile document before it is known to be bounded: the size (IoT's 32,768 characters), the
 * depth ({@link MAX_JOB_DOCUMENT_DEPTH}, without recursion), the operation, and the operation's
 * own schema (strict: an unknown key, `__proto__` included, is an issue). Never throws.
 */
export function parseJobDocument(input: unknown): JobDocumentParse {
  let value: unknown = input;
  if (input === undefined || input === null) return fail('the execution has no job document');
  if (typeof input === 'string') {
    if (input.length > MAX_JOB_DOCUMENT_CHARS)
      return fail(`job document is larger than ${MAX_JOB_DOCUMENT_CHARS} characters`);
    const parsed = parseJson(input, { maxDepth: MAX_JOB_DOCUMENT_DEPTH });
    if (!parsed.ok)
      return fail(
        parsed.reason === 'depth'
          ? `job document nests more than ${MAX_JOB_DOCUMENT_DEPTH} levels deep`
          : `job document is not JSON: ${parsed.message}`,
      );
    value = parsed.value;
  } else {
    if (jsonValueDepth(input, MAX_JOB_DOCUMENT_DEPTH) > MAX_JOB_DOCUMENT_DEPTH)
      return fail(`job document nests more than ${MAX_JOB_DOCUMENT_DEPTH} levels deep`);
    let text: string | undefined;
    try {
      text = JSON.stringify(input);
    } catch {
      text = undefined;
    }
    if (text === undefined) return fail('job document is not JSON');
    if (text.length > MAX_JOB_DOCUMENT_CHARS)
      return fail(`job document is larger than ${MAX_JOB_DOCUMENT_CHARS} characters`);
  }
  if (!isJsonObject(value)) return fail('job document must be a JSON object');
  const operation = Object.hasOwn(value, 'operation') ? value.operation : undefined;
  if (typeof operation !== 'string')
    return fail('job document has no "operation" string', [{ path: 'operation', message: 'required (a string)' }]);
  if (!OPERATIONS.includes(operation)) {
    const reason = `unknown operation ${quoted(operation)}; this agent runs ${OPERATIONS.join(', ')}`;
    return fail(reason, [{ path: 'operation', message: reason }]);
  }
  const op = operation as JobOperation;
  const result = SCHEMAS[op].safeParse(value);
  if (result.success) return { ok: true, document: result.data };
  const issues = result.error.issues.map((i) => ({
    path: formatPath(i.path.length > 0 ? i.path : unrecognizedPath(i)),
    message: i.message,
  }));
  return fail(`invalid ${op} document: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues, op);
}

/** zod reports unknown keys at the object's path; the message names them. */
function unrecognizedPath(issue: z.core.$ZodIssue): PropertyKey[] {
  return issue.code === 'unrecognized_keys' && issue.keys.length === 1 ? [issue.keys[0] as string] : [];
}

// ---- builders (the CLI writes documents with these) ------------------------------------------

export function agentUpdateDocument(input: Omit<AgentUpdateDocument, 'operation'>): AgentUpdateDocument {
  return { operation: JOB_OPERATIONS.agentUpdate, ...input };
}

export function configDocument(config: Readonly<Record<string, unknown>>, reason?: string): ConfigDocument {
  return { operation: JOB_OPERATIONS.config, config, ...(reason === undefined ? {} : { reason }) };
}

export function rebootDocument(reason?: string): RebootDocument {
  return { operation: JOB_OPERATIONS.reboot, ...(reason === undefined ? {} : { reason }) };
}

// ---- statusDetails ---------------------------------------------------------------------------

/**
 * IoT's rules for `statusDetails` ("JobExecutionState"): at most 10 pairs, keys of 1-128
 * characters `[a-zA-Z0-9:_-]`, values of 1-1,024 characters with no control characters.
 */
export const STATUS_DETAILS_LIMITS = { maxPairs: 10, maxKeyChars: 128, maxValueChars: 1_024 } as const;

/**
 * What the agent reports in an execution's `statusDetails` while it works and when it ends: the
 * step it reached (`step`, the handler's own step names), a human-readable `detail` (a reason on
 * failure), the `version` of a release, and for a config job what it `changed` or `rejected`.
 */
export interface JobProgress {
  readonly operation?: string;
  readonly step: string;
  readonly detail?: string;
  readonly version?: string;
  readonly changed?: string;
  readonly rejected?: string;
}

/**
 * `statusDetails` for a progress report, within IoT's rules: control characters become spaces,
 * values are cut to 1,024 characters (ending in `…`), empty values are left out.
 */
export function jobStatusDetails(progress: JobProgress): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ['operation', 'step', 'detail', 'version', 'changed', 'rejected'] as const) {
    const raw = progress[key];
    if (raw === undefined) continue;
    // IoT's value pattern is `[^\p{C}]+`: control, format, private-use, unassigned and lone
    // surrogate code points are all refused, so each becomes a space.
    let v = raw.replace(/\p{C}/gu, ' ').trim();
    if (v.length > STATUS_DETAILS_LIMITS.maxValueChars) {
      let end = STATUS_DETAILS_LIMITS.maxValueChars - 1;
      // Never cut a surrogate pair in two (its half would be a lone surrogate: \p{Cs}).
      if (/[\uD800-\uDBFF]/.test(v.charAt(end - 1))) end -= 1;
      v = `${v.slice(0, end)}…`;
    }
    if (v !== '') out[key] = v;
  }
  return out;
}
