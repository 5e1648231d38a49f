/**
 * Local IoT Core broker: mutual-TLS connection setup rate, QoS 1 publish throughput and the
 * broker's CPU per connect and per message, over MQTT 5 and MQTT 3.1.1, through the
 * policy-checked broker and through the same broker with `policyChecks: false` (bare aedes behind
 * the same TLS). The four variants run in the same run, interleaved (rotated every round), and
 * the results are ratios: MQTT 5 ÷ 3.1.1 on each broker, policy-checked ÷ bare on each protocol.
 * Not a test.
 *
 *   npx tsx --conditions=@pifleet/source bench/broker.bench.ts [--connections 200] [--messages 20000] [--rounds 4] [--publish-window 100] [--client crt|mqttjs]
 *
 * Each broker runs in its own child process (bench/lib/broker-host.ts); the clients are the real
 * aws-iot-device-sdk-v2 (aws-crt) in this process: its MQTT 3.1.1 connection and its MQTT 5
 * client, as the agent uses them; `--client mqttjs` uses one client for both protocols instead
 * (the fleet's mqtt.js transport), which isolates the broker's side of the ratio. Everything talks to 127.0.0.1 only and stops by itself (a
 * watchdog ends the run after 10 minutes). Writes bench/results/broker.json
 * (broker-mqttjs.json with `--client mqttjs`).
 *
 * The publisher keeps at most `--publish-window` QoS 1 messages in flight (default 100) on both
 * protocols: IoT Core's MQTT 5 Receive Maximum is 100, which the local core advertises and the
 * MQTT 5 client obeys, so a wider window would only compare the two clients' queues.
 *
 * BENCH_PROF=1 writes CPU profiles of both broker processes to /tmp/prof.
 *
 * Rates are best-of-rounds wall clock (client and broker share the machine's cores, so read them
 * as lower bounds); broker CPU per connect/message is the broker process's own CPU time, which
 * other load on the machine disturbs much less, so its ratio is the steadier overhead figure.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { iot, mqtt, mqtt5 } from 'aws-iot-device-sdk-v2';
import { compilePolicies, iotResourceArn } from '../cloud/src/core/policy/index.js';
import { createMqttJsTransport } from '../device-agent/src/index.js';
import {
  appTopicFilters,
  appTopicResource,
  appTopics,
  type IotPolicyDocument,
  isMqtt5Failure,
  type MqttProtocol,
  mqtt5ReasonName,
  recommendedDevicePolicy,
} from '../protocol/src/index.js';
import type { HostIdentity, HostReply, HostRequest } from './lib/broker-host.js';
import { createBenchPki, type Issued } from './lib/pki.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? Number(process.argv[i + 1]) : fallback;
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const CONNECTIONS = arg('connections', 200);
const CONNECT_WINDOW = arg('connect-window', 50);
const MESSAGES = arg('messages', 20_000);
const WARMUP = Math.min(2_000, MESSAGES);
const PUBLISH_WINDOW = arg('publish-window', 100);
const ROUNDS = arg('rounds', 4);
const PAYLOAD_BYTES = 200;
const THINGS_PER_CERT = 10;
const ACCOUNT = { region: 'eu-west-1', accountId: '123456789012' };

const watchdog = setTimeout(() => {
  process.stderr.write('broker bench: watchdog fired after 10 minutes\n');
  process.exit(1);
}, 600_000);
watchdog.unref();

const log = (line: string) => process.stderr.write(`${line}\n`);

// ---- broker hosts -------------------------------------------------------------------------

class Host {
  readonly #child: ChildProcess;
  #pending: ((reply: HostReply) => void)[] = [];

  constructor() {
    this.#child = fork(path.join(here, 'lib', 'broker-host.ts'), [], {
      execArgv: [
        '--import',
        'tsx',
        '--conditions=@pifleet/source',
        ...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/prof'] : []),
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child.on('message', (reply) => this.#pending.shift()?.(reply as HostReply));
  }

  request(req: HostRequest): Promise<HostReply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`broker host did not answer ${req.type}`)), 30_000);
      this.#pending.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.#child.send(req);
    });
  }

  async cpuMicros(): Promise<number> {
    const r = await this.request({ type: 'cpu' });
    return r.type === 'cpu' ? r.user + r.system : Number.NaN;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#child.exitCode !== null) return resolve();
      const timer = setTimeout(() => this.#child.kill(), 10_000);
      this.#child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#child.send({ type: 'stop' } satisfies HostRequest);
    });
  }
}

// ---- clients ------------------------------------------------------------------------------

/**
 * One device's connection in the protocol of the variant being measured, through the device SDK's
 * client for that protocol: `mqtt.MqttClientConnection` (3.1.1) or `mqtt5.Mqtt5Client` (5), what
 * the agent runs on a Pi.
 */
interface BenchClient {
  connect(): Promise<void>;
  /** Subscribes at QoS 1; throws unless the broker grants QoS 1. */
  subscribe(filter: string, onMessage: () => void): Promise<void>;
  /** Resolves on the PUBACK; throws on a failure reason code. */
  publish(topic: string, payload: Buffer): Promise<void>;
  close(): Promise<void>;
}

const client311 = new mqtt.MqttClient();

function connection311(port: number, caCertPem: string, cert: Issued, clientId: string): BenchClient {
  const config = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(cert.certPem, cert.keyPem)
    .with_certificate_authority(caCertPem)
    .with_endpoint('127.0.0.1')
    .with_port(port)
    .with_client_id(clientId)
    .with_clean_session(true)
    .with_keep_alive_seconds(60)
    .with_reconnect_min_sec(1)
    .with_reconnect_max_sec(2)
    .build();
  const c = client311.new_connection(config);
  return {
    connect: async () => {
      await c.connect();
    },
    subscribe: async (filter, onMessage) => {
      const suback = await c.subscribe(filter, mqtt.QoS.AtLeastOnce, onMessage);
      if (suback.qos !== mqtt.QoS.AtLeastOnce) throw new Error(`subscription refused (${suback.qos})`);
    },
    publish: async (topic, payload) => {
      await c.publish(topic, payload, mqtt.QoS.AtLeastOnce);
    },
    close: async () => {
      await c.disconnect().catch(() => undefined);
    },
  };
}

function connection5(port: number, caCertPem: string, cert: Issued, clientId: string): BenchClient {
  const builder = iot.AwsIotMqtt5ClientConfigBuilder.newDirectMqttBuilderWithMtlsFromMemory(
    '127.0.0.1',
    cert.certPem,
    cert.keyPem,
  )
    .withCertificateAuthority(caCertPem)
    .withPort(port)
    .withConnectProperties({ clientId, keepAliveIntervalSeconds: 60 })
    .withSessionBehavior(mqtt5.ClientSessionBehavior.Clean)
    .withMinReconnectDelayMs(1_000)
    .withMaxReconnectDelayMs(2_000)
    // The IoT builder's default throttles every client to IoT Core's per-connection limit of 100
    // publishes/s (AwsIotCoreDefaults): this measures the broker, so the client sends as fast as the
    // broker's Receive Maximum (100 in flight) lets it, as the 3.1.1 client does with the same window.
    .withExtendedValidationAndFlowControlOptions(mqtt5.ClientExtendedValidationAndFlowControl.None);
  const c = new mqtt5.Mqtt5Client(builder.build());
  let onMessage: (() => void) | undefined;
  c.on('messageReceived', () => onMessage?.());
  return {
    connect: () =>
      new Promise<void>((resolve, reject) => {
        const ok = () => {
          c.off('connectionFailure', failed);
          resolve();
        };
        const failed = (e: mqtt5.ConnectionFailureEvent) => {
          c.off('connectionSuccess', ok);
          c.stop();
          reject(e.error);
        };
        c.once('connectionSuccess', ok);
        c.once('connectionFailure', failed);
        c.start();
      }),
    subscribe: async (filter, handler) => {
      onMessage = handler;
      const suback = await c.subscribe({ subscriptions: [{ topicFilter: filter, qos: mqtt5.QoS.AtLeastOnce }] });
      const code = suback.reasonCodes[0];
      if (code !== mqtt5.SubackReasonCode.GrantedQoS1) throw new Error(`subscription refused (${code})`);
    },
    publish: async (topic, payload) => {
      const r = await c.publish({ topicName: topic, payload, qos: mqtt5.QoS.AtLeastOnce });
      const code = r?.reasonCode ?? 0;
      if (isMqtt5Failure(code)) throw new Error(`publish refused: ${mqtt5ReasonName(code)}`);
    },
    close: async () => {
      const stopped = new Promise<void>((resolve) => c.once('stopped', () => resolve()));
      c.stop();
      await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      c.close();
    },
  };
}

/**
 * `--client mqttjs`: the fleet's mqtt.js transport (`createMqttJsTransport`) for both protocols.
 * The device SDK's 3.1.1 and 5 clients are two implementations (they write to the socket
 * differently), so with them a 5 ÷ 3.1.1 ratio mixes client and broker; one client that only
 * changes `protocolVersion` leaves the broker's handling of each protocol.
 */
function connectionMqttJs(protocol: MqttProtocol) {
  return (port: number, caCertPem: string, cert: Issued, clientId: string): BenchClient => {
    // The transport reads PEM files through `readFile`: these names stand for the PEMs in memory.
    const pems: Record<string, string> = { 'ca.pem': caCertPem, 'cert.pem': cert.certPem, 'key.pem': cert.keyPem };
    const t = createMqttJsTransport({
      endpoint: '127.0.0.1',
      port,
      clientId,
      caFile: 'ca.pem',
      certFile: 'cert.pem',
      keyFile: 'key.pem',
      readFile: (file) => Buffer.from(pems[file] ?? ''),
      protocol,
      keepAliveS: 60,
      reconnectMinMs: 1_000,
      reconnectMaxMs: 2_000,
      operationTimeoutMs: 60_000,
    });
    return {
      connect: () =>
        new Promise<void>((resolve, reject) => {
          const offUp = t.on('connected', () => {
            offUp();
            offFailed();
            resolve();
          });
          const offFailed = t.on('connectFailed', ({ error }) => {
            offUp();
            offFailed();
            reject(error);
          });
          t.start();
        }),
      subscribe: (filter, onMessage) => t.subscribe(filter, 1, onMessage),
      publish: (topic, payload) => t.publish(topic, payload, { qos: 1 }),
      close: () => t.stop(),
    };
  };
}

const CLIENT = process.argv.includes('--client') ? process.argv[process.argv.indexOf('--client') + 1] : 'crt';
if (CLIENT !== 'crt' && CLIENT !== 'mqttjs') {
  process.stderr.write(`broker bench: --client must be crt or mqttjs, not ${CLIENT}\n`);
  process.exit(64);
}

const connection = (protocol: MqttProtocol) =>
  CLIENT === 'mqttjs' ? connectionMqttJs(protocol) : protocol === '5' ? connection5 : connection311;

async function pool<T>(items: readonly T[], width: number, run: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await run(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

interface Fleet {
  readonly caCertPem: string;
  readonly devices: { clientId: string; cert: Issued }[];
  readonly publisher: { clientId: string; cert: Issued };
  readonly subscriber: { clientId: string; cert: Issued };
}

async function connectPhase(host: Host, port: number, protocol: MqttProtocol, fleet: Fleet) {
  const conns = fleet.devices.map((d) => connection(protocol)(port, fleet.caCertPem, d.cert, d.clientId));
  const cpu0 = await host.cpuMicros();
  const started = performance.now();
  await pool(conns, CONNECT_WINDOW, (c) => c.connect());
  const seconds = (performance.now() - started) / 1000;
  const cpu = (await host.cpuMicros()) - cpu0;
  await Promise.all(conns.map((c) => c.close()));
  return {
    connections: conns.length,
    seconds,
    connectsPerSecond: conns.length / seconds,
    brokerCpuMicrosPerConnect: cpu / conns.length,
  };
}

async function throughputPhase(host: Host, port: number, protocol: MqttProtocol, fleet: Fleet) {
  const sub = connection(protocol)(port, fleet.caCertPem, fleet.subscriber.cert, fleet.subscriber.clientId);
  const pub = connection(protocol)(port, fleet.caCertPem, fleet.publisher.cert, fleet.publisher.clientId);
  try {
    await sub.connect();
    await pub.connect();
    const topic = appTopics.telemetry(fleet.publisher.clientId);
    let received = 0;
    let target = 0;
    let reached: (() => void) | undefined;
    await sub.subscribe(appTopicFilters.telemetry, () => {
      received++;
      if (received >= target) reached?.();
    });
    const payload = Buffer.alloc(PAYLOAD_BYTES, 'x');

    const burst = async (count: number) => {
      target = received + count;
      const done = new Promise<void>((resolve) => {
        reached = resolve;
      });
      const ids = Array.from({ length: count }, (_, i) => i);
      await pool(ids, PUBLISH_WINDOW, () => pub.publish(topic, payload));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        done,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`only ${received} of ${target} messages arrived`)), 60_000);
        }),
      ]).finally(() => clearTimeout(timer));
    };

    await burst(WARMUP);
    const cpu0 = await host.cpuMicros();
    const started = performance.now();
    await burst(MESSAGES);
    const seconds = (performance.now() - started) / 1000;
    const cpu = (await host.cpuMicros()) - cpu0;
    return {
      messages: MESSAGES,
      seconds,
      messagesPerSecond: MESSAGES / seconds,
      brokerCpuMicrosPerMessage: cpu / MESSAGES,
    };
  } finally {
    await Promise.all([sub.close(), pub.close()]);
  }
}

/**
 * The policy engine's own cost, in this process without I/O: compiling a connection's policies
 * and answering its iot:Connect (once per CONNECT), and one uncached iot:Publish decision (the
 * broker caches decisions per connection and topic, so a steady stream pays a Map lookup).
 */
function policyEngineCost(document: IotPolicyDocument) {
  const run = (iterations: number) => {
    let sink = 0;
    const t0 = performance.now();
    for (let i = 0; i < iterations; i++) {
      const clientId = `pi-${i}`;
      const ctx = { ...ACCOUNT, clientId, thingNames: [clientId] };
      const auth = compilePolicies([{ name: 'p', document }], ctx);
      if (auth.authorize('iot:Connect', iotResourceArn(ctx, 'client', clientId)).allowed) sink++;
    }
    const t1 = performance.now();
    const ctx = { ...ACCOUNT, clientId: 'pi-1', thingNames: ['pi-1'] };
    const auth = compilePolicies([{ name: 'p', document }], ctx);
    const topic = iotResourceArn(ctx, 'topic', appTopics.telemetry('pi-1'));
    const decisions = iterations * 50;
    for (let i = 0; i < decisions; i++) if (auth.authorize('iot:Publish', topic).allowed) sink++;
    const t2 = performance.now();
    return { compileMicros: ((t1 - t0) * 1000) / iterations, decisionMicros: ((t2 - t1) * 1000) / decisions, sink };
  };
  run(500);
  const samples = [run(3_000), run(3_000), run(3_000)];
  return {
    compileAndConnectCheckMicros: Number(Math.min(...samples.map((x) => x.compileMicros)).toFixed(1)),
    uncachedPublishDecisionMicros: Number(Math.min(...samples.map((x) => x.decisionMicros)).toFixed(3)),
  };
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

// ---- main ---------------------------------------------------------------------------------

async function main() {
  log(`broker bench: generating RSA-2048 certificates for ${CONNECTIONS} connections`);
  const pki = await createBenchPki('rsa');
  const certCount = Math.ceil(CONNECTIONS / THINGS_PER_CERT);
  const certs = await Promise.all(Array.from({ length: certCount }, (_, i) => pki.issue(`bench-${i}`)));
  const devicePolicy = { name: 'pifleet-device', document: recommendedDevicePolicy(ACCOUNT.region, ACCOUNT.accountId) };
  const arn = (kind: string, rest: string) => `arn:aws:iot:${ACCOUNT.region}:${ACCOUNT.accountId}:${kind}/${rest}`;
  const consumerPolicy: { name: string; document: IotPolicyDocument } = {
    name: 'telemetry-consumer',
    document: {
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: 'iot:Connect', Resource: arn('client', 'bench-consumer') },
        { Effect: 'Allow', Action: 'iot:Subscribe', Resource: arn('topicfilter', appTopicFilters.telemetry) },
        { Effect: 'Allow', Action: 'iot:Receive', Resource: arn('topic', appTopicResource('telemetry', '*')) },
      ],
    },
  };
  const devices = Array.from({ length: CONNECTIONS }, (_, i) => ({
    clientId: `bench-dev-${i}`,
    cert: certs[i % certCount] as Issued,
  }));
  const publisher = { clientId: 'bench-publisher', cert: await pki.issue('bench-publisher') };
  const subscriber = { clientId: 'bench-consumer', cert: await pki.issue('bench-consumer') };
  const identities: HostIdentity[] = [
    ...certs.map((cert, c) => ({
      certificateId: cert.certificateId,
      thingNames: devices.filter((_, i) => i % certCount === c).map((d) => d.clientId),
      policies: [devicePolicy],
    })),
    { certificateId: publisher.cert.certificateId, thingNames: [publisher.clientId], policies: [devicePolicy] },
    { certificateId: subscriber.cert.certificateId, thingNames: [], policies: [consumerPolicy] },
  ];
  const fleet: Fleet = { caCertPem: pki.caCertPem, devices, publisher, subscriber };
  const tls = { caCertPem: pki.caCertPem, serverCertPem: pki.server.certPem, serverKeyPem: pki.server.keyPem };

  const hosts = { policy: new Host(), bare: new Host() };
  try {
    const ports: Record<keyof typeof hosts, number> = { policy: 0, bare: 0 };
    for (const mode of ['policy', 'bare'] as const) {
      const reply = await hosts[mode].request({
        type: 'start',
        tls,
        identities,
        policyChecks: mode === 'policy',
        account: ACCOUNT,
      });
      if (reply.type !== 'started') throw new Error('broker host did not start');
      ports[mode] = reply.port;
    }

    type Mode = 'policy' | 'bare';
    type Variant = { readonly mode: Mode; readonly protocol: MqttProtocol };
    type Round = Variant & {
      round: number;
      connect: Awaited<ReturnType<typeof connectPhase>>;
      publish: Awaited<ReturnType<typeof throughputPhase>>;
    };
    const VARIANTS: readonly Variant[] = [
      { mode: 'policy', protocol: '3.1.1' },
      { mode: 'policy', protocol: '5' },
      { mode: 'bare', protocol: '3.1.1' },
      { mode: 'bare', protocol: '5' },
    ];
    const label = (v: Variant) => `${v.mode} ${v.protocol}`;
    const loadBefore = os.loadavg();
    // Warm both brokers on both protocols (JIT, TLS session machinery) before anything is measured.
    const warmFleet = { ...fleet, devices: fleet.devices.slice(0, Math.min(50, fleet.devices.length)) };
    for (const v of VARIANTS) await connectPhase(hosts[v.mode], ports[v.mode], v.protocol, warmFleet);

    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Interleaved, and rotated each round so that no variant always runs first (on a cooler
      // machine) or right after the same other one.
      const order = VARIANTS.map((_, i) => VARIANTS[(i + r) % VARIANTS.length] as Variant);
      for (const v of order) {
        const connect = await connectPhase(hosts[v.mode], ports[v.mode], v.protocol, fleet);
        const publish = await throughputPhase(hosts[v.mode], ports[v.mode], v.protocol, fleet);
        log(
          `round ${r + 1} ${label(v).padEnd(12)} connects/s ${connect.connectsPerSecond.toFixed(0).padStart(6)}  ` +
            `QoS1 msg/s ${publish.messagesPerSecond.toFixed(0).padStart(7)}  broker µs/msg ${publish.brokerCpuMicrosPerMessage.toFixed(1)}`,
        );
        rounds.push({ ...v, round: r, connect, publish });
      }
    }

    const of = (v: Variant) => rounds.filter((r) => r.mode === v.mode && r.protocol === v.protocol);
    const best = (v: Variant) => {
      const mine = of(v);
      const pick = <T>(values: T[], key: (x: T) => number, dir: 1 | -1) =>
        values.reduce((a, b) => (dir * key(b) > dir * key(a) ? b : a));
      // Best of the rounds: other load on the machine only ever makes a round slower.
      const c = pick(mine, (r) => r.connect.connectsPerSecond, 1).connect;
      const p = pick(mine, (r) => r.publish.messagesPerSecond, 1).publish;
      const cpuConnect = pick(mine, (r) => r.connect.brokerCpuMicrosPerConnect, -1).connect;
      const cpuMessage = pick(mine, (r) => r.publish.brokerCpuMicrosPerMessage, -1).publish;
      return {
        connectsPerSecond: Math.round(c.connectsPerSecond),
        brokerCpuMicrosPerConnect: Math.round(cpuConnect.brokerCpuMicrosPerConnect),
        qos1MessagesPerSecond: Math.round(p.messagesPerSecond),
        brokerCpuMicrosPerMessage: Number(cpuMessage.brokerCpuMicrosPerMessage.toFixed(2)),
      };
    };
    type Best = ReturnType<typeof best>;
    const ratioOf = (a: Best, b: Best) => ({
      connectRate: Number((a.connectsPerSecond / b.connectsPerSecond).toFixed(3)),
      qos1Throughput: Number((a.qos1MessagesPerSecond / b.qos1MessagesPerSecond).toFixed(3)),
      brokerCpuPerConnect: Number((a.brokerCpuMicrosPerConnect / b.brokerCpuMicrosPerConnect).toFixed(3)),
      brokerCpuPerMessage: Number((a.brokerCpuMicrosPerMessage / b.brokerCpuMicrosPerMessage).toFixed(3)),
    });
    // Each round ran every variant: the median of the per-round ratios is steadier than a ratio
    // of bests when other work shares the machine.
    const pairedRatioOf = (a: Variant, b: Variant) => {
      const paired = (key: (r: Round) => number) =>
        Number(
          median(
            Array.from({ length: ROUNDS }, (_, r) => {
              const x = of(a).find((y) => y.round === r);
              const y = of(b).find((z) => z.round === r);
              return x && y ? key(x) / key(y) : Number.NaN;
            }),
          ).toFixed(3),
        );
      return {
        connectRate: paired((r) => r.connect.connectsPerSecond),
        qos1Throughput: paired((r) => r.publish.messagesPerSecond),
        brokerCpuPerConnect: paired((r) => r.connect.brokerCpuMicrosPerConnect),
        brokerCpuPerMessage: paired((r) => r.publish.brokerCpuMicrosPerMessage),
      };
    };
    const byProtocol = (protocol: MqttProtocol) => {
      const policy = best({ mode: 'policy', protocol });
      const bare = best({ mode: 'bare', protocol });
      return {
        policyChecked: policy,
        bare,
        ratio: ratioOf(policy, bare),
        medianPairedRatio: pairedRatioOf({ mode: 'policy', protocol }, { mode: 'bare', protocol }),
      };
    };
    const v311 = byProtocol('3.1.1');
    const v5 = byProtocol('5');
    /** MQTT 5 ÷ MQTT 3.1.1, on each broker: the cost of the newer protocol's handling. */
    const mqtt5Vs311 = {
      policyChecked: ratioOf(v5.policyChecked, v311.policyChecked),
      bare: ratioOf(v5.bare, v311.bare),
      medianPairedRatio: {
        policyChecked: pairedRatioOf({ mode: 'policy', protocol: '5' }, { mode: 'policy', protocol: '3.1.1' }),
        bare: pairedRatioOf({ mode: 'bare', protocol: '5' }, { mode: 'bare', protocol: '3.1.1' }),
      },
    };
    const engine = policyEngineCost(devicePolicy.document);
    const result = {
      config: {
        connections: CONNECTIONS,
        connectWindow: CONNECT_WINDOW,
        messages: MESSAGES,
        publishWindow: PUBLISH_WINDOW,
        payloadBytes: PAYLOAD_BYTES,
        rounds: ROUNDS,
        keys: 'RSA-2048 (CA, server, devices)',
        client:
          CLIENT === 'mqttjs'
            ? 'mqtt.js 5 through the fleet transport (createMqttJsTransport), protocolVersion 4 or 5; one process; broker in a child process'
            : 'aws-iot-device-sdk-v2 (aws-crt): MqttClientConnection for 3.1.1, Mqtt5Client for 5 (no client-side IoT Core throttle); one process; broker in a child process',
      },
      machine: {
        cpus: os.cpus().length,
        node: process.version,
        loadAverageBefore: loadBefore.map((l) => Number(l.toFixed(2))),
        loadAverageAfter: os.loadavg().map((l) => Number(l.toFixed(2))),
      },
      mqtt5Vs311,
      mqtt311: v311,
      mqtt5: v5,
      policyEngine: engine,
      rounds,
    };
    const P = v311.policyChecked;
    const P5 = v5.policyChecked;
    const B = v311.bare;
    const B5 = v5.bare;
    const r5 = mqtt5Vs311;
    const table = [
      ['', '3.1.1 policy', '5 policy', '5 ÷ 3.1.1', '3.1.1 bare', '5 bare', '5 ÷ 3.1.1'],
      [
        'mTLS connects/s',
        P.connectsPerSecond,
        P5.connectsPerSecond,
        r5.policyChecked.connectRate,
        B.connectsPerSecond,
        B5.connectsPerSecond,
        r5.bare.connectRate,
      ],
      [
        'broker CPU µs/connect',
        P.brokerCpuMicrosPerConnect,
        P5.brokerCpuMicrosPerConnect,
        r5.policyChecked.brokerCpuPerConnect,
        B.brokerCpuMicrosPerConnect,
        B5.brokerCpuMicrosPerConnect,
        r5.bare.brokerCpuPerConnect,
      ],
      [
        'QoS 1 msg/s (1→1)',
        P.qos1MessagesPerSecond,
        P5.qos1MessagesPerSecond,
        r5.policyChecked.qos1Throughput,
        B.qos1MessagesPerSecond,
        B5.qos1MessagesPerSecond,
        r5.bare.qos1Throughput,
      ],
      [
        'broker CPU µs/msg',
        P.brokerCpuMicrosPerMessage,
        P5.brokerCpuMicrosPerMessage,
        r5.policyChecked.brokerCpuPerMessage,
        B.brokerCpuMicrosPerMessage,
        B5.brokerCpuMicrosPerMessage,
        r5.bare.brokerCpuPerMessage,
      ],
      ['median of paired rounds', '', '', '5 ÷ 3.1.1', '', '', '5 ÷ 3.1.1'],
      ...(
        [
          ['  connects/s', 'connectRate'],
          ['  broker CPU µs/connect', 'brokerCpuPerConnect'],
          ['  QoS 1 msg/s', 'qos1Throughput'],
          ['  broker CPU µs/msg', 'brokerCpuPerMessage'],
        ] as const
      ).map(([name, key]) => [
        name,
        '',
        '',
        r5.medianPairedRatio.policyChecked[key],
        '',
        '',
        r5.medianPairedRatio.bare[key],
      ]),
      ['policy ÷ bare (paired)', '3.1.1', '5', '', '', '', ''],
      ...(
        [
          ['  connects/s', 'connectRate'],
          ['  broker CPU µs/connect', 'brokerCpuPerConnect'],
          ['  QoS 1 msg/s', 'qos1Throughput'],
          ['  broker CPU µs/msg', 'brokerCpuPerMessage'],
        ] as const
      ).map(([name, key]) => [name, v311.medianPairedRatio[key], v5.medianPairedRatio[key], '', '', '', '']),
      ['policy engine alone', '', '', '', '', '', ''],
      ['  compile+Connect µs', engine.compileAndConnectCheckMicros, '', '', '', '', ''],
      ['  Publish decision µs', engine.uncachedPublishDecisionMicros, '', '', '', '', ''],
    ];
    process.stdout.write(
      `\n${table.map((row) => row.map((c, i) => String(c)[i === 0 ? 'padEnd' : 'padStart'](i === 0 ? 24 : 13)).join('')).join('\n')}\n`,
    );
    const resultsDir = path.join(here, 'results');
    mkdirSync(resultsDir, { recursive: true });
    // The default run's file is the one `pnpm bench` tabulates; --client mqttjs writes beside it.
    const file = CLIENT === 'mqttjs' ? 'broker-mqttjs.json' : 'broker.json';
    writeFileSync(path.join(resultsDir, file), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await Promise.all([hosts.policy.stop(), hosts.bare.stop()]);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`broker bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
