/**
 * Local IoT Core broker: mutual-TLS connection setup rate and QoS 1 publish throughput through
 * the policy-checked broker, and through the same broker with `policyChecks: false` (bare aedes
 * behind the same TLS), in the same run, as a ratio. Not a test.
 *
 *   npx tsx --conditions=@pifleet/source bench/broker.bench.ts [--connections 200] [--messages 20000] [--rounds 2]
 *
 * Each broker runs in its own child process (bench/lib/broker-host.ts); the clients are the real
 * aws-iot-device-sdk-v2 (aws-crt) in this process. Everything talks to 127.0.0.1 only and stops
 * by itself (a watchdog ends the run after 5 minutes). Writes bench/results/broker.json.
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
import { iot, mqtt } from 'aws-iot-device-sdk-v2';
import { compilePolicies, iotResourceArn } from '../cloud/src/core/policy/index.js';
import {
  appTopicFilters,
  appTopicResource,
  appTopics,
  type IotPolicyDocument,
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
const PUBLISH_WINDOW = arg('publish-window', 1_000);
const ROUNDS = arg('rounds', 3);
const PAYLOAD_BYTES = 200;
const THINGS_PER_CERT = 10;
const ACCOUNT = { region: 'eu-west-1', accountId: '123456789012' };

const watchdog = setTimeout(() => {
  process.stderr.write('broker bench: watchdog fired after 5 minutes\n');
  process.exit(1);
}, 300_000);
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

const client = new mqtt.MqttClient();

function connection(port: number, caCertPem: string, cert: Issued, clientId: string): mqtt.MqttClientConnection {
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
  return client.new_connection(config);
}

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

async function connectPhase(host: Host, port: number, fleet: Fleet) {
  const conns = fleet.devices.map((d) => connection(port, fleet.caCertPem, d.cert, d.clientId));
  const cpu0 = await host.cpuMicros();
  const started = performance.now();
  await pool(conns, CONNECT_WINDOW, async (c) => {
    await c.connect();
  });
  const seconds = (performance.now() - started) / 1000;
  const cpu = (await host.cpuMicros()) - cpu0;
  await Promise.all(conns.map((c) => c.disconnect().catch(() => undefined)));
  return {
    connections: conns.length,
    seconds,
    connectsPerSecond: conns.length / seconds,
    brokerCpuMicrosPerConnect: cpu / conns.length,
  };
}

async function throughputPhase(host: Host, port: number, fleet: Fleet) {
  const sub = connection(port, fleet.caCertPem, fleet.subscriber.cert, fleet.subscriber.clientId);
  const pub = connection(port, fleet.caCertPem, fleet.publisher.cert, fleet.publisher.clientId);
  try {
    await sub.connect();
    await pub.connect();
    const topic = appTopics.telemetry(fleet.publisher.clientId);
    let received = 0;
    let target = 0;
    let reached: (() => void) | undefined;
    const suback = await sub.subscribe(appTopicFilters.telemetry, mqtt.QoS.AtLeastOnce, () => {
      received++;
      if (received >= target) reached?.();
    });
    if (suback.qos !== mqtt.QoS.AtLeastOnce) throw new Error(`subscription refused (${suback.qos})`);
    const payload = Buffer.alloc(PAYLOAD_BYTES, 'x');

    const burst = async (count: number) => {
      target = received + count;
      const done = new Promise<void>((resolve) => {
        reached = resolve;
      });
      const ids = Array.from({ length: count }, (_, i) => i);
      await pool(ids, PUBLISH_WINDOW, async () => {
        await pub.publish(topic, payload, mqtt.QoS.AtLeastOnce);
      });
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
    await Promise.all([sub.disconnect().catch(() => undefined), pub.disconnect().catch(() => undefined)]);
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

    type Round = {
      mode: 'policy' | 'bare';
      connect: Awaited<ReturnType<typeof connectPhase>>;
      publish: Awaited<ReturnType<typeof throughputPhase>>;
    };
    const loadBefore = os.loadavg();
    // Warm both brokers (JIT, TLS session machinery) before anything is measured.
    const warmFleet = { ...fleet, devices: fleet.devices.slice(0, Math.min(50, fleet.devices.length)) };
    for (const mode of ['policy', 'bare'] as const) await connectPhase(hosts[mode], ports[mode], warmFleet);

    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate the order so neither mode always runs on a warmer machine.
      const order = r % 2 === 0 ? (['policy', 'bare'] as const) : (['bare', 'policy'] as const);
      for (const mode of order) {
        const connect = await connectPhase(hosts[mode], ports[mode], fleet);
        const publish = await throughputPhase(hosts[mode], ports[mode], fleet);
        log(
          `round ${r + 1} ${mode.padEnd(6)} connects/s ${connect.connectsPerSecond.toFixed(0).padStart(6)}  ` +
            `QoS1 msg/s ${publish.messagesPerSecond.toFixed(0).padStart(7)}  broker µs/msg ${publish.brokerCpuMicrosPerMessage.toFixed(1)}`,
        );
        rounds.push({ mode, connect, publish });
      }
    }

    const best = (mode: 'policy' | 'bare') => {
      const mine = rounds.filter((r) => r.mode === mode);
      const pick = <T>(values: T[], key: (v: T) => number, dir: 1 | -1) =>
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
    const policy = best('policy');
    const bare = best('bare');
    const ratio = {
      connectRate: Number((policy.connectsPerSecond / bare.connectsPerSecond).toFixed(3)),
      qos1Throughput: Number((policy.qos1MessagesPerSecond / bare.qos1MessagesPerSecond).toFixed(3)),
      brokerCpuPerConnect: Number((policy.brokerCpuMicrosPerConnect / bare.brokerCpuMicrosPerConnect).toFixed(3)),
      brokerCpuPerMessage: Number((policy.brokerCpuMicrosPerMessage / bare.brokerCpuMicrosPerMessage).toFixed(3)),
    };
    // Each round ran both modes back to back: the median of the per-round ratios is steadier
    // than a ratio of bests when other work shares the machine.
    const paired = (key: (r: Round) => number) =>
      Number(
        median(
          Array.from({ length: ROUNDS }, (_, r) => {
            const [a, b] = rounds.filter((_, i) => Math.floor(i / 2) === r);
            const pol = a?.mode === 'policy' ? a : b;
            const bar = a?.mode === 'bare' ? a : b;
            return pol && bar ? key(pol) / key(bar) : Number.NaN;
          }),
        ).toFixed(3),
      );
    const pairedRatio = {
      connectRate: paired((r) => r.connect.connectsPerSecond),
      qos1Throughput: paired((r) => r.publish.messagesPerSecond),
      brokerCpuPerConnect: paired((r) => r.connect.brokerCpuMicrosPerConnect),
      brokerCpuPerMessage: paired((r) => r.publish.brokerCpuMicrosPerMessage),
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
        client: 'aws-iot-device-sdk-v2 (aws-crt), one process; broker in a child process',
      },
      machine: {
        cpus: os.cpus().length,
        node: process.version,
        loadAverageBefore: loadBefore.map((l) => Number(l.toFixed(2))),
        loadAverageAfter: os.loadavg().map((l) => Number(l.toFixed(2))),
      },
      policyChecked: policy,
      bare,
      ratio,
      medianPairedRatio: pairedRatio,
      policyEngine: engine,
      rounds,
    };
    const table = [
      ['', 'policy-checked', 'bare', 'ratio'],
      ['mTLS connects/s', policy.connectsPerSecond, bare.connectsPerSecond, ratio.connectRate],
      [
        'broker CPU µs/connect',
        policy.brokerCpuMicrosPerConnect,
        bare.brokerCpuMicrosPerConnect,
        ratio.brokerCpuPerConnect,
      ],
      ['QoS 1 msg/s (1→1)', policy.qos1MessagesPerSecond, bare.qos1MessagesPerSecond, ratio.qos1Throughput],
      [
        'broker CPU µs/msg',
        policy.brokerCpuMicrosPerMessage,
        bare.brokerCpuMicrosPerMessage,
        ratio.brokerCpuPerMessage,
      ],
      ['median of paired rounds', '', '', ''],
      ['  connects/s', '', '', pairedRatio.connectRate],
      ['  broker CPU µs/connect', '', '', pairedRatio.brokerCpuPerConnect],
      ['  QoS 1 msg/s', '', '', pairedRatio.qos1Throughput],
      ['  broker CPU µs/msg', '', '', pairedRatio.brokerCpuPerMessage],
      ['policy engine alone', '', '', ''],
      ['  compile+Connect µs', engine.compileAndConnectCheckMicros, '', ''],
      ['  Publish decision µs', engine.uncachedPublishDecisionMicros, '', ''],
    ];
    process.stdout.write(
      `\n${table.map((row) => row.map((c, i) => String(c)[i === 0 ? 'padEnd' : 'padStart'](i === 0 ? 24 : 15)).join('')).join('\n')}\n`,
    );
    const resultsDir = path.join(here, 'results');
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(path.join(resultsDir, 'broker.json'), `${JSON.stringify(result, null, 2)}\n`);
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
