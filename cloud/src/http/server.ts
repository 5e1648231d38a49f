import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CloudError } from '../errors.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { RegistryError } from '../registry/errors.js';
import type { CredentialStore } from './credentials.js';
import { ApiError, invalidRequest } from './errors.js';
import { type SigV4Principal, verifySigV4 } from './sigv4.js';

/**
 * The local IoT Core's HTTP server: one listener for every AWS-shaped API (IoT control plane now;
 * IoT data plane and the command API later). Each API is a RouteGroup with the SigV4 signing names
 * it accepts. Every request is read (size-limited), SigV4-verified, routed, and answered in AWS's
 * REST-JSON shape; failures carry `x-amzn-ErrorType` and `{message}` so AWS SDKs raise the same
 * exception classes they raise against AWS.
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
  /** Who signed the request. */
  readonly principal: SigV4Principal;
  readonly requestId: string;
  readonly logger: Logger;
  /** The body parsed as a JSON object (`{}` when empty); 400 InvalidRequestException when malformed. */
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

export interface Route {
  readonly method: HttpMethod;
  /** Path template, e.g. `/things/{thingName}/principals`. A label matches one path segment. */
  readonly path: string;
  /** Operation name for logs, e.g. `CreateThing`. */
  readonly operation: string;
  handle(request: ApiRequest): ApiResponse | Promise<ApiResponse>;
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

export interface RouteGroup {
  readonly name: string;
  /** SigV4 service names a request to this group may be signed for (e.g. `iot`). */
  readonly signingNames: readonly string[];
  readonly routes: readonly Route[];
  /**
   * Optional own dispatcher, tried (in group order) for signed requests no route template matched
   * and whose signing name the group accepts. Return undefined when the path is not the group's.
   * Thrown ApiError/RegistryError map to AWS's error shape as for routes.
   */
  readonly fallback?: (request: UnmatchedRequest) => ApiResponse | undefined | Promise<ApiResponse | undefined>;
  /**
   * Optional requests the group serves itself WITHOUT SigV4 (the web console, which checks its own
   * session cookie): a request whose path is `prefix` or starts with `prefix/` goes to `handle`
   * before its body is read or any signature is checked, and `handle` owns the response (it may
   * stream, e.g. Server-Sent Events). Other groups never see these paths.
   */
  readonly unsigned?: {
    readonly prefix: string;
    handle(req: IncomingMessage, res: ServerResponse): void | Promise<void>;
  };
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

function matchRoute(
  routes: readonly CompiledRoute[],
  method: string,
  rawPath: string,
): { match?: { compiled: CompiledRoute; params: Record<string, string> }; pathExists: boolean } {
  const parts = rawPath.split('/').filter((s) => s !== '');
  let pathExists = false;
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
    if (compiled.route.method === method) return { match: { compiled, params }, pathExists };
  }
  return { pathExists };
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

function send(res: ServerResponse, requestId: string, response: ApiResponse): void {
  const headers: Record<string, string> = { 'x-amzn-RequestId': requestId, ...(response.headers ?? {}) };
  let body: string | Uint8Array = '';
  if (response.json !== undefined) {
    body = JSON.stringify(response.json);
    headers['content-type'] = 'application/json';
  } else if (response.body !== undefined) {
    body = response.body;
  }
  headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(response.status ?? 200, headers);
  res.end(body);
}

function errorResponse(errorType: string, status: number, message: string, fields: Record<string, string> = {}) {
  return { status, headers: { 'x-amzn-ErrorType': errorType }, json: { message, ...fields } } satisfies ApiResponse;
}

/** Maps anything a handler throws to AWS's error shape. */
export function toErrorResponse(err: unknown): { response: ApiResponse; internal: boolean } {
  if (err instanceof ApiError) {
    return { response: errorResponse(err.errorType, err.status, err.message, { ...err.fields }), internal: false };
  }
  if (err instanceof RegistryError) {
    return { response: errorResponse(err.code, REGISTRY_STATUS[err.code] ?? 400, err.message), internal: false };
  }
  return {
    response: errorResponse('InternalFailureException', 500, 'An unexpected error has occurred.'),
    internal: true,
  };
}

export function createHttpServer(options: HttpServerOptions): HttpServerHandle {
  const logger = (options.logger ?? silentLogger()).child({ component: 'http' });
  const maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const routes = compile(options.routes);
  const services = [...new Set(options.routes.flatMap((g) => g.signingNames))];
  let server: Server | undefined;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomUUID();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q === -1 ? url : url.slice(0, q);
    const rawQuery = q === -1 ? '' : url.slice(q + 1);
    const method = (req.method ?? 'GET').toUpperCase();
    const log = logger.child({ requestId, method, path: rawPath });

    for (const group of options.routes) {
      const prefix = group.unsigned?.prefix;
      if (prefix !== undefined && (rawPath === prefix || rawPath.startsWith(`${prefix}/`))) {
        await group.unsigned?.handle(req, res);
        return;
      }
    }

    let body: Buffer;
    try {
      body = await readBody(req, maxBody);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        log.warn({ maxBody }, 'request body too large');
        res.setHeader('connection', 'close');
        send(
          res,
          requestId,
          errorResponse('RequestEntityTooLargeException', 413, `Request body exceeds ${maxBody} bytes.`),
        );
        return;
      }
      throw err;
    }

    const auth = verifySigV4(
      { method, rawPath, rawQuery, rawHeaders: req.rawHeaders, body },
      { region: options.region, services, secretFor: (id) => options.credentials.secretFor(id), now: options.now },
    );
    if (!auth.ok) {
      log.warn({ errorType: auth.errorType }, 'request rejected: signature');
      send(res, requestId, errorResponse(auth.errorType, 403, auth.message));
      return;
    }

    const { match, pathExists } = matchRoute(routes, method, rawPath);
    if (!match) {
      for (const group of options.routes) {
        if (!group.fallback || !group.signingNames.includes(auth.service)) continue;
        let response: ApiResponse | undefined;
        try {
          response = await group.fallback({
            method,
            rawPath,
            query: new URLSearchParams(rawQuery),
            headers: req.headers,
            body,
            principal: { accessKeyId: auth.accessKeyId, service: auth.service, region: auth.region },
            requestId,
            logger: log.child({ group: group.name }),
          });
        } catch (err) {
          const mapped = toErrorResponse(err);
          if (mapped.internal) log.error({ err, group: group.name }, 'request failed');
          response = mapped.response;
        }
        if (response) {
          send(res, requestId, response);
          return;
        }
      }
      const response = pathExists
        ? errorResponse('MethodNotAllowedException', 405, `Method ${method} is not allowed on ${rawPath}.`)
        : errorResponse('UnknownOperationException', 404, `No operation matches ${method} ${rawPath}.`);
      send(res, requestId, response);
      return;
    }
    const { compiled, params } = match;
    if (!compiled.group.signingNames.includes(auth.service)) {
      send(
        res,
        requestId,
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
    const started = performance.now();
    let response: ApiResponse;
    try {
      const query = parseQuery(rawQuery);
      let parsed: Record<string, unknown> | undefined;
      const request: ApiRequest = {
        method: method as HttpMethod,
        params,
        query,
        headers: req.headers,
        body,
        principal: { accessKeyId: auth.accessKeyId, service: auth.service, region: auth.region },
        requestId,
        logger: opLog,
        json() {
          if (parsed) return parsed;
          if (body.length === 0) {
            parsed = {};
            return parsed;
          }
          let value: unknown;
          try {
            value = JSON.parse(body.toString('utf8'));
          } catch (err) {
            throw invalidRequest(`The request body is not valid JSON: ${(err as Error).message}`, err);
          }
          if (typeof value !== 'object' || value === null || Array.isArray(value)) {
            throw invalidRequest('The request body must be a JSON object.');
          }
          parsed = value as Record<string, unknown>;
          return parsed;
        },
      };
      response = await compiled.route.handle(request);
      opLog.debug({ status: response.status ?? 200, ms: performance.now() - started }, 'request handled');
    } catch (err) {
      const mapped = toErrorResponse(err);
      response = mapped.response;
      if (mapped.internal) opLog.error({ err }, 'request failed');
      else
        opLog.info({ status: response.status, errorType: response.headers?.['x-amzn-ErrorType'] }, 'request rejected');
    }
    send(res, requestId, response);
  }

  return {
    async start() {
      if (server) throw new CloudError('http.started', 'the HTTP server is already started');
      const srv = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
        handle(req, res).catch((err: unknown) => {
          logger.error({ err }, 'request handler crashed');
          if (!res.headersSent) send(res, randomUUID(), toErrorResponse(err).response);
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
