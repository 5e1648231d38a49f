/**
 * Test fixture: answers classic-shadow requests on an aedes broker the way IoT Core does on the
 * reserved topics, for as many things as publish to it (a minimal responder: the real shadow
 * service is tested in cloud/). An update whose reported state has a `tooBig` key is rejected with
 * 413; a thing marked silent gets no answer at all.
 */
import { parseShadowTopic, shadowTopics } from '@pifleet/protocol';
import type { PublishPacket } from 'aedes';
import type { ConnectTarget } from '../../src/adapters/connect-diagnosis.js';
import { makePki, startTlsBroker, type TestPki, type TlsBroker } from './tls-broker.js';

interface Doc {
  version: number;
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
}

export interface ShadowResponder {
  /** Sets desired keys of a thing's shadow (as an operator would), without publishing a delta. */
  setDesired(thing: string, desired: Record<string, unknown>): void;
  /** Publishes an `/update/delta` message to the thing. */
  publishDelta(thing: string, version: number, state: unknown): void;
  /** Things whose requests get no answer. */
  readonly silent: Set<string>;
}

export function respondToShadowRequests(broker: TlsBroker): ShadowResponder {
  const docs = new Map<string, Doc>();
  const silent = new Set<string>();
  const reply = (topic: string, body: unknown) =>
    broker.aedes.publish(
      { cmd: 'publish', topic, payload: Buffer.from(JSON.stringify(body)), qos: 0, retain: false, dup: false },
      () => {},
    );
  broker.aedes.on('publish', (packet: PublishPacket, client) => {
    const parsed = client ? parseShadowTopic(packet.topic) : undefined;
    if (!parsed || parsed.response !== undefined || silent.has(parsed.thingName)) return;
    const topics = shadowTopics(parsed.thingName);
    const body = (packet.payload.length > 0 ? JSON.parse(packet.payload.toString()) : {}) as {
      clientToken?: string;
      state?: { reported?: Record<string, unknown> };
    };
    const timestamp = Math.floor(Date.now() / 1000);
    const doc = docs.get(parsed.thingName);
    if (parsed.operation === 'get') {
      if (!doc) {
        reply(topics.getRejected, {
          code: 404,
          message: "No shadow exists with name: ''",
          clientToken: body.clientToken,
          timestamp,
        });
      } else {
        reply(topics.getAccepted, {
          state: { desired: doc.desired, reported: doc.reported },
          metadata: {},
          version: doc.version,
          timestamp,
          clientToken: body.clientToken,
        });
      }
    } else if (parsed.operation === 'update') {
      if (body.state?.reported?.tooBig !== undefined) {
        reply(topics.updateRejected, {
          code: 413,
          message: 'The payload exceeds the maximum size allowed',
          clientToken: body.clientToken,
          timestamp,
        });
        return;
      }
      const next = doc ?? { version: 0, desired: {}, reported: {} };
      docs.set(parsed.thingName, next);
      next.version += 1;
      Object.assign(next.reported, body.state?.reported);
      reply(topics.updateAccepted, {
        state: body.state,
        metadata: {},
        version: next.version,
        timestamp,
        clientToken: body.clientToken,
      });
    }
  });
  return {
    silent,
    setDesired(thing, desired) {
      const doc = docs.get(thing) ?? { version: 0, desired: {}, reported: {} };
      docs.set(thing, doc);
      Object.assign(doc.desired, desired);
    },
    publishDelta(thing, version, state) {
      reply(shadowTopics(thing).updateDelta, { state, metadata: {}, version, timestamp: 1 });
    },
  };
}

export interface ShadowBroker {
  readonly pki: TestPki;
  readonly broker: TlsBroker;
  readonly responder: ShadowResponder;
  /** Where a client connects, with the fixture's client certificate. */
  target(clientId: string): ConnectTarget;
  close(): Promise<void>;
}

/** A fixture PKI, a TLS broker on 127.0.0.1 and a shadow responder on it. */
export async function startShadowBroker(clientCn: string): Promise<ShadowBroker> {
  const pki = await makePki(clientCn);
  const broker = await startTlsBroker(pki);
  return {
    pki,
    broker,
    responder: respondToShadowRequests(broker),
    target: (clientId) => ({
      endpoint: 'localhost',
      port: broker.port,
      clientId,
      certFile: pki.certFile,
      keyFile: pki.keyFile,
      caFile: pki.caFile,
    }),
    close: async () => {
      await broker.close();
      pki.cleanup();
    },
  };
}
