import {
  DeleteThingShadowCommand,
  GetThingShadowCommand,
  UpdateThingShadowCommand,
} from '@aws-sdk/client-iot-data-plane';
import { type JsonObject, MQTT_PROTOCOLS, shadowTopics } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bindThing,
  runSequence,
  SEQUENCES,
  type Sequence,
  type SequenceStep,
  type StepObservation,
} from '../shadow/sequences.js';
import {
  type Core,
  openShadowDevice,
  provisionThing,
  rawSubscribe,
  type ShadowDevice,
  settle,
  startCore,
} from './harness.js';

/**
 * The AWS documentation's update sequences against the composed local IoT Core, over MQTT through
 * the device SDK's IotShadowClientv2 and over HTTP through @aws-sdk/client-iot-data-plane. In
 * both runs the device's v2 delta and documents streams observe the events, so an update over
 * HTTP is shown to publish the same messages a device receives. The device connects over MQTT 3.1.1
 * and over MQTT 5 (`IotShadowClientv2.newFromMqtt311` / `newFromMqtt5`).
 */

let core: Core;

beforeAll(async () => {
  core = await startCore('conf-seq');
});
afterAll(async () => {
  await core?.stop();
});

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * IotShadowClientv2 sends `{state, version, clientToken}` only, with its own clientToken, and
 * drops falsy values: `state: null` and `version: 0` need a raw PUBLISH.
 */
function expressibleByV2(request: JsonObject): boolean {
  const state = request.state;
  return (
    state !== null &&
    request.version !== 0 &&
    typeof state === 'object' &&
    !Array.isArray(state) &&
    Object.keys(request).every((k) => k === 'state' || k === 'version' || k === 'clientToken')
  );
}

/** The v2 client replaces clientToken with its own correlation token; the table's token check applies over HTTP. */
function withoutClientTokens(sequence: Sequence): Sequence {
  return {
    name: sequence.name,
    steps: sequence.steps.map((step): SequenceStep => {
      if (step.op !== 'update' || step.request.clientToken === undefined) return step;
      const { clientToken: _, ...request } = step.request;
      return { ...step, request };
    }),
  };
}

function shadowNamesOf(sequence: Sequence): (string | undefined)[] {
  return [...new Set(sequence.steps.map((s) => s.shadowName))];
}

async function withEvents(
  device: ShadowDevice,
  step: SequenceStep,
  seen: { ok: boolean; body: JsonObject },
): Promise<StepObservation> {
  if (step.op !== 'update' || !seen.ok) return seen;
  const events = await device.eventsOf(step.shadowName, seen.body.version as number);
  return { ...seen, delta: events.delta, documents: events.documents };
}

/** One step through IotShadowClientv2 (or, for what it cannot send, a raw PUBLISH on the same connection). */
function mqttApply(device: ShadowDevice) {
  const v2 = device.shadows;
  return async (thingName: string, step: SequenceStep): Promise<StepObservation> => {
    const named = step.shadowName;
    let seen: { ok: boolean; body: JsonObject };
    if (step.op === 'update' && !expressibleByV2(step.request)) {
      // A raw request; the answer comes on this connection's own update/accepted|rejected topics.
      const topics = shadowTopics(thingName, named);
      const token = `raw-${Math.random().toString(36).slice(2)}`;
      const answers = await rawSubscribe(device.client, `${topics.update}/+`);
      await device.client.publish(topics.update, JSON.stringify({ ...step.request, clientToken: token }));
      const answer = await answers.waitFor(
        (m) =>
          (m.topic === topics.updateAccepted || m.topic === topics.updateRejected) &&
          typeof m.payload === 'object' &&
          m.payload.clientToken === token,
      );
      await device.client.unsubscribe(`${topics.update}/+`);
      seen = { ok: answer.topic === topics.updateAccepted, body: answer.payload as JsonObject };
    } else if (step.op === 'update') {
      const request = step.request as { state: JsonObject; version?: number };
      const body = {
        thingName,
        state: request.state,
        ...(request.version === undefined ? {} : { version: request.version }),
      };
      seen = await settle(
        named === undefined ? v2.updateShadow(body) : v2.updateNamedShadow({ ...body, shadowName: named }),
      );
      if (seen.ok) expect(typeof seen.body.clientToken).toBe('string');
    } else if (step.op === 'get') {
      seen = await settle(
        named === undefined ? v2.getShadow({ thingName }) : v2.getNamedShadow({ thingName, shadowName: named }),
      );
    } else {
      seen = await settle(
        named === undefined ? v2.deleteShadow({ thingName }) : v2.deleteNamedShadow({ thingName, shadowName: named }),
      );
    }
    return withEvents(device, step, seen);
  };
}

/** One step through the data-plane client; events still observed by the device's streams. */
function httpApply(device: ShadowDevice) {
  return async (thingName: string, step: SequenceStep): Promise<StepObservation> => {
    const names = step.shadowName === undefined ? {} : { shadowName: step.shadowName };
    let seen: { ok: boolean; body: JsonObject };
    try {
      const out =
        step.op === 'update'
          ? await core.data.send(
              new UpdateThingShadowCommand({ thingName, ...names, payload: enc.encode(JSON.stringify(step.request)) }),
            )
          : step.op === 'get'
            ? await core.data.send(new GetThingShadowCommand({ thingName, ...names }))
            : await core.data.send(new DeleteThingShadowCommand({ thingName, ...names }));
      seen = { ok: true, body: JSON.parse(dec.decode(out.payload)) as JsonObject };
    } catch (err) {
      const e = err as { $metadata?: { httpStatusCode?: number }; message: string };
      seen = { ok: false, body: { code: e.$metadata?.httpStatusCode ?? 0, message: e.message } };
    }
    return withEvents(device, step, seen);
  };
}

const cases = SEQUENCES.map((sequence, i) => ({ name: sequence.name, sequence, i }));

describe.each(MQTT_PROTOCOLS)('documentation sequences against the local IoT Core, device on MQTT %s', (protocol) => {
  const v = protocol === '5' ? 'v5' : 'v3';

  it.each(cases)('over MQTT with IotShadowClientv2: $name', async ({ sequence, i }) => {
    const thing = `conf-mqtt-${v}-${i}`;
    const device = await openShadowDevice(core, await provisionThing(core, thing), shadowNamesOf(sequence), protocol);
    try {
      await runSequence(withoutClientTokens(bindThing(sequence, thing)), thing, mqttApply(device));
    } finally {
      await device.close();
    }
  });

  it.each(cases)('over HTTP with @aws-sdk/client-iot-data-plane: $name', async ({ sequence, i }) => {
    const thing = `conf-http-${v}-${i}`;
    const device = await openShadowDevice(core, await provisionThing(core, thing), shadowNamesOf(sequence), protocol);
    try {
      await runSequence(bindThing(sequence, thing), thing, httpApply(device));
    } finally {
      await device.close();
    }
  });
});
