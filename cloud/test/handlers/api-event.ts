import type { APIGatewayProxyEventV2 } from 'aws-lambda';

/**
 * An HTTP API (payload format 2.0) event as API Gateway hands it to a Lambda, for one request.
 * `routeKey` defaults to the request itself (`GET /things/pi-01/desired`); pass the route's template
 * (`GET /things/{thing}/desired`) where the handler reads it.
 */
export function httpApiEvent(
  method: string,
  rawPath: string,
  options: { body?: string; routeKey?: string; stage?: string } = {},
): APIGatewayProxyEventV2 {
  return {
    version: '2.0',
    routeKey: options.routeKey ?? `${method} ${rawPath}`,
    rawPath,
    rawQueryString: '',
    headers: {},
    isBase64Encoded: false,
    ...(options.body === undefined ? {} : { body: options.body }),
    requestContext: {
      accountId: '123456789012',
      apiId: 'api',
      domainName: 'example.com',
      domainPrefix: 'example',
      http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'test' },
      requestId: 'req-1',
      routeKey: `${method} ${rawPath}`,
      stage: options.stage ?? '$default',
      time: '',
      timeEpoch: 0,
    },
  };
}
