import { createAwsIotTransport } from '../adapters/aws-iot-sdk.js';
import { createMqttJsTransport } from '../adapters/mqttjs.js';
import type { MqttTransportOptions } from '../adapters/transport-kit.js';
import type { Clock } from '../ports/clock.js';
import type { Transport } from '../ports/transport.js';
import { ProvisioningTimeoutError } from './errors.js';
import type { IdentityPort } from './port.js';
import { createSdkIdentity } from './sdk-identity.js';
import { createTopicIdentity } from './topic-identity.js';

/** Which MQTT library carries the claim connection: aws-crt (the Pi's agent) or mqtt.js (simulated fleets). */
export type ProvisioningTransportKind = 'crt' | 'mqttjs';

/** A connection made with the claim certificate, and the provisioning API on it. */
export interface IdentitySession {
  readonly identity: IdentityPort;
  close(): Promise<void>;
}

export interface ClaimConnection {
  /** Where and how to connect: the claim certificate and key as `certFile`/`keyFile`, no last will. */
  readonly mqtt: MqttTransportOptions & { readonly protocol: '5' | '3.1.1' };
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
  /** The flow's deadline (on `clock`): connecting waits no longer. */
  readonly deadline: number;
  readonly timeoutMs: number;
}

/** Opens a claim session: connects (the transport retries by itself) and resolves once connected. */
export type IdentitySessionFactory = (connection: ClaimConnection) => Promise<IdentitySession>;

/**
 * Starts `transport` and waits for its first connection, no longer than the deadline. The transport
 * retries a failed connect by itself (a broker that is down at first, a network that comes up late
 * at boot); the last failure is in the timeout's message.
 */
async function connected(transport: Transport, connection: ClaimConnection): Promise<void> {
  const { clock } = connection;
  let lastError: Error | undefined;
  const offFailed = transport.on('connectFailed', ({ error }) => {
    lastError = error;
  });
  let offConnected: () => void = () => undefined;
  let timer: ReturnType<Clock['setTimeout']> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      offConnected = transport.on('connected', () => resolve());
      const left = Math.max(0, connection.deadline - clock.now());
      timer = clock.setTimeout(() => {
        const where = `connecting to ${connection.mqtt.endpoint}:${connection.mqtt.port}`;
        reject(new ProvisioningTimeoutError(connection.timeoutMs, where, lastError));
      }, left);
      transport.start();
    });
  } catch (err) {
    await transport.stop().catch(() => undefined);
    throw err;
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer);
    offConnected();
    offFailed();
  }
}

/** A session closes its identity client (its subscriptions and requests) before its connection. */
function sessionOf(transport: Transport, identity: IdentityPort): IdentitySession {
  return {
    identity,
    async close() {
      identity.close();
      await transport.stop();
    },
  };
}

/** The Pi's claim session: the device SDK's transport and its `IotIdentityClientv2`. */
export const openCrtSession: IdentitySessionFactory = async (connection) => {
  const transport = createAwsIotTransport(connection.mqtt);
  await connected(transport, connection);
  const native = transport.native();
  if (!native) {
    await transport.stop();
    throw new Error('the device SDK transport has no client after connecting');
  }
  return sessionOf(
    transport,
    createSdkIdentity({ native, requestTimeoutMs: connection.requestTimeoutMs, clock: connection.clock }),
  );
};

/** A simulated device's claim session: an mqtt.js transport and the reserved topics. */
export const openMqttJsSession: IdentitySessionFactory = async (connection) => {
  const transport = createMqttJsTransport(connection.mqtt);
  await connected(transport, connection);
  return sessionOf(
    transport,
    createTopicIdentity({ transport, requestTimeoutMs: connection.requestTimeoutMs, clock: connection.clock }),
  );
};

export const SESSION_FACTORIES: Readonly<Record<ProvisioningTransportKind, IdentitySessionFactory>> = {
  crt: openCrtSession,
  mqttjs: openMqttJsSession,
};
