import {
  GetThingShadowCommand,
  type IoTDataPlaneClient,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { isJsonObject, type JsonObject, parseJson } from '@pifleet/protocol';
import type { ShadowClient } from '../ports/shadows.js';

const decoder = new TextDecoder();

/** A shadow document from the service, depth-checked before the commands walk it (metadata, printing). */
function parseObject(bytes: Uint8Array | undefined): JsonObject {
  const text = bytes ? decoder.decode(bytes) : '{}';
  const parsed = parseJson(text === '' ? '{}' : text);
  if (!parsed.ok) throw new Error(`shadow response is not usable JSON: ${parsed.message}`);
  if (!isJsonObject(parsed.value)) throw new Error('shadow response is not a JSON object');
  return parsed.value;
}

/** {@link ShadowClient} over `@aws-sdk/client-iot-data-plane` (GetThingShadow, UpdateThingShadow). */
/** The data-plane client is made on first use (on AWS its endpoint comes from DescribeEndpoint). */
export function createAwsShadowClient(deps: {
  client: () => Promise<IoTDataPlaneClient>;
  signal?: AbortSignal;
}): ShadowClient {
  const opts = deps.signal ? { abortSignal: deps.signal } : {};
  return {
    async get(thingName, shadowName) {
      try {
        const r = await (await deps.client()).send(
          new GetThingShadowCommand({ thingName, ...(shadowName ? { shadowName } : {}) }),
          opts,
        );
        return parseObject(r.payload);
      } catch (err) {
        if ((err as { name?: unknown }).name === 'ResourceNotFoundException') return undefined;
        throw err;
      }
    },
    async update(thingName, request, shadowName) {
      const r = await (await deps.client()).send(
        new UpdateThingShadowCommand({
          thingName,
          ...(shadowName ? { shadowName } : {}),
          payload: new TextEncoder().encode(JSON.stringify(request)),
        }),
        opts,
      );
      return parseObject(r.payload);
    },
  };
}
