import { iot, iotidentity, mqtt5 } from 'aws-iot-device-sdk-v2';

/**
 * A device holding a claim bundle, on the device SDK's MQTT 5 client (aws-crt, the Pi's path): it
 * connects with the bundle's claim certificate and key against the bundle's CA, and reports the
 * broker's reason codes as they are, so a test sees what the claim policy grants and refuses.
 */
export interface ClaimDevice {
  /** SUBACK reason code of one filter (QoS 1). */
  subscribe(filter: string): Promise<number>;
  /** PUBACK reason code of one QoS 1 publish. */
  publish(topic: string, payload: string): Promise<number>;
  /** The next message on a topic (subscribe first). */
  next(topic: string, timeoutMs?: number): Promise<string>;
  readonly identity: iotidentity.IotIdentityClientv2;
  close(): Promise<void>;
}

export class ClaimConnectRefused extends Error {
  override name = 'ClaimConnectRefused';
}

function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

export async function connectClaimDevice(o: {
  host: string;
  port: number;
  caPem: string;
  certPem: string;
  keyPem: string;
  clientId: string;
}): Promise<ClaimDevice> {
  const config = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromMemory(o.host, o.certPem, o.keyPem)
    .withCertificateAuthority(o.caPem)
    .withPort(o.port)
    .withConnectProperties({ clientId: o.clientId, keepAliveIntervalSeconds: 30 })
    // A refused client would reconnect by itself: not before the test has looked and stopped it.
    .withMinReconnectDelayMs(10_000)
    .withMaxReconnectDelayMs(20_000)
    .withConnackTimeoutMs(10_000)
    .withAckTimeoutSeconds(10)
    .build();
  const client = new mqtt5.Mqtt5Client(config);
  const waiting = new Map<string, ((payload: string) => void)[]>();
  const queued = new Map<string, string[]>();
  client.on('messageReceived', (e) => {
    const topic = e.message.topicName;
    const payload = e.message.payload ? Buffer.from(e.message.payload as ArrayBuffer).toString('utf8') : '';
    const waiter = waiting.get(topic)?.shift();
    if (waiter) waiter(payload);
    else queued.set(topic, [...(queued.get(topic) ?? []), payload]);
  });
  client.on('error', () => undefined);
  const stop = async () => {
    const stopped = new Promise<void>((resolve) => client.once('stopped', () => resolve()));
    try {
      client.stop({ reasonCode: mqtt5.DisconnectReasonCode.NormalDisconnection });
      await within(stopped, 5_000, 'stopped');
    } catch {
      // stopped already
    }
    client.close();
  };
  const outcome = new Promise<void>((resolve, reject) => {
    client.once('connectionSuccess', () => resolve());
    client.once('connectionFailure', (e) =>
      reject(new ClaimConnectRefused(String(e.connack?.reasonCode ?? e.error?.error_name ?? e.error))),
    );
  });
  client.start();
  try {
    await within(outcome, 15_000, `connect ${o.clientId}`);
  } catch (err) {
    await stop();
    throw err;
  }
  const identity = iotidentity.IotIdentityClientv2.newFromMqtt5(client, {
    maxRequestResponseSubscriptions: 4,
    maxStreamingSubscriptions: 2,
    operationTimeoutInSeconds: 10,
  });
  return {
    identity,
    async subscribe(filter) {
      const suback = await within(
        client.subscribe({ subscriptions: [{ topicFilter: filter, qos: mqtt5.QoS.AtLeastOnce }] }),
        10_000,
        `subscribe ${filter}`,
      );
      return suback.reasonCodes[0] as number;
    },
    async publish(topic, payload) {
      const r = await within(
        client.publish({ topicName: topic, qos: mqtt5.QoS.AtLeastOnce, payload }),
        10_000,
        `publish ${topic}`,
      );
      return (r?.reasonCode as number | undefined) ?? 0;
    },
    next(topic, timeoutMs = 10_000) {
      const ready = queued.get(topic)?.shift();
      if (ready !== undefined) return Promise.resolve(ready);
      return within(
        new Promise<string>((resolve) => waiting.set(topic, [...(waiting.get(topic) ?? []), resolve])),
        timeoutMs,
        `message on ${topic}`,
      );
    },
    async close() {
      identity.close();
      await stop();
    },
  };
}
