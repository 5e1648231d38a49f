import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { handleQueryRequest, jsonResponse } from '../core/telemetry/query-api.js';
import type { Logger } from '../logger.js';
import type { TelemetryStore } from '../ports/telemetry-store.js';
import { lambdaLogger, lazyHandler, telemetryStoreFromEnv } from './aws-env.js';

/**
 * Query handler: API Gateway HTTP API (payload format 2.0) →
 *   GET /things/{thing}/telemetry?from&to&sensor&metric&limit&nextToken
 *   GET /things/{thing}/latest
 *   GET /presence?limit&nextToken
 * See `core/telemetry/query-api.ts` for parameters and responses. Bad parameters answer 400
 * with every problem listed; an unexpected failure answers 500 with the request id (the details
 * go to the log, not the client).
 */
export interface QueryHandlerDeps {
  readonly store: TelemetryStore;
  readonly logger: Logger;
  readonly clock?: { now(): number };
}

export type QueryHandler = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

export function createQueryHandler(deps: QueryHandlerDeps): QueryHandler {
  const clock = deps.clock ?? { now: () => Date.now() };
  const log = deps.logger.child({ component: 'query' });
  return async (event) => {
    const requestId = event.requestContext.requestId;
    const method = event.requestContext.http.method;
    const path = stripStage(event.rawPath, event.requestContext.stage);
    try {
      const response = await handleQueryRequest(
        { method, path, query: event.queryStringParameters ?? {} },
        { store: deps.store, clock },
      );
      log.debug({ requestId, method, path, statusCode: response.statusCode }, 'query answered');
      return { statusCode: response.statusCode, headers: { ...response.headers }, body: response.body };
    } catch (err) {
      log.error({ err, requestId, method, path }, 'query failed');
      const response = jsonResponse(500, { message: 'internal error', requestId });
      return { statusCode: response.statusCode, headers: { ...response.headers }, body: response.body };
    }
  };
}

/** With a named stage (not `$default`), API Gateway puts `/{stage}` in front of the path. */
function stripStage(rawPath: string, stage: string): string {
  if (stage === '$default' || stage === '') return rawPath;
  const prefix = `/${stage}`;
  return rawPath === prefix || rawPath.startsWith(`${prefix}/`) ? rawPath.slice(prefix.length) || '/' : rawPath;
}

/** AWS Lambda entry point: DynamoDB store from `TABLE_NAME`, built on the first invocation. */
export const handler: QueryHandler = lazyHandler(() =>
  createQueryHandler({ store: telemetryStoreFromEnv(process.env), logger: lambdaLogger('query', process.env) }),
);
