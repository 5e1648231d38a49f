import { isUtf8 } from 'node:buffer';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isJsonObject, parseJson } from '@pifleet/protocol';
import { CloudError } from '../errors.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { RegistryError } from '../registry/errors.js';
import type { CredentialStore } from './credentials.js';
import { ApiError, invalidRequest } from './errors.js';
import { type SigV4Principal, verifySigV4 } from './sigv4.js';

/**
 * The local IoT Core's HTTP server: one listener for every AWS-shaped API (IoT control plane, IoT
 * data plane, command API) and the web console. Each API is a RouteGroup with the SigV4 signing
 * names it accepts. Every request is read (size-limited), SigV4-verified, routed, and answered in
 * AWS's REST-JSON shape; failures carry `x-amzn-ErrorType` and `{message}` so AWS SDKs raise the
 * same exception classes they raise against AWS. A group with its own authentication (the console)
 * is routed, read and error-mapped the same way, but checks its own credentials instead of SigV4
 * and answers without AWS's headers.
 */

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';

export interface ApiRequest {
  readonly method: HttpMethod;
  /** Percent-decoded path labels, by the names in the route's `{label}` placeholders. */
  readonly params: Readonly<Record<string, string>>;
  /** Percent-decoded query parameters (first value of each name). */
  readonly query: ReadonlyMap<string, string>;
  /** Lowercase header names; repeated headers joined with ', '. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  /** Who signed the request; undefined in a group with its own authentication. */
  readonly principal: SigV4Principal | undefined;
  readonly requestId: string;
  readonly logger: Logger;
  /**
   * The body parsed as a JSON object (`{}` when empty); 400 InvalidRequestException when it is not
   * UTF-8, not JSON, nested deeper than MAX_JSON_DEPTH, or not an object.
   */
  json(): Record<string, unknown>;
}

export interface ApiResponse {
  /** Default 200. */
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** Serialized as JSON (application/json). */
  readonly json?: unknown;
  /** A raw body, sent as is (set content-type in headers). */
  readonly body?: string | Uint8Array;
}

/** A response the route writes itself (Server-Sent Events) instead of a body the server sends. */
export interface StreamResponse {
  /** Takes the response over: writes the head, then the stream, and ends it (or the client leaves). */
  readonly stream: (res: ServerResponse) => void;
}

export type RouteResponse = ApiResponse | StreamResponse;

export interface Route {
  readonly method: HttpMethod;
  /** Path template, e.g. `/things/{thingName}/principals`. A label matches one path segment. */
  readonly path: string;
  /** Operation name for logs, e.g. `CreateThing`. */
  readonly operation: string;
  handle(request: ApiRequest): RouteResponse | Promise<RouteResponse>;
}

/** A request no route template matched, for route groups that dispatch on their own. */
export interface UnmatchedRequest {
  readonly method: string;
  /** The path without the query string, still percent-encoded. */
  readonly rawPath: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
  readonly principal: SigV4Principal;
  readonly requestId: string;
  readonly logger: Logger;
}

/** What a group with its own authentication sees of a request before its body is read. */
export interface RequestHead {
  readonly method: string;
  /** The path without the query string, still percent-encoded. */
  readonly rawPath: string;
  /** The query string as sent, without the `?`. */
  readonly rawQuery: string;
  /** Query parameters as a browser's form encoding reads them (`+` is a space; first value of each name). */
  readonly query: ReadonlyMap<string, string>;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly requestId: string;
  readonly logger: Logger;
}

/**
 * How a group that is not SigV4-signed reaches its routes: the web console, which checks its own
 * session cookie. Every request whose path is `prefix` or starts with `prefix/` is the group's alone
 * (other groups never see these paths): `admit` sees it first, before any route matches and before
 * its body is read; then it goes to the group's routes like a signed request (templates, one
 * size-limited body reader, thrown errors mapped to their status and message), and `unmatched`
 * answers when no route does. Its responses carry `headers` (under each response's own), JSON as
 * `application/json; charset=utf-8`, and none of AWS's headers.
 */
export interface OwnAuthentication {
  readonly prefix: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Largest request body the group's routes accept; default the server's. */
  readonly maxBodyBytes?: number;
  /** A response refuses (or redirects) the request; undefined lets it on to the routes. */
  admit(request: RequestHead): ApiResponse | undefined;
  /** The answer for a request no route of the group matches (e.g. 404, or 405 for another method). */
  unmatched(request: RequestHead): ApiResponse;
}

/**
 * A group that takes whole requests over before the server reads their bodies: the local S3 subset,
 * whose objects are streamed to disk (far past the server's body limit) and whose requests carry
 * S3's own signing rules (the payload hash in `x-amz-content-sha256`, presigned query strings) and
 * S3's XML errors. `claims` sees only the request head; a claimed request is the group's alone.
 */
export interface RawRequestHandler {
  claims(head: RequestHead): boolean;
  /** Answers the request (reads the body itself); must not throw. */
  serve(req: IncomingMessage, res: ServerResponse, head: RequestHead): Promise<void>;
}

export interface RouteGroup {
  readonly name: string;
  /** SigV4 service names a request to this group may be signed for (e.g. `iot`); none with `ownAuth`. */
  readonly signingNames: readonly string[];
  readonly routes: readonly Route[];
  /**
   * Optional own dispatcher, tried (in group order) for signed requests no route template matched
   * and whose signing name the group accepts. Return undefined when the path is not the group's.
   * Thrown ApiError/RegistryError map to AWS's error shape as for routes.
   */
  readonly fallback?: (request: UnmatchedRequest) => ApiResponse | undefined | Promise<ApiResponse | undefined>;
  /** Not SigV4: the group authenticates its own requests, under its own path prefix. */
  readonly ownAuth?: OwnAuthentication;
  /** Takes claimed requests over before their body is read (no routes, no SigV4 check by the server). */
  readonly raw?: RawRequestHandler;
}

export interface HttpServerOptions {
  readonly host: string;
  /** 0 picks an ephemeral port. */
  readonly port: number;
  readonly region: string;
  readonly credentials: CredentialStore;
  readonly routes: readonly RouteGroup[];
  /** Current time in ms since the epoch (signature freshness). */
  readonly now: () => number;
  readonly logger?: Logger;
  /** Largest request body accepted; larger gets 413. Default 1 MiB. */
  readonly maxBodyBytes?: number;
  /**
   * Asked before a signed request's route runs, with the route's operation name: false answers
   * 429 ThrottlingException and runs nothing (IoT Core's per-operation API rates; the limits
   * module's ApiRateGate). Absent: no rates.
   */
  readonly admit?: (operation: string, now: number) => boolean;
}

export interface HttpServerHandle {
  start(): Promise<{ host: string; port: number; url: string }>;
  stop(): Promise<void>;
}

export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

/** Status codes of the errors the registry raises, by AWS exception name. */
const REGISTRY_STATUS: Readonly<Record<RegistryError['code'], number>> = {
  ResourceNotFoundException: 404,
  ResourceAlreadyExistsException: 409,
  DeleteConflictException: 409,
  CertificateStateException: 406,
  InvalidRequestException: 400,
  VersionConflictException: 409,
  MalformedPolicyException: 400,
  LimitExceededException: 410,
};

interface CompiledRoute {
  readonly route: Route;
  readonly group: RouteGroup;
  readonly segments: readonly ({ label: string } | { literal: string })[];
}

function compile(groups: readonly RouteGroup[]): CompiledRoute[] {
  return groups.flatMap((group) =>
    group.routes.map((route) => ({
      route,
      group,
      segments: route.path
        .split('/')
        .filter((s) => s !== '')
        .map((s) => {
          const m = /^\{(\w+)\}$/.exec(s);
          return m ? { label: m[1] as string } : { literal: s };
        }),
    })),
  );
}

/**
 * The route a request names. Two APIs may share a method and path on AWS's separate endpoints
 * (the IoT control plane's and the jobs data plane's GET /things/{thingName}/jobs/{jobId}); on this
 * one listener the request's signing `service` picks the group that accepts it. A route of another
 * group is still returned when none accepts it, so the caller answers that the credential is
 * scoped to the wrong service.
 */
function matchRoute(
  routes: readonly CompiledRoute[],
  method: string,
  rawPath: string,
  service?: string,
): { match?: { compiled: CompiledRoute; params: Record<string, string> }; pathExists: boolean } {
  const parts = rawPath.split('/').filter((s) => s !== '');
  let pathExists = false;
  let otherService: { compiled: CompiledRoute; params: Record<string, string> } | undefined;
  for (const compiled of routes) {
    if (compiled.segments.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < parts.length && ok; i++) {
      const seg = compiled.segments[i] as { label: string } | { literal: string };
      const part = parts[i] as string;
      if ('literal' in seg) ok = seg.literal === part;
      else {
        try {
          params[seg.label] = decodeURIComponent(part);
        } catch {
          ok = false;
        }
      }
    }
    if (!ok) continue;
    pathExists = true;
    if (compiled.route.method !== method) continue;
    if (service === undefined || compiled.group.signingNames.includes(service)) {
      return { match: { compiled, params }, pathExists };
    }
    otherService ??= { compiled, params };
  }
  return otherService === undefined ? { pathExists } : { match: otherService, pathExists };
}

function parseQuery(rawQuery: string): Map<string, string> {
  const query = new Map<string, string>();
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    try {
      const key = decodeURIComponent(eq === -1 ? part : part.slice(0, eq));
      const value = decodeURIComponent(eq === -1 ? '' : part.slice(eq + 1));
      if (!query.has(key)) query.set(key, value);
    } catch {
      throw invalidRequest('The query string is not validly percent-encoded.');
    }
  }
  return query;
}

class BodyTooLarge extends Error {}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (Number.isFinite(declared) && declared > limit) {
      reject(new BodyTooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new BodyTooLarge());
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** How responses go out: headers under each response's own, and the content type of JSON bodies. */
interface Wire {
  readonly headers: Readonly<Record<string, string>>;
  readonly jsonType: string;
}

const awsWire = (requestId: string): Wire => ({
  headers: { 'x-amzn-RequestId': requestId },
  jsonType: 'application/json',
});

function send(res: ServerResponse, wire: Wire, response: ApiResponse): void {
  const headers: Record<string, string> = { ...wire.headers, ...(response.headers ?? {}) };
  let body: string | Uint8Array = '';
  if (response.json !== undefined) {
    body = JSON.stringify(response.json);
    headers['content-type'] = wire.jsonType;
  } else if (response.body !== undefined) {
    body = response.body;
  }
  headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(response.status ?? 200, headers);
  res.end(body);
}

function reply(res: ServerResponse, wire: Wire, response: RouteResponse): void {
  if ('stream' in response) response.stream(res);
  else send(res, wire, response);
}

function errorResponse(errorType: string, status: number, message: string, fields: Record<string, string> = {}) {
  return { status, headers: { 'x-amzn-ErrorType': errorType }, json: { message, ...fields } } satisfies ApiResponse;
}

interface MappedError {
  readonly errorType: string;
  readonly status: number;
  readonly message: string;
  readonly fields: Readonly<Record<string, string>>;
  /** Not an error the request caused: log it as a failure. */
  readonly internal: boolean;
}

function mapError(err: unknown): MappedError {
  if (err instanceof ApiError) {
    return { errorType: err.errorType, status: err.status, message: err.message, fields: err.fields, internal: false };
  }
  if (err instanceof RegistryError) {
    return {
      errorType: err.code,
      status: REGISTRY_STATUS[err.code] ?? 400,
      message: err.message,
      fields: {},
      internal: false,
    };
  }
  return {
    errorType: 'InternalFailureException',
    status: 500,
    message: 'An unexpected error has occurred.',
    fields: {},
    internal: true,
  };
}

/** Maps anything a handler throws to AWS's error shape. */
export function toErrorResponse(err: unknown): { response: ApiResponse; internal: boolean } {
  const m = mapError(err);
  return { response: errorResponse(m.errorType, m.status, m.message, { ...m.fields }), internal: m.internal };
}

/** The same mapping without AWS's error header, for a group with its own authentication. */
function toPlainErrorResponse(err: unknown): { response: ApiResponse; internal: boolean } {
  const m = mapError(err);
  return { response: { status: m.status, json: { message: m.message, ...m.fields } }, internal: m.internal };
}

/** Reads the body within `limit`; past it, 413 (as an ApiError) and the connection closes. */
async function readBodyWithin(req: IncomingMessage, res: ServerResponse, limit: number, log: Logger): Promise<Buffer> {
  try {
    return await readBody(req, limit);
  } catch (err) {
    if (!(err instanceof BodyTooLarge)) throw err;
    log.warn({ maxBody: limit }, 'request body too large');
    // The rest of the body is left unread, so the connection cannot carry another request.
    res.setHeader('connection', 'close');
    throw new ApiError('RequestEntityTooLargeException', 413, `Request body exceeds ${limit} bytes.`);
  }
}

function apiRequest(fields: Omit<ApiRequest, 'json'>): ApiRequest {
  let parsed: Record<string, unknown> | undefined;
  return {
    ...fields,
    json() {
      if (parsed) return parsed;
      if (fields.body.length === 0) {
        parsed = {};
        return parsed;
      }
      // toString('utf8') turns a byte that is not UTF-8 into U+FFFD: a name, description or
      // document would be stored with text nobody sent.
      if (!isUtf8(fields.body)) throw invalidRequest('The request body is not valid UTF-8.');
      // Routes read bodies field by field and ignore members they do not know, so without the
      // depth check a 10,000-deep `tags` list or unknown member was accepted as if absent, and any
      // later recursive walk of a stored value could overflow the stack. AWS documents no depth
      // limit; the core refuses any JSON input deeper than MAX_JSON_DEPTH (64).
      const result = parseJson(fields.body.toString('utf8'));
      if (!result.ok) {
        throw invalidRequest(
          result.reason === 'depth' ? result.message : `The request body is not valid JSON: ${result.message}`,
        );
      }
      if (!isJsonObject(result.value)) throw invalidRequest('The request body must be a JSON object.');
      parsed = result.value;
      return parsed;
    },
  };
}

/** Query parameters as a browser's form encoding reads them (lenient: never refuses a request). */
function formQuery(rawQuery: string): Map<string, string> {
  const query = new Map<string, string>();
  for (const [key, value] of new URLSearchParams(rawQuery)) if (!query.has(key)) query.set(key, value);
  return query;
}

interface OwnGroup {
  readonly group: RouteGroup;
  readonly auth: OwnAuthentication;
  readonly routes: readonly CompiledRoute[];
}

function compileOwn(group: RouteGroup, auth: OwnAuthentication): OwnGroup {
  for (const route of group.routes) {
    if (!route.path.startsWith(`${auth.prefix}/`) && route.path !== auth.prefix) {
      throw new CloudError(
        'HTTP_ROUTE_OUTSIDE_PREFIX',
        `route ${route.path} of ${group.name} is outside its prefix ${auth.prefix}`,
      );
    }
  }
  return { group, auth, routes: compile([group]) };
}

const PLAIN_JSON = 'application/json; charset=utf-8';

export function createHttpServer(options: HttpServerOptions): HttpServerHandle {
  const logger = (options.logger ?? silentLogger()).child({ component: 'http' });
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const signedGroups = options.routes.filter((g) => g.ownAuth === undefined);
  const routes = compile(signedGroups);
  const ownGroups = options.routes.flatMap((g) => (g.ownAuth === undefined ? [] : [compileOwn(g, g.ownAuth)]));
  const services = [...new Set(signedGroups.flatMap((g) => g.signingNames))];
  const rawHandlers = options.routes.flatMap((g) => (g.raw === undefined ? [] : [g.raw]));
  let server: Server | undefined;

  /** A request under a group's own prefix: its admission, then its routes; never SigV4. */
  async function handleOwn(
    { auth, routes: ownRoutes }: OwnGroup,
    req: IncomingMessage,
    res: ServerResponse,
    head: RequestHead,
  ) {
    const wire: Wire = { headers: auth.headers ?? {}, jsonType: PLAIN_JSON };
    const log = head.logger;
    let response: RouteResponse;
    try {
      const refused = auth.admit(head);
      if (refused !== undefined) {
        send(res, wire, refused);
        return;
      }
      const { match } = matchRoute(ownRoutes, head.method, head.rawPath);
      if (!match) {
        send(res, wire, auth.unmatched(head));
        return;
      }
      const body = await readBodyWithin(req, res, auth.maxBodyBytes ?? maxBody, log);
      const opLog = log.child({ operation: match.compiled.route.operation });
      response = await match.compiled.route.handle(
        apiRequest({
          method: head.method as HttpMethod,
          params: match.params,
          query: head.query,
          headers: head.headers,
          body,
          principal: undefined,
          requestId: head.requestId,
          logger: opLog,
        }),
      );
    } catch (err) {
      const mapped = toPlainErrorResponse(err);
      if (mapped.internal) log.error({ err }, 'request failed');
      response = mapped.response;
    }
    reply(res, wire, response);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q === -1 ? url : url.slice(0, q);
    const rawQuery = q === -1 ? '' : url.slice(q + 1);
    const method = (req.method ?? 'GET').toUpperCase();
    const log = logger.child({ requestId, method, path: rawPath });
    const wire = awsWire(requestId);

    if (rawHandlers.length > 0) {
      const head: RequestHead = {
        method,
        rawPath,
        rawQuery,
        query: formQuery(rawQuery),
        headers: req.headers,
        requestId,
        logger: log,
      };
      const raw = rawHandlers.find((h) => h.claims(head));
      if (raw !== undefined) {
        await raw.serve(req, res, head);
        return;
      }
    }

    const own = ownGroups.find(({ auth }) => rawPath === auth.prefix || rawPath.startsWith(`${auth.prefix}/`));
    if (own !== undefined) {
      await handleOwn(own, req, res, {
        method,
        rawPath,
        rawQuery,
        query: formQuery(rawQuery),
        headers: req.headers,
        requestId,
        logger: log.child({ group: own.group.name }),
      });
      return;
    }

    let body: Buffer;
    try {
      body = await readBodyWithin(req, res, maxBody, log);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      send(res, wire, toErrorResponse(err).response);
      return;
    }

    const auth = verifySigV4(
      { method, rawPath, rawQuery, rawHeaders: req.rawHeaders, body },
      { region: options.region, services, secretFor: (id) => options.credentials.secretFor(id), now: options.now },
    );
    if (!auth.ok) {
      log.warn({ errorType: auth.errorType }, 'request rejected: signature');
      send(res, wire, errorResponse(auth.errorType, 403, auth.message));
      return;
    }
    const principal: SigV4Principal = { accessKeyId: auth.accessKeyId, service: auth.service, region: auth.region };

    const { match, pathExists } = matchRoute(routes, method, rawPath, auth.service);
    if (!match) {
      for (const group of signedGroups) {
        if (!group.fallback || !group.signingNames.includes(auth.service)) continue;
        let response: ApiResponse | undefined;
        try {
          response = await group.fallback({
            method,
            rawPath,
            query: new URLSearchParams(rawQuery),
            headers: req.headers,
            body,
            principal,
            requestId,
            logger: log.child({ group: group.name }),
          });
        } catch (err) {
          const mapped = toErrorResponse(err);
          if (mapped.internal) log.error({ err, group: group.name }, 'request failed');
          response = mapped.response;
        }
        if (response) {
          send(res, wire, response);
          return;
        }
      }
      const response = pathExists
        ? errorResponse('MethodNotAllowedException', 405, `Method ${method} is not allowed on ${rawPath}.`)
        : errorResponse('UnknownOperationException', 404, `No operation matches ${method} ${rawPath}.`);
      send(res, wire, response);
      return;
    }
    const { compiled, params } = match;
    if (!compiled.group.signingNames.includes(auth.service)) {
      send(
        res,
        wire,
        errorResponse(
          'InvalidSignatureException',
          403,
          `Credential should be scoped to correct service: '${compiled.group.signingNames.join("' or '")}'.`,
        ),
      );
      return;
    }

    const operation = compiled.route.operation;
    const opLog = log.child({ operation });
    // After the signature (an unsigned request is no account's, so it spends no account's rate),
    // before the handler: a throttled request changes nothing and may be retried as is.
    if (options.admit !== undefined && !options.admit(operation, options.now())) {
      opLog.debug('request throttled');
      send(res, wire, errorResponse('ThrottlingException', 429, 'Rate exceeded'));
      return;
    }
    const started = performance.now();
    let response: RouteResponse;
    try {
      const query = parseQuery(rawQuery);
      response = await compiled.route.handle(
        apiRequest({
          method: method as HttpMethod,
          params,
          query,
          headers: req.headers,
          body,
          principal,
          requestId,
          logger: opLog,
        }),
      );
      opLog.debug(
        { status: 'stream' in response ? 200 : (response.status ?? 200), ms: performance.now() - started },
        'request handled',
      );
    } catch (err) {
      const mapped = toErrorResponse(err);
      response = mapped.response;
      if (mapped.internal) opLog.error({ err }, 'request failed');
      else
        opLog.info(
          { status: mapped.response.status, errorType: mapped.response.headers?.['x-amzn-ErrorType'] },
          'request rejected',
        );
    }
    reply(res, wire, response);
  }

  return {
    async start() {
      if (server) throw new CloudError('HTTP_ALREADY_STARTED', 'the HTTP server is already started');
      const srv = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
        handle(req, res).catch((err: unknown) => {
          logger.error({ err }, 'request handler crashed');
          if (!res.headersSent) send(res, awsWire(randomUUID()), toErrorResponse(err).response);
          else res.destroy();
        });
      });
      server = srv;
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(options.port, options.host, () => {
          srv.off('error', reject);
          resolve();
        });
      });
      const address = srv.address() as AddressInfo;
      const urlHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      const url = `http://${urlHost}:${address.port}`;
      logger.info({ host: address.address, port: address.port }, 'http server listening');
      return { host: address.address, port: address.port, url };
    },

    async stop() {
      const srv = server;
      if (!srv) return;
      server = undefined;
      await new Promise<void>((resolve) => {
        srv.close(() => resolve());
        srv.closeAllConnections();
      });
      logger.info('http server stopped');
    },
  };
}
