import { DescribeEndpointCommand, DescribeThingCommand, IoTClient } from '@aws-sdk/client-iot';
import { GetThingShadowCommand, IoTDataPlaneClient, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import { isJsonObject, type JsonObject, parseJson } from '@pifleet/protocol';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { createEmfMetrics, withMetrics } from '../adapters/emf-metrics.js';
import {
  type DesiredUpdate,
  handleCommandRequest,
  type ShadowGateway,
  type ThingDirectory,
} from '../core/command/api.js';
import {
  ShadowUpdateRejectedError,
  ShadowVersionConflictError,
  UpstreamUnavailableError,
} from '../core/command/errors.js';
import { jsonResponse } from '../core/telemetry/query-api.js';
import type { Logger } from '../logger.js';
import { type CloudMetricName, type CloudMetrics, noMetrics } from '../ports/metrics.js';
import type { TelemetryStore } from '../ports/telemetry-store.js';
import { type Env, HandlerConfigError, lambdaLogger, lazyHandler, telemetryStoreFromEnv } from './aws-env.js';

/**
 * Command handler: API Gateway HTTP API (payload format 2.0) →
 *   PUT /things/{thing}/desired       {desired: {...}, expectedVersion?, clientToken?}
 *   GET /things/{thing}/shadow
 *   GET /things/{thing}/connectivity
 * See `core/command/api.ts` for the contract. Shadows go through `@aws-sdk/client-iot-data-plane`
 * (UpdateThingShadow / GetThingShadow), the thing check through `@aws-sdk/client-iot`
 * (DescribeThing), connectivity from the telemetry store. The same code runs in Lambda (default
 * credential chain, the account's `iot:Data-ATS` endpoint) and in the local IoT Core (its HTTP
 * endpoint and generated credentials).
 */
export interface CommandHandlerDeps {
  /** The IoT data-plane client, or a function that builds it on first use (endpoint discovery). */
  readonly dataPlane: IoTDataPlaneClient | (() => Promise<IoTDataPlaneClient>);
  /** The IoT control-plane client (DescribeThing). */
  readonly controlPlane: IoTClient;
  readonly store: Pick<TelemetryStore, 'getConnectivity'>;
  readonly logger: Logger;
  /** Desired-state writes accepted, rejected and conflicting (default: none). */
  readonly metrics?: CloudMetrics;
}

export type CommandHandler = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

const THROTTLED = new Set([
  'ThrottlingException',
  'ServiceUnavailableException',
  'InternalFailureException',
  'InternalServerException',
  'TimeoutError',
]);

function errorName(err: unknown): string {
  return typeof err === 'object' && err !== null && typeof (err as { name?: unknown }).name === 'string'
    ? (err as { name: string }).name
    : '';
}

function isTransient(err: unknown): boolean {
  const name = errorName(err);
  if (THROTTLED.has(name)) return true;
  const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 500) return true;
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'ETIMEDOUT';
}

const utf8 = new TextDecoder();

/** A data-plane answer document; checked like any outside JSON before the response spreads it. */
function parseDocument(payload: Uint8Array | undefined): JsonObject {
  if (payload === undefined || payload.length === 0) return {};
  const parsed = parseJson(utf8.decode(payload));
  if (!parsed.ok)
    throw new Error(`the IoT data plane answered with a document this API cannot read: ${parsed.message}`);
  return isJsonObject(parsed.value) ? parsed.value : {};
}

/** The registry port over DescribeThing. */
export function registryThings(client: IoTClient): ThingDirectory {
  return {
    async thingExists(thingName) {
      try {
        await client.send(new DescribeThingCommand({ thingName }));
        return true;
      } catch (err) {
        if (errorName(err) === 'ResourceNotFoundException') return false;
        if (isTransient(err)) throw new UpstreamUnavailableError('iot', errorName(err) || 'request failed', err);
        throw err;
      }
    },
  };
}

/** The shadow port over GetThingShadow / UpdateThingShadow (classic shadow). */
export function dataPlaneShadows(dataPlane: CommandHandlerDeps['dataPlane']): ShadowGateway {
  let client: Promise<IoTDataPlaneClient> | undefined;
  const get = () => {
    client ??= typeof dataPlane === 'function' ? dataPlane() : Promise.resolve(dataPlane);
    client.catch(() => {
      client = undefined;
    });
    return client;
  };
  const upstream = (err: unknown) =>
    isTransient(err) ? new UpstreamUnavailableError('iotdata', errorName(err) || 'request failed', err) : err;
  return {
    async get(thingName) {
      try {
        const out = await (await get()).send(new GetThingShadowCommand({ thingName }));
        return parseDocument(out.payload);
      } catch (err) {
        if (errorName(err) === 'ResourceNotFoundException') return undefined;
        throw upstream(err);
      }
    },
    async update(thingName, update: DesiredUpdate) {
      try {
        const out = await (await get()).send(
          new UpdateThingShadowCommand({ thingName, payload: new TextEncoder().encode(JSON.stringify(update)) }),
        );
        return parseDocument(out.payload);
      } catch (err) {
        const name = errorName(err);
        if (name === 'ConflictException') throw new ShadowVersionConflictError(thingName, update.version, err);
        if (name === 'InvalidRequestException') {
          throw new ShadowUpdateRejectedError(400, (err as Error).message, err);
        }
        if (name === 'RequestEntityTooLargeException') {
          throw new ShadowUpdateRejectedError(413, (err as Error).message, err);
        }
        throw upstream(err);
      }
    },
  };
}

/** With a named stage (not `$default`), API Gateway puts `/{stage}` in front of the path. */
function stripStage(rawPath: string, stage: string): string {
  if (stage === '$default' || stage === '') return rawPath;
  const prefix = `/${stage}`;
  return rawPath === prefix || rawPath.startsWith(`${prefix}/`) ? rawPath.slice(prefix.length) || '/' : rawPath;
}

/** The metric a desired-state write's answer counts in, if any (reads and 404/5xx count in none). */
export function commandOutcomeMetric(method: string, path: string, statusCode: number): CloudMetricName | undefined {
  if (method !== 'PUT' || !/^\/things\/[^/]+\/desired\/?$/.test(path)) return undefined;
  if (statusCode >= 200 && statusCode < 300) return 'CommandsAccepted';
  if (statusCode === 409) return 'CommandsConflicting';
  if (statusCode === 400 || statusCode === 413) return 'CommandsRejected';
  return undefined;
}

export function createCommandHandler(deps: CommandHandlerDeps): CommandHandler {
  const log = deps.logger.child({ component: 'command' });
  const metrics = deps.metrics ?? noMetrics;
  const api = {
    things: registryThings(deps.controlPlane),
    shadows: dataPlaneShadows(deps.dataPlane),
    connectivity: deps.store,
  };
  return async (event) => {
    const requestId = event.requestContext.requestId;
    const method = event.requestContext.http.method;
    const path = stripStage(event.rawPath, event.requestContext.stage);
    const body =
      event.body === undefined
        ? undefined
        : event.isBase64Encoded
          ? Buffer.from(event.body, 'base64').toString()
          : event.body;
    try {
      const response = await handleCommandRequest({ method, path, body }, api);
      log.info({ requestId, method, path, statusCode: response.statusCode }, 'command answered');
      const metric = commandOutcomeMetric(method, path, response.statusCode);
      if (metric !== undefined) metrics.add(metric, 1);
      return { statusCode: response.statusCode, headers: { ...response.headers }, body: response.body };
    } catch (err) {
      log.error({ err, requestId, method, path }, 'command failed');
      const response = jsonResponse(500, { message: 'internal error', requestId });
      return { statusCode: response.statusCode, headers: { ...response.headers }, body: response.body };
    }
  };
}

/**
 * The data-plane client in Lambda: `IOT_DATA_ENDPOINT` (`https://…-ats.iot.{region}.amazonaws.com`)
 * when set, otherwise the account's `iot:Data-ATS` endpoint from DescribeEndpoint (once).
 */
export function dataPlaneFromEnv(env: Env, controlPlane: IoTClient): () => Promise<IoTDataPlaneClient> {
  return async () => {
    const configured = env.IOT_DATA_ENDPOINT;
    if (configured !== undefined && configured !== '') {
      if (!/^https:\/\/[^/\s]+\/?$/.test(configured)) {
        throw new HandlerConfigError('IOT_DATA_ENDPOINT', 'must be an https:// URL with no path');
      }
      return new IoTDataPlaneClient({ endpoint: configured });
    }
    const { endpointAddress } = await controlPlane.send(new DescribeEndpointCommand({ endpointType: 'iot:Data-ATS' }));
    if (endpointAddress === undefined)
      throw new HandlerConfigError('IOT_DATA_ENDPOINT', 'is not set and DescribeEndpoint returned none');
    return new IoTDataPlaneClient({ endpoint: `https://${endpointAddress}` });
  };
}

/**
 * AWS Lambda entry point: region and credentials from the runtime, the connectivity store from
 * `TABLE_NAME`, the data endpoint from `IOT_DATA_ENDPOINT` or DescribeEndpoint; built on the first invocation.
 * Accepted, rejected and conflicting desired-state writes go to CloudWatch as EMF lines on stdout.
 */
export const handler: CommandHandler = lazyHandler(() => {
  const controlPlane = new IoTClient({});
  const metrics = createEmfMetrics({ serviceName: 'command' });
  return withMetrics(
    metrics,
    createCommandHandler({
      controlPlane,
      dataPlane: dataPlaneFromEnv(process.env, controlPlane),
      store: telemetryStoreFromEnv(process.env),
      logger: lambdaLogger('command', process.env),
      metrics,
    }),
  );
});
