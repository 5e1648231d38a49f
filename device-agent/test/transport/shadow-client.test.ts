import type { PublishPacket } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsIotTransport } from '../../src/adapters/aws-iot-sdk.js';
import { ShadowError, ShadowRejectedError, ShadowTimeoutError } from '../../src/errors.js';
import { createIotShadowService } from '../../src/shadow/iot-shadow-v2.js';
import type { ShadowDelta } from '../../src/shadow/port.js';
import { makePki, startTlsBroker, type TestPki, type TlsBroker, waitFor } from './tls-broker.js';

/**
 * The SDK's IotShadowClientv2 glue against a broker that answers shadow requests the way IoT Core
 * does on the reserved topics (a minimal responder in the test; the real shadow service is
 * tested in cloud/). Checks request/response correlation, 404 → undefined, a rejection with its
 * code, delta streaming, and the request timeout.
 */
let pki: TestPki;
let broker: TlsBroker;
const thing = 'pi-shadow';
const prefix = `$aws/things/${thing}/shadow`;
let doc: { version: number; desired: Record<string, unknown>; reported: Record<string, unknown> } | undefined;
let silent = false;

const reply = (topic: string, body: unknown) =>
  broker.aedes.publish(
    { cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(body)), qos: 0, retain: false, dup: false },
    () => {},
  );

beforeAll(async () => {
  pki = await makePki(thing);
  broker = await startTlsBroker(pki);
  broker.aedes.on('publish', (packet: PublishPacket, client) => {
    if (!client || silent) return;
    const body = packet.payload.length > 0 ? JSON.parse(packet.payload.toString()) : {};
    const ts = Math.floor(Date.now() / 1000);
    if (packet.topic === `${prefix}/get`) {
      if (!doc)
        reply(`${prefix}/get/rejected`, {
          code: 404,
          message: "No shadow exists with name: ''",
          clientToken: body.clientToken,
          timestamp: ts,
        });
      else
        reply(`${prefix}/get/accepted`, {
          state: { desired: doc.desired, reported: doc.reported },
          metadata: {},
          version: doc.version,
          timestamp: ts,
          clientToken: body.clientToken,
        });
    } else if (packet.topic === `${prefix}/update`) {
      if (body.state?.reported?.tooBig !== undefined) {
        reply(`${prefix}/update/rejected`, {
          code: 413,
          message: 'The payload exceeds the maximum size allowed',
          clientToken: body.clientToken,
          timestamp: ts,
        });
        return;
      }
      doc ??= { version: 0, desired: {}, reported: {} };
      doc.version += 1;
      Object.assign(doc.reported, body.state.reported);
      reply(`${prefix}/update/accepted`, {
        state: body.state,
        metadata: {},
        version: doc.version,
        timestamp: ts,
        clientToken: body.clientToken,
      });
    }
  });
});
afterAll(async () => {
  await broker?.close();
  pki?.cleanup();
});

describe('IotShadowClientv2 shadow service over the MQTT 3.1.1 transport', () => {
  it('get (404 → undefined), update, a rejected update, get, follow deltas, and time out when nobody answers', async () => {
    const transport = createAwsIotTransport({
      protocol: '3.1.1',
      endpoint: 'localhost',
      port: broker.port,
      clientId: thing,
      certFile: pki.certFile,
      keyFile: pki.keyFile,
      caFile: pki.caFile,
    });
    const connected = waitFor('connected', (done) => transport.on('connected', () => done(undefined)));
    transport.start();
    await connected;
    const native = transport.native();
    if (!native) throw new Error('no native client');
    const shadow = createIotShadowService({ native, thingName: thing, requestTimeoutMs: 1500 });
    try {
      expect(await shadow.get()).toBeUndefined();
      const updated = await shadow.updateReported({ logLevel: 'info', outputs: { relay: false } });
      expect(updated.version).toBe(1);
      const rejected = await shadow.updateReported({ tooBig: 'x' }).catch((e: unknown) => e);
      expect(rejected).toBeInstanceOf(ShadowRejectedError);
      expect(rejected).toMatchObject({
        name: 'ShadowRejectedError',
        code: 'SHADOW_REJECTED',
        serviceCode: 413,
        clientToken: expect.any(String),
      });
      doc = { ...(doc ?? { version: 1, reported: {} }), desired: { outputs: { relay: true } } } as typeof doc;
      const got = await shadow.get();
      expect(got).toMatchObject({ version: 1, desired: { outputs: { relay: true } }, reported: { logLevel: 'info' } });

      const deltas: ShadowDelta[] = [];
      const first = waitFor<void>('delta', (done) => {
        shadow.onDelta((d) => {
          deltas.push(d);
          done();
        });
      });
      // The stream subscribes asynchronously: keep publishing the delta until it arrives.
      const timer = setInterval(
        () =>
          reply(`${prefix}/update/delta`, {
            state: { outputs: { relay: true } },
            metadata: {},
            version: 7,
            timestamp: 1,
          }),
        50,
      );
      await first.finally(() => clearInterval(timer));
      expect(deltas[0]).toEqual({ version: 7, state: { outputs: { relay: true } } });

      silent = true;
      const started = Date.now();
      const timedOut = await shadow.get().catch((e: unknown) => e);
      expect(timedOut).toBeInstanceOf(ShadowTimeoutError);
      expect(timedOut).toBeInstanceOf(ShadowError);
      expect(timedOut).not.toBeInstanceOf(ShadowRejectedError);
      expect(timedOut).toMatchObject({ name: 'ShadowTimeoutError', code: 'SHADOW_TIMEOUT', timeoutMs: 1500 });
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      silent = false;
      shadow.close();
      await transport.stop();
    }
  });
});
