import {
  isValidShadowName,
  isValidThingName,
  type JsonObject,
  LIMITS,
  parseShadowTopic,
  SHADOW_ERRORS,
  type ShadowErrorCode,
  type ShadowOperation,
  shadowTopics,
} from '@pifleet/protocol';
import {
  applyUpdate,
  deleteDocument,
  epochSeconds,
  getDocument,
  type Outcome,
  reject,
  rejectedPayload,
  type ShadowRejection,
} from '../core/shadow/document.js';
import { tooDeepError } from '../core/shadow/limits.js';
import { parseTokenRequest, parseUpdateRequest, peekClientToken } from '../core/shadow/request.js';
import { KeyedRateLimiter, type ThrottleCounters } from '../limits/index.js';
import { type Logger, silentLogger } from '../logger.js';
import type { ShadowStore } from './store.js';

export interface ShadowClock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export interface ShadowServiceDeps {
  readonly store: ShadowStore;
  /** Sends a message to MQTT subscribers (the broker checks iot:Receive per subscriber). */
  readonly publish: (topic: string, payload: string) => void | Promise<void>;
  readonly clock: ShadowClock;
  readonly logger?: Logger;
  /**
   * Optional registry check. AWS keeps shadows for names that are not registered things, so by
   * default every thing name is accepted; pass this to answer 404 "Thing not found" instead.
   */
  readonly thingExists?: (thingName: string) => boolean | Promise<boolean>;
  /**
   * The Device Shadow quotas to enforce (the local core passes IoT Core's, from its `limits`).
   * Unset: no request rate, 10 requests in flight per thing, an 8 KB document of 6 levels.
   */
  readonly quotas?: Partial<ShadowQuotas>;
  /** Counts each breach of a shadow quota (the core's throttle counters). */
  readonly throttles?: Pick<ThrottleCounters, 'hit'>;
}

/** Device Shadow quotas; null = not enforced. */
export interface ShadowQuotas {
  /**
   * Requests per second per thing: get, update and delete (classic and named shadows alike, over
   * MQTT and HTTP) and ListNamedShadowsForThing. AWS: "this limit is per thing and not per API".
   */
  readonly requestsPerSecondPerThing: number | null;
  /** Requests of one thing queued or running at once; past it, 429. */
  readonly inFlightPerThing: number | null;
  /** Bytes of a stored shadow's state; past it, 413. */
  readonly documentBytes: number | null;
  /** Levels below desired/reported; past it, 400. */
  readonly depth: number | null;
}

export const DEFAULT_SHADOW_QUOTAS: ShadowQuotas = Object.freeze({
  requestsPerSecondPerThing: null,
  inFlightPerThing: LIMITS.maxShadowInFlightPerThing,
  documentBytes: LIMITS.maxShadowDocumentBytes,
  depth: LIMITS.maxShadowDepth,
});

/**
 * The depth a document is held to when `depth` is not enforced: merging and the delta recurse
 * into the document, so some bound must stay (a 100-level document is far past any device's).
 */
const UNENFORCED_DEPTH_CEILING = 100;

/**
 * A data-plane answer: `status` 200 with the response document, or an error status with
 * `{code, message}` and the AWS error type the SDKs read from the `x-amzn-ErrorType` header.
 */
export interface ShadowHttpResult {
  readonly status: number;
  readonly body: JsonObject;
  readonly errorType?: string;
}

export interface ShadowService {
  start(): Promise<void>;
  /** Stops taking requests and waits for the ones in flight. Does not close the store. */
  stop(): Promise<void>;
  /** Handles a PUBLISH on a `$aws/things/{thing}/shadow/...` request topic; ignores other topics. */
  handleMqtt(topic: string, payload: Uint8Array, meta: { clientId: string }): Promise<void>;
  getShadow(thingName: string, shadowName?: string): Promise<ShadowHttpResult>;
  updateShadow(thingName: string, shadowName: string | undefined, body: Uint8Array): Promise<ShadowHttpResult>;
  deleteShadow(thingName: string, shadowName?: string): Promise<ShadowHttpResult>;
  listNamedShadows(thingName: string, options?: { nextToken?: string; pageSize?: number }): Promise<ShadowHttpResult>;
  /** Requests of one thing queued or running now. */
  inFlight(thingName: string): number;
}

/** The AWS IoT data-plane exception name for each shadow error code. */
export const SHADOW_ERROR_TYPES: Readonly<Record<number, string>> = {
  400: 'InvalidRequestException',
  401: 'UnauthorizedException',
  403: 'ForbiddenException',
  404: 'ResourceNotFoundException',
  405: 'MethodNotAllowedException',
  409: 'ConflictException',
  413: 'RequestEntityTooLargeException',
  415: 'UnsupportedDocumentEncodingException',
  429: 'ThrottlingException',
  500: 'InternalFailureException',
  503: 'ServiceUnavailableException',
};

/** ListNamedShadowsForThing page size bounds. */
export const LIST_PAGE_SIZE = { min: 1, max: 100, default: 100 } as const;

type Transport = 'mqtt' | 'http';

interface Lane {
  inFlight: number;
  tail: Promise<unknown>;
}

interface Executed {
  readonly result: Outcome<JsonObject>;
}

export function createShadowService(deps: ShadowServiceDeps): ShadowService {
  const log = (deps.logger ?? silentLogger()).child({ component: 'shadow' });
  const quotas: ShadowQuotas = { ...DEFAULT_SHADOW_QUOTAS, ...deps.quotas };
  const maxInFlight = quotas.inFlightPerThing ?? Number.POSITIVE_INFINITY;
  const documentLimits = {
    maxDocumentBytes: quotas.documentBytes ?? Number.POSITIVE_INFINITY,
    maxDepth: quotas.depth ?? UNENFORCED_DEPTH_CEILING,
  };
  const rate =
    quotas.requestsPerSecondPerThing === null
      ? undefined
      : new KeyedRateLimiter({ ratePerSecond: quotas.requestsPerSecondPerThing });
  const hit = (quota: Parameters<ThrottleCounters['hit']>[0], thingName: string) =>
    deps.throttles?.hit(quota, thingName);
  const lanes = new Map<string, Lane>();
  let stopped = false;

  const encode = (body: JsonObject) => JSON.stringify(body);
  const send = async (topic: string, body: JsonObject) => {
    await deps.publish(topic, encode(body));
  };

  /** Runs `task` after the thing's earlier requests; undefined when the thing has too many in flight. */
  function enqueue<T>(thingName: string, task: () => Promise<T>): Promise<T> | undefined {
    let lane = lanes.get(thingName);
    if (lane === undefined) {
      lane = { inFlight: 0, tail: Promise.resolve() };
      lanes.set(thingName, lane);
    }
    if (lane.inFlight >= maxInFlight) {
      hit('shadowInFlightPerThing', thingName);
      return undefined;
    }
    const current = lane;
    current.inFlight++;
    const run = current.tail.then(task);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    current.tail = settled;
    void settled.then(() => {
      current.inFlight--;
      if (current.inFlight === 0 && lanes.get(thingName) === current) lanes.delete(thingName);
    });
    return run;
  }

  async function thingMissing(thingName: string): Promise<boolean> {
    return deps.thingExists !== undefined && !(await deps.thingExists(thingName));
  }

  function internal(err: unknown, op: ShadowOperation, thingName: string, token: string | undefined): ShadowRejection {
    log.error({ err, op, thingName }, 'shadow request failed');
    return reject(SHADOW_ERRORS.internal, token);
  }

  /** One request, in the thing's lane: load, compute, persist, then publish the resulting events. */
  async function execute(
    op: ShadowOperation,
    thingName: string,
    shadowName: string | undefined,
    payload: Uint8Array,
    via: Transport,
  ): Promise<Executed> {
    const topics = shadowTopics(thingName, shadowName);
    if (op === 'update') {
      let parsed: ReturnType<typeof parseUpdateRequest>;
      try {
        parsed = parseUpdateRequest(payload, documentLimits);
      } catch (err) {
        // Parsing is written not to throw for any input; if it ever does, the request still gets
        // an answer (a silent MQTT request leaves the device waiting for its timeout).
        return { result: { ok: false, error: internal(err, op, thingName, undefined) } };
      }
      if (!parsed.ok) {
        if (parsed.error.message === tooDeepError(documentLimits.maxDepth).message) hit('shadowDepth', thingName);
        return { result: parsed };
      }
      const token = parsed.value.clientToken;
      try {
        if (await thingMissing(thingName))
          return { result: { ok: false, error: reject(SHADOW_ERRORS.thingNotFound, token) } };
        const current = await deps.store.load(thingName, shadowName);
        const outcome = applyUpdate(thingName, shadowName, current, parsed.value, deps.clock.now(), documentLimits);
        if (!outcome.ok) {
          if (outcome.error.code === SHADOW_ERRORS.payloadTooLarge.code) hit('shadowDocumentBytes', thingName);
          return { result: outcome };
        }
        const { next, accepted, delta, documents } = outcome.value;
        await deps.store.save(next);
        log.debug({ thingName, shadowName, version: next.version, via }, 'shadow updated');
        await send(topics.updateAccepted, accepted);
        if (delta !== undefined) await send(topics.updateDelta, delta);
        await send(topics.updateDocuments, documents);
        return { result: { ok: true, value: accepted } };
      } catch (err) {
        return { result: { ok: false, error: internal(err, op, thingName, token) } };
      }
    }

    let tokenRequest: ReturnType<typeof parseTokenRequest>;
    try {
      tokenRequest = via === 'mqtt' ? parseTokenRequest(payload) : { ok: true as const, value: {} };
    } catch (err) {
      return { result: { ok: false, error: internal(err, op, thingName, undefined) } };
    }
    if (!tokenRequest.ok) return { result: tokenRequest };
    const token = tokenRequest.value.clientToken;
    try {
      if (await thingMissing(thingName))
        return { result: { ok: false, error: reject(SHADOW_ERRORS.thingNotFound, token) } };
      const current = await deps.store.load(thingName, shadowName);
      if (op === 'get') return { result: getDocument(thingName, shadowName, current, token, deps.clock.now()) };
      const outcome = deleteDocument(thingName, shadowName, current, token, deps.clock.now());
      if (!outcome.ok) return { result: outcome };
      await deps.store.save(outcome.value.next);
      log.debug({ thingName, shadowName, version: outcome.value.next.version, via }, 'shadow deleted');
      await send(topics.deleteAccepted, outcome.value.accepted);
      return { result: { ok: true, value: outcome.value.accepted } };
    } catch (err) {
      return { result: { ok: false, error: internal(err, op, thingName, token) } };
    }
  }

  /** Takes one of the thing's requests per second; false (counted) when it has none left. */
  function withinRate(thingName: string): boolean {
    if (rate === undefined || rate.tryTake(thingName, deps.clock.now())) return true;
    hit('shadowRequestsPerSecondPerThing', thingName);
    return false;
  }

  function tooMany(token: string | undefined): ShadowRejection {
    return reject(SHADOW_ERRORS.tooManyRequests, token);
  }

  function httpError(rejection: ShadowRejection): ShadowHttpResult {
    return {
      status: rejection.code,
      body: { code: rejection.code, message: rejection.message },
      errorType: SHADOW_ERROR_TYPES[rejection.code] ?? 'InternalFailureException',
    };
  }

  function badRequest(message: string): ShadowHttpResult {
    return httpError({ code: 400, message });
  }

  function checkNames(thingName: string, shadowName: string | undefined): ShadowHttpResult | undefined {
    if (!isValidThingName(thingName)) return badRequest('Invalid thing name');
    if (shadowName !== undefined && !isValidShadowName(shadowName)) return badRequest('Invalid shadow name');
    return undefined;
  }

  async function viaHttp(
    op: ShadowOperation,
    thingName: string,
    shadowName: string | undefined,
    body: Uint8Array,
  ): Promise<ShadowHttpResult> {
    const invalid = checkNames(thingName, shadowName);
    if (invalid !== undefined) return invalid;
    if (stopped) return httpError(reject(unavailable));
    if (!withinRate(thingName)) return httpError(tooMany(undefined));
    const run = enqueue(thingName, () => execute(op, thingName, shadowName, body, 'http'));
    if (run === undefined) return httpError(tooMany(undefined));
    const { result } = await run;
    return result.ok ? { status: 200, body: result.value } : httpError(result.error);
  }

  const unavailable = { code: 503 as ShadowErrorCode, message: 'Service Unavailable' };
  const empty = new Uint8Array(0);

  return {
    start: async () => {
      stopped = false;
    },

    stop: async () => {
      stopped = true;
      await Promise.all([...lanes.values()].map((lane) => lane.tail));
    },

    handleMqtt: async (topic, payload, meta) => {
      const parsed = parseShadowTopic(topic);
      if (parsed === undefined || parsed.response !== undefined) return;
      const { thingName, shadowName, operation } = parsed;
      const topics = shadowTopics(thingName, shadowName);
      const rejectedTopic =
        operation === 'get'
          ? topics.getRejected
          : operation === 'update'
            ? topics.updateRejected
            : topics.deleteRejected;
      const acceptedTopic = operation === 'get' ? topics.getAccepted : undefined;
      if (stopped) {
        await send(rejectedTopic, rejectedPayload(reject(unavailable, peekClientToken(payload)), deps.clock.now()));
        return;
      }
      if (!withinRate(thingName)) {
        log.debug({ thingName, clientId: meta.clientId }, 'shadow request over the per-thing rate');
        await send(rejectedTopic, rejectedPayload(tooMany(peekClientToken(payload)), deps.clock.now()));
        return;
      }
      const run = enqueue(thingName, async () => {
        const { result } = await execute(operation, thingName, shadowName, payload, 'mqtt');
        // Update and delete publish their accepted messages inside execute (HTTP requests publish them too).
        if (result.ok && acceptedTopic !== undefined) await send(acceptedTopic, result.value);
        if (!result.ok) {
          log.debug(
            { thingName, shadowName, operation, code: result.error.code, clientId: meta.clientId },
            'shadow request rejected',
          );
          await send(rejectedTopic, rejectedPayload(result.error, deps.clock.now()));
        }
      });
      if (run === undefined) {
        // Counted (and logged, summarised) by the throttle counters; one line per request would let
        // a flooding device flood the log too.
        log.debug({ thingName, clientId: meta.clientId }, 'shadow requests in flight over the limit');
        await send(rejectedTopic, rejectedPayload(tooMany(peekClientToken(payload)), deps.clock.now()));
        return;
      }
      await run;
    },

    getShadow: (thingName, shadowName) => viaHttp('get', thingName, shadowName, empty),
    updateShadow: (thingName, shadowName, body) => viaHttp('update', thingName, shadowName, body),
    deleteShadow: (thingName, shadowName) => viaHttp('delete', thingName, shadowName, empty),

    listNamedShadows: async (thingName, options = {}) => {
      const invalid = checkNames(thingName, undefined);
      if (invalid !== undefined) return invalid;
      if (!withinRate(thingName)) return httpError(tooMany(undefined));
      const pageSize = options.pageSize ?? LIST_PAGE_SIZE.default;
      if (!Number.isInteger(pageSize) || pageSize < LIST_PAGE_SIZE.min || pageSize > LIST_PAGE_SIZE.max) {
        return badRequest(`pageSize must be between ${LIST_PAGE_SIZE.min} and ${LIST_PAGE_SIZE.max}`);
      }
      let after: string | undefined;
      if (options.nextToken !== undefined) {
        after = decodeNextToken(options.nextToken);
        if (after === undefined) return badRequest('Invalid nextToken');
      }
      try {
        const timestamp = epochSeconds(deps.clock.now());
        if (await thingMissing(thingName)) return { status: 200, body: { results: [], timestamp } };
        // One extra row tells whether another page follows.
        const names = await deps.store.listNamed(thingName, {
          ...(after === undefined ? {} : { after }),
          limit: pageSize + 1,
        });
        const results = names.slice(0, pageSize);
        const body: JsonObject = { results, timestamp };
        const last = results.at(-1);
        if (names.length > pageSize && last !== undefined) body.nextToken = encodeNextToken(last);
        return { status: 200, body };
      } catch (err) {
        return httpError(internal(err, 'get', thingName, undefined));
      }
    },

    inFlight: (thingName) => lanes.get(thingName)?.inFlight ?? 0,
  };
}

function encodeNextToken(lastName: string): string {
  return Buffer.from(`v1:${lastName}`, 'utf8').toString('base64url');
}

function decodeNextToken(token: string): string | undefined {
  const text = Buffer.from(token, 'base64url').toString('utf8');
  if (!text.startsWith('v1:')) return undefined;
  const name = text.slice(3);
  return isValidShadowName(name) ? name : undefined;
}
