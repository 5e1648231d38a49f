import {
  type Issue,
  isJsonObject,
  isValidThingName,
  type JsonObject,
  type JsonValue,
  LIMITS,
  MAX_CLIENT_TOKEN_BYTES,
  parseJson,
  setOwn,
  utf8Length,
  validateDesiredState,
} from '@pifleet/protocol';
import type { ConnectivityRecord } from '../../ports/telemetry-store.js';
import { badRequest, jsonResponse, type QueryApiResponse } from '../telemetry/query-api.js';
import { ShadowUpdateRejectedError, ShadowVersionConflictError, UpstreamUnavailableError } from './errors.js';

/**
 * The command API, as pure request → response logic over three ports (the Lambda handler and the
 * local HTTP endpoint are shells around it):
 *
 *   PUT /things/{thing}/desired       body {desired: {...}, expectedVersion?, clientToken?}
 *   GET /things/{thing}/shadow
 *   GET /things/{thing}/connectivity
 *
 * PUT validates `desired` against the protocol's desired-state schema (every problem listed,
 * 400); a `null` leaf clears that desired key (as in a shadow update) and is not validated.
 * `expectedVersion` makes the write conditional: the shadow update carries it as `version`,
 * and a shadow at another version answers 409. Every route answers 404 for a thing the registry
 * does not hold (a shadow can exist without a thing in IoT; this API only serves registered things).
 */

export const COMMAND_ROUTES = [
  { method: 'PUT', path: '/things/{thingName}/desired' },
  { method: 'GET', path: '/things/{thingName}/shadow' },
  { method: 'GET', path: '/things/{thingName}/connectivity' },
] as const;

/** The thing registry, as far as this API needs it. */
export interface ThingDirectory {
  thingExists(thingName: string): Promise<boolean>;
}

/** A shadow update request document: `{state: {desired}, version?, clientToken?}`. */
export interface DesiredUpdate {
  readonly state: { readonly desired: JsonObject };
  readonly version?: number;
  readonly clientToken?: string;
}

/** The classic shadow of a thing through the IoT data plane. */
export interface ShadowGateway {
  /** The shadow document, or undefined when the thing has no shadow. */
  get(thingName: string): Promise<JsonObject | undefined>;
  /**
   * Applies an update and returns the accepted document. Throws {@link ShadowVersionConflictError}
   * on a version mismatch and {@link ShadowUpdateRejectedError} when the service refuses the document.
   */
  update(thingName: string, update: DesiredUpdate): Promise<JsonObject>;
}

export interface CommandApiDeps {
  readonly things: ThingDirectory;
  readonly shadows: ShadowGateway;
  readonly connectivity: { getConnectivity(thingName: string): Promise<ConnectivityRecord | undefined> };
}

export interface CommandApiRequest {
  readonly method: string;
  /** Path without the stage prefix, for example `/things/pi-01/desired`. */
  readonly path: string;
  readonly body: string | undefined;
}

export type CommandApiResponse = QueryApiResponse;

const ROUTE = /^\/things\/([^/]+)\/(desired|shadow|connectivity)\/?$/;
const METHOD_OF: Readonly<Record<string, string>> = { desired: 'PUT', shadow: 'GET', connectivity: 'GET' };
const BODY_KEYS = new Set(['desired', 'expectedVersion', 'clientToken']);

const isObject: (v: unknown) => v is Record<string, unknown> = isJsonObject;

/**
 * How deep a PUT body may nest: the body and `desired` (2), then what a shadow section may hold
 * below itself (IoT's limit of 6 levels, plus the section's own object). A deeper body could
 * only be refused by the shadow, and is refused here before anything walks it.
 */
const MAX_BODY_DEPTH = 2 + LIMITS.maxShadowDepth + 1;

/**
 * A copy without `null` leaves (they clear keys and need no validation). The keys are outside
 * input: `__proto__` is copied as an own key, so the validator sees it (and refuses it).
 */
function withoutNulls(value: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === null) continue;
    setOwn(out, k, isObject(v) ? withoutNulls(v) : v);
  }
  return out;
}

/** Validates a PUT body; every problem, each with its path under `body.`. */
export function parseDesiredRequest(
  body: string | undefined,
): { ok: true; value: DesiredUpdate } | { ok: false; issues: Issue[] } {
  let parsed: unknown;
  if (body !== undefined && body !== '') {
    const result = parseJson(body, { maxDepth: MAX_BODY_DEPTH });
    if (!result.ok) {
      const message =
        result.reason === 'depth'
          ? `is nested too deeply: a desired state has at most ${LIMITS.maxShadowDepth} levels (IoT's shadow limit)`
          : 'must be JSON';
      return { ok: false, issues: [{ path: 'body', message }] };
    }
    parsed = result.value;
  }
  if (!isObject(parsed)) {
    return {
      ok: false,
      issues: [{ path: 'body', message: 'must be a JSON object {desired, expectedVersion?, clientToken?}' }],
    };
  }
  const issues: Issue[] = [];
  for (const key of Object.keys(parsed).sort()) {
    if (!BODY_KEYS.has(key)) {
      issues.push({ path: `body.${key}`, message: 'unknown field; expected desired, expectedVersion, clientToken' });
    }
  }
  const { desired, expectedVersion, clientToken } = parsed;
  if (desired === undefined) {
    issues.push({ path: 'body.desired', message: 'is required' });
  } else if (!isObject(desired)) {
    issues.push({ path: 'body.desired', message: 'must be an object of desired keys' });
  } else if (Object.keys(desired).length === 0) {
    issues.push({ path: 'body.desired', message: 'must set or clear at least one key' });
  } else {
    const checked = validateDesiredState(withoutNulls(desired));
    if (!checked.ok) {
      for (const issue of checked.issues) {
        issues.push({
          path: issue.path === '$' ? 'body.desired' : `body.desired.${issue.path}`,
          message: issue.message,
        });
      }
    }
  }
  if (
    expectedVersion !== undefined &&
    (typeof expectedVersion !== 'number' || !Number.isSafeInteger(expectedVersion) || expectedVersion < 1)
  ) {
    issues.push({ path: 'body.expectedVersion', message: 'must be a positive integer (the shadow version you read)' });
  }
  if (
    clientToken !== undefined &&
    (typeof clientToken !== 'string' || utf8Length(clientToken) > MAX_CLIENT_TOKEN_BYTES)
  ) {
    issues.push({ path: 'body.clientToken', message: `must be a string of at most ${MAX_CLIENT_TOKEN_BYTES} bytes` });
  }
  if (issues.length > 0) return { ok: false, issues };
  return {
    ok: true,
    value: {
      state: { desired: desired as JsonObject },
      ...(expectedVersion === undefined ? {} : { version: expectedVersion as number }),
      ...(clientToken === undefined ? {} : { clientToken: clientToken as string }),
    },
  };
}

function notFound(thingName: string): CommandApiResponse {
  return jsonResponse(404, { message: `thing ${thingName} not found` });
}

export async function handleCommandRequest(req: CommandApiRequest, deps: CommandApiDeps): Promise<CommandApiResponse> {
  const match = ROUTE.exec(req.path);
  if (match === null) return jsonResponse(404, { message: `no route for ${req.path}` });
  const resource = match[2] as 'desired' | 'shadow' | 'connectivity';
  const allowed = METHOD_OF[resource] as string;
  if (req.method !== allowed) {
    return jsonResponse(405, { message: `${req.method} is not allowed here; use ${allowed}` }, { allow: allowed });
  }
  let thingName: string;
  try {
    thingName = decodeURIComponent(match[1] ?? '');
  } catch {
    thingName = match[1] ?? '';
  }
  const thingIssues: Issue[] = isValidThingName(thingName)
    ? []
    : [{ path: 'path.thing', message: 'must be 1-128 characters of a-z A-Z 0-9 : _ -' }];

  try {
    if (resource === 'desired') {
      const parsed = parseDesiredRequest(req.body);
      const issues = [...thingIssues, ...(parsed.ok ? [] : parsed.issues)];
      if (issues.length > 0 || !parsed.ok) return badRequest(issues);
      if (!(await deps.things.thingExists(thingName))) return notFound(thingName);
      return await updateDesired(thingName, parsed.value, deps);
    }
    if (thingIssues.length > 0) return badRequest(thingIssues);
    if (!(await deps.things.thingExists(thingName))) return notFound(thingName);
    if (resource === 'shadow') {
      const doc = await deps.shadows.get(thingName);
      if (doc === undefined) return jsonResponse(404, { message: `thing ${thingName} has no shadow yet` });
      return jsonResponse(200, { thingName, ...doc });
    }
    const record = await deps.connectivity.getConnectivity(thingName);
    return jsonResponse(200, { thingName, connected: record?.connected ?? false, lastEvent: record ?? null });
  } catch (err) {
    if (err instanceof UpstreamUnavailableError) {
      return jsonResponse(503, { message: 'IoT is unavailable or throttling; retry later' }, { 'retry-after': '1' });
    }
    throw err;
  }
}

async function updateDesired(
  thingName: string,
  update: DesiredUpdate,
  deps: CommandApiDeps,
): Promise<CommandApiResponse> {
  let accepted: JsonObject;
  try {
    accepted = await deps.shadows.update(thingName, update);
  } catch (err) {
    if (err instanceof ShadowVersionConflictError) {
      const current = await deps.shadows.get(thingName).catch(() => undefined);
      const currentVersion: JsonValue = typeof current?.version === 'number' ? current.version : null;
      return jsonResponse(409, {
        message: `the shadow of ${thingName} is no longer at version ${update.version}; read it again and retry`,
        expectedVersion: update.version ?? null,
        currentVersion,
      });
    }
    if (err instanceof ShadowUpdateRejectedError) {
      return jsonResponse(err.status, { message: 'the shadow service refused the update', reason: err.message });
    }
    throw err;
  }
  return jsonResponse(200, { thingName, ...accepted });
}
