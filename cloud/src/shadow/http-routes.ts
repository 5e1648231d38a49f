import { checkTopicName, isPublishableTopic, type JsonObject, LIMITS } from '@pifleet/protocol';
import type { MessageProperties } from '../broker/properties.js';
import { parsePublishProperties, type RequestHeaders } from './publish-properties.js';
import type { ShadowHttpResult, ShadowService } from './service.js';

/**
 * The IoT data-plane routes of the shadow service, wire-compatible with
 * `@aws-sdk/client-iot-data-plane` (restJson1). Pure request → response functions with no HTTP
 * server: the server authenticates (SigV4), authorizes, reads the body and calls {@link handle}.
 *
 *   GET    /things/{thingName}/shadow[?name=]                      GetThingShadow
 *   POST   /things/{thingName}/shadow[?name=]   body: request doc   UpdateThingShadow
 *   DELETE /things/{thingName}/shadow[?name=]                      DeleteThingShadow
 *   GET    /api/things/shadow/ListNamedShadowsForThing/{thingName}[?nextToken=&pageSize=]
 *   POST   /topics/{topic}[?qos=&retain=...]    body: raw payload   Publish (topic percent-encoded, `/` as %2F;
 *          MQTT 5 properties in x-amz-mqtt5-* headers and the query, see publish-properties.ts)
 *
 * Errors answer `{code, message}` with the `x-amzn-ErrorType` header the SDK turns into its
 * exception class (InvalidRequestException, ResourceNotFoundException, ConflictException, ...).
 */

export interface DataPlaneRequest {
  readonly method: string;
  /** The path without the query string, still percent-encoded. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** Lower-case header names (node's `IncomingMessage.headers`); Publish reads its MQTT 5 properties here. */
  readonly headers?: RequestHeaders;
  readonly body: Uint8Array;
}

export interface DataPlaneResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface DataPlanePublish {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly qos: 0 | 1;
  readonly retain: boolean;
  /** The MQTT 5 properties the request set (none when it set none). */
  readonly properties: MessageProperties;
}

export interface ShadowHttpRoutesDeps {
  readonly shadows: ShadowService;
  /** Publishes for the Publish operation (into the broker, so rules and the shadow service see it). */
  readonly publish?: (message: DataPlanePublish) => void | Promise<void>;
}

/** Which data-plane operation a request is, for SigV4/IAM checks before {@link ShadowHttpRoutes.handle}. */
export type DataPlaneOperation =
  | {
      readonly name: 'GetThingShadow' | 'UpdateThingShadow' | 'DeleteThingShadow';
      readonly thingName: string;
      readonly shadowName: string | undefined;
    }
  | { readonly name: 'ListNamedShadowsForThing'; readonly thingName: string }
  | { readonly name: 'Publish'; readonly topic: string };

export interface ShadowHttpRoutes {
  /** The operation a method and path name, or undefined when these routes do not serve the path. */
  match(method: string, path: string, query: URLSearchParams): DataPlaneOperation | 'method-not-allowed' | undefined;
  /** Answers a request; undefined when the path is not one of these routes. */
  handle(request: DataPlaneRequest): Promise<DataPlaneResponse | undefined>;
}

const SHADOW_PATH = /^\/things\/([^/]+)\/shadow$/;
const LIST_PATH = /^\/api\/things\/shadow\/ListNamedShadowsForThing\/([^/]+)$/;
const TOPIC_PATH = /^\/topics\/([^/]+)$/;

function decode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function json(status: number, body: JsonObject, errorType?: string): DataPlaneResponse {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (errorType !== undefined) headers['x-amzn-errortype'] = errorType;
  return { status, headers, body: JSON.stringify(body) };
}

function fromResult(result: ShadowHttpResult): DataPlaneResponse {
  return json(result.status, result.body, result.errorType);
}

function error(status: number, errorType: string, message: string): DataPlaneResponse {
  return json(status, { code: status, message }, errorType);
}

export function createShadowHttpRoutes(deps: ShadowHttpRoutesDeps): ShadowHttpRoutes {
  const match: ShadowHttpRoutes['match'] = (method, path, query) => {
    let m = SHADOW_PATH.exec(path);
    if (m) {
      const thingName = decode(m[1] as string) ?? '';
      const shadowName = query.get('name') ?? undefined;
      if (method === 'GET') return { name: 'GetThingShadow', thingName, shadowName };
      if (method === 'POST') return { name: 'UpdateThingShadow', thingName, shadowName };
      if (method === 'DELETE') return { name: 'DeleteThingShadow', thingName, shadowName };
      return 'method-not-allowed';
    }
    m = LIST_PATH.exec(path);
    if (m)
      return method === 'GET'
        ? { name: 'ListNamedShadowsForThing', thingName: decode(m[1] as string) ?? '' }
        : 'method-not-allowed';
    m = TOPIC_PATH.exec(path);
    if (m) return method === 'POST' ? { name: 'Publish', topic: decode(m[1] as string) ?? '' } : 'method-not-allowed';
    return undefined;
  };

  async function publish(topic: string, request: DataPlaneRequest): Promise<DataPlaneResponse> {
    if (deps.publish === undefined) return error(405, 'MethodNotAllowedException', 'Publish is not available');
    const problem = checkTopicName(topic);
    if (problem !== undefined) return error(400, 'InvalidRequestException', `Invalid topic: ${problem}`);
    // What MQTT refuses, this must refuse too: the operator's credentials must not forge presence
    // events or shadow responses (IoT Core's reserved topics allow Publish only on request topics).
    if (!isPublishableTopic(topic)) {
      return error(403, 'ForbiddenException', `Topic ${topic} is reserved: only AWS IoT publishes to it`);
    }
    if (request.body.byteLength > LIMITS.maxMessageBytes) {
      return error(
        413,
        'RequestEntityTooLargeException',
        `The payload of ${request.body.byteLength} bytes exceeds the maximum message size of ${LIMITS.maxMessageBytes} bytes (128 KB)`,
      );
    }
    const qosText = request.query.get('qos') ?? '0';
    if (qosText !== '0' && qosText !== '1') return error(400, 'InvalidRequestException', 'qos must be 0 or 1');
    const retainText = request.query.get('retain') ?? 'false';
    if (retainText !== 'true' && retainText !== 'false')
      return error(400, 'InvalidRequestException', 'retain must be true or false');
    const properties = parsePublishProperties(request.query, request.headers ?? {});
    if (!properties.ok) return error(400, 'InvalidRequestException', properties.message);
    await deps.publish({
      topic,
      payload: request.body,
      qos: qosText === '1' ? 1 : 0,
      retain: retainText === 'true',
      properties: properties.properties,
    });
    return { status: 200, headers: { 'content-type': 'application/json' }, body: '' };
  }

  return {
    match,
    handle: async (request) => {
      const op = match(request.method, request.path, request.query);
      if (op === undefined) return undefined;
      if (op === 'method-not-allowed') return error(405, 'MethodNotAllowedException', 'Method not allowed');
      switch (op.name) {
        case 'GetThingShadow':
          return fromResult(await deps.shadows.getShadow(op.thingName, op.shadowName));
        case 'UpdateThingShadow':
          return fromResult(await deps.shadows.updateShadow(op.thingName, op.shadowName, request.body));
        case 'DeleteThingShadow':
          return fromResult(await deps.shadows.deleteShadow(op.thingName, op.shadowName));
        case 'ListNamedShadowsForThing': {
          const pageSizeText = request.query.get('pageSize');
          const nextToken = request.query.get('nextToken');
          const pageSize = pageSizeText === null ? undefined : Number(pageSizeText);
          if (pageSize !== undefined && !Number.isInteger(pageSize)) {
            return error(400, 'InvalidRequestException', 'pageSize must be an integer');
          }
          return fromResult(
            await deps.shadows.listNamedShadows(op.thingName, {
              ...(pageSize === undefined ? {} : { pageSize }),
              ...(nextToken === null ? {} : { nextToken }),
            }),
          );
        }
        case 'Publish':
          return publish(op.topic, request);
      }
    },
  };
}
