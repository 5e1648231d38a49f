import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import type { ApiRequest, ApiResponse, HttpMethod, Route, RouteGroup } from '../http/server.js';
import type { AccountContext } from '../ports/identity.js';

/**
 * The command/query API on the local HTTP server, as API Gateway's HTTP API serves it in AWS:
 * each request (already SigV4-verified for the `execute-api` service) becomes an
 * `APIGatewayProxyEventV2` (payload format 2.0) for the same Lambda handlers, and their result
 * becomes the HTTP response.
 *
 * Locally the API lives under a stage prefix, `/api` by default, as on an API Gateway stage named
 * `api`: `PUT {http}/api/things/pi-01/desired`. (Unprefixed `/things/{thing}/shadow` is the IoT
 * data plane's GetThingShadow on the same listener.) The handlers strip the stage, as they do behind
 * a named stage in AWS.
 */

export type ApiGatewayHandler = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

/** The stage prefix of the local command/query API. */
export const LOCAL_API_STAGE = 'api';

/** Every route of the API: method, path (without stage) and the handler that serves it. */
export const API_ROUTES = [
  { method: 'PUT', path: '/things/{thingName}/desired', handler: 'command', operation: 'SetDesiredState' },
  { method: 'GET', path: '/things/{thingName}/shadow', handler: 'command', operation: 'GetShadow' },
  { method: 'GET', path: '/things/{thingName}/connectivity', handler: 'command', operation: 'GetConnectivity' },
  { method: 'GET', path: '/things/{thingName}/telemetry', handler: 'query', operation: 'QueryTelemetry' },
  { method: 'GET', path: '/things/{thingName}/latest', handler: 'query', operation: 'LatestTelemetry' },
  { method: 'GET', path: '/presence', handler: 'query', operation: 'ListPresence' },
] as const satisfies readonly { method: HttpMethod; path: string; handler: 'command' | 'query'; operation: string }[];

export interface ApiRoutesDeps {
  readonly command: ApiGatewayHandler;
  readonly query: ApiGatewayHandler;
  readonly account: AccountContext;
  readonly now: () => number;
  /** Default {@link LOCAL_API_STAGE}. */
  readonly stage?: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** API Gateway's `requestContext.time`: `12/Mar/2020:19:03:58 +0000`. */
export function apiGatewayTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(',') : v;
}

/** Builds the payload-format-2.0 event API Gateway would deliver for a request. */
export function toApiGatewayEvent(
  request: ApiRequest,
  route: { method: string; path: string },
  options: { stage: string; account: AccountContext; now: number },
): APIGatewayProxyEventV2 {
  const labels = route.path.replace(/\{(\w+)\}/g, (_m, label: string) =>
    encodeURIComponent(request.params[label] ?? ''),
  );
  const rawPath = `/${options.stage}${labels}`;
  const rawQueryString = [...request.query]
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    const v = headerValue(value);
    if (v !== undefined) headers[name.toLowerCase()] = v;
  }
  const host = headers.host ?? 'localhost';
  const routeKey = `${route.method} ${route.path}`;
  const text = request.body.toString('utf8');
  const isText = Buffer.from(text, 'utf8').equals(request.body);
  const event: APIGatewayProxyEventV2 = {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString,
    headers,
    requestContext: {
      accountId: options.account.accountId,
      apiId: 'local',
      domainName: host,
      domainPrefix: host.split('.')[0] ?? host,
      http: {
        method: request.method,
        path: rawPath,
        protocol: 'HTTP/1.1',
        sourceIp: '127.0.0.1',
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: request.requestId,
      routeKey,
      stage: options.stage,
      time: apiGatewayTime(options.now),
      timeEpoch: options.now,
    },
    isBase64Encoded: !isText,
  };
  if (request.query.size > 0) event.queryStringParameters = Object.fromEntries(request.query);
  if (Object.keys(request.params).length > 0) event.pathParameters = { ...request.params };
  if (request.body.length > 0) event.body = isText ? text : request.body.toString('base64');
  return event;
}

/** Turns a handler's structured result back into the HTTP response. */
export function fromApiGatewayResult(result: APIGatewayProxyStructuredResultV2): ApiResponse {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(result.headers ?? {})) headers[k] = String(v);
  const body =
    result.body === undefined ? '' : result.isBase64Encoded ? Buffer.from(result.body, 'base64') : result.body;
  return { status: result.statusCode ?? 200, headers, body };
}

/** The local command/query API route group (SigV4 service `execute-api`). */
export function commandQueryApiRoutes(deps: ApiRoutesDeps): RouteGroup {
  const stage = deps.stage ?? LOCAL_API_STAGE;
  const routes: Route[] = API_ROUTES.map((r) => ({
    method: r.method,
    path: `/${stage}${r.path}`,
    operation: r.operation,
    async handle(request) {
      const event = toApiGatewayEvent(request, r, { stage, account: deps.account, now: deps.now() });
      const handler = r.handler === 'command' ? deps.command : deps.query;
      return fromApiGatewayResult(await handler(event));
    },
  }));
  return { name: 'command-query-api', signingNames: ['execute-api'], routes };
}
