/**
 * Device Shadow service of the local IoT Core: update round-trip latency (request PUBLISH →
 * `/update/accepted` received, p50/p99) and updates/s for 1, 100 and 1,000 devices, beside a plain
 * PUBLISH → receive round trip of the same devices on the same broker in the same run. The ratio
 * is what the shadow service adds (bus delivery, validation, SQLite write, three response
 * publishes) to a message's trip through the policy-checked broker. Not a test.
 *
 *   npx tsx --conditions=@pifleet/source bench/shadow.bench.ts [--devices 1,100,1000] [--seconds 5]
 *
 * The composed local IoT Core (CA, registry, TLS broker with IoT policy checks, shadow service
 * with its SQLite store in a temp data dir) runs in a child process (this file with `--host`);
 * the devices are real aws-iot-device-sdk-v2 (aws-crt) MQTT 3.1.1 connections over mutual TLS in
 * this process, connected in a ramp (at most 50 handshakes in flight). Every device runs a closed
 * loop with one request outstanding for a fixed time, so N devices keep N requests in flight.
 * 127.0.0.1 only; a watchdog ends the run after 5 minutes. Writes bench/results/shadow.json.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { iot, mqtt } from 'aws-iot-device-sdk-v2';
import {
  type IotPolicyDocument,
  recommendedDevicePolicy,
  shadowTopics,
  THING_NAME_VARIABLE,
} from '../protocol/src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const self = fileURLToPath(import.meta.url);
const argValue = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const DEVICE_COUNTS = (argValue('devices') ?? '1,100,1000')
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
const SECONDS = Math.max(1, Number(argValue('seconds') ?? 5));
const WARMUP_SECONDS = 1;
const CONNECT_WINDOW = 50;
const THINGS_PER_CERT = 25;
const PAYLOAD_BYTES = 200;
const WATCHDOG_MS = 300_000;
/** SQLite `synchronous` of the shadow store; the local core's default is used unless given. */
const SYNC = argValue('sync')?.toUpperCase();

const log = (line: string) => process.stderr.write(`${line}\n`);

// ---- host (child process): the composed local IoT Core ------------------------------------

type HostRequest = { type: 'start' } | { type: 'provision'; count: number } | { type: 'cpu' } | { type: 'stop' };
interface Credential {
  readonly certPem: string;
  readonly keyPem: string;
}
type HostReply =
  | { type: 'started'; port: number; caPem: string; region: string; accountId: string }
  | { type: 'provisioned'; things: string[]; credentials: Credential[]; thingsPerCredential: number }
  | { type: 'cpu'; micros: number };

/** The plain round trip's topic: one no rule of the local core reads (telemetry would run the ingest rule). */
const echoTopic = (thing: string) => `bench/${thing}/echo`;

/** The recommended device policy, plus publishing, subscribing to and receiving one's own echo topic. */
function benchPolicy(region: string, accountId: string): IotPolicyDocument {
  const recommended = recommendedDevicePolicy(region, accountId);
  const own = echoTopic(THING_NAME_VARIABLE);
  return {
    ...recommended,
    Statement: [
      ...recommended.Statement,
      {
        Sid: 'EchoOwnTopic',
        Effect: 'Allow',
        Action: ['iot:Publish', 'iot:Subscribe', 'iot:Receive'],
        Resource: [
          `arn:aws:iot:${region}:${accountId}:topicfilter/${own}`,
          `arn:aws:iot:${region}:${accountId}:topic/${own}`,
        ],
      },
    ],
  };
}

async function hostMain(): Promise<void> {
  const { createLocalIotCore } = await import('../cloud/src/app/local-core.js');
  const { LOCAL_CORE_DEFAULTS } = await import('../cloud/src/config/local-core.js');
  const { openSqliteShadowStore } = await import('../cloud/src/shadow/sqlite-store.js');
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-shadow-bench-'));
  const synchronous = SYNC === 'FULL' || SYNC === 'NORMAL' ? SYNC : undefined;
  const core = createLocalIotCore({
    config: { ...LOCAL_CORE_DEFAULTS, dataDir, mqttPort: 0, httpPort: 0 },
    ...(synchronous
      ? { shadowStore: () => openSqliteShadowStore({ path: path.join(dataDir, 'shadows.sqlite'), synchronous }) }
      : {}),
  });
  let provisioned = 0;
  const send = (reply: HostReply) => process.send?.(reply);
  process.on('message', (raw) => {
    const msg = raw as HostRequest;
    void (async () => {
      switch (msg.type) {
        case 'start': {
          const info = await core.start();
          const { registry } = core.services;
          registry.createPolicy('bench-device', JSON.stringify(benchPolicy(info.region, info.accountId)));
          send({
            type: 'started',
            port: info.mqtt.port,
            caPem: core.services.ca.caCertPem,
            region: info.region,
            accountId: info.accountId,
          });
          return;
        }
        case 'provision': {
          // What CreateThing, CreateKeysAndCertificate, AttachPolicy and AttachThingPrincipal do,
          // in-process: a fleet of 1,000 over HTTP would only measure RSA key generation.
          const { registry, ca } = core.services;
          const things: string[] = [];
          const credentials: Credential[] = [];
          let cert: { arn: string } | undefined;
          for (let i = 0; i < msg.count; i++) {
            if (i % THINGS_PER_CERT === 0) {
              const issued = await ca.createKeysAndCertificate();
              const record = registry.registerCertificate({ certificatePem: issued.certificatePem, status: 'ACTIVE' });
              registry.attachPolicy('bench-device', record.certificateArn);
              credentials.push({ certPem: issued.certificatePem, keyPem: issued.privateKeyPem });
              cert = { arn: record.certificateArn };
            }
            const thingName = `bench-pi-${provisioned++}`;
            registry.createThing({ thingName });
            registry.attachThingPrincipal(thingName, (cert as { arn: string }).arn);
            things.push(thingName);
          }
          send({ type: 'provisioned', things, credentials, thingsPerCredential: THINGS_PER_CERT });
          return;
        }
        case 'cpu': {
          const u = process.cpuUsage();
          send({ type: 'cpu', micros: u.user + u.system });
          return;
        }
        case 'stop':
          await core.stop();
          rmSync(dataDir, { recursive: true, force: true });
          process.exit(0);
      }
    })().catch((err: unknown) => {
      process.stderr.write(`shadow bench host: ${String((err as Error)?.stack ?? err)}\n`);
      process.exit(1);
    });
  });
}

class Host {
  readonly #child: ChildProcess;
  #pending: ((reply: HostReply) => void)[] = [];

  constructor() {
    this.#child = fork(self, ['--host', ...(SYNC ? ['--sync', SYNC] : [])], {
      execArgv: ['--import', 'tsx', '--conditions=@pifleet/source'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.#child.on('message', (reply) => this.#pending.shift()?.(reply as HostReply));
  }

  request(req: HostRequest, timeoutMs = 120_000): Promise<HostReply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`host did not answer ${req.type}`)), timeoutMs);
      this.#pending.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.#child.send(req);
    });
  }

  async cpuMicros(): Promise<number> {
    const r = await this.request({ type: 'cpu' });
    return r.type === 'cpu' ? r.micros : Number.NaN;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      if (this.#child.exitCode !== null) return resolve();
      const timer = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
      this.#child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.#child.send({ type: 'stop' } satisfies HostRequest);
    });
  }
}

// ---- devices ------------------------------------------------------------------------------

const client = new mqtt.MqttClient();

interface Device {
  readonly thingName: string;
  readonly connection: mqtt.MqttClientConnection;
  /** Resolves the outstanding request's waiter when its answer arrives. */
  onAnswer: ((token: string) => void) | undefined;
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

const dec = new TextDecoder();

async function connectDevices(
  port: number,
  caPem: string,
  things: readonly string[],
  credentials: readonly Credential[],
  perCredential: number,
): Promise<Device[]> {
  const devices: Device[] = things.map((thingName, i) => {
    const cred = credentials[Math.floor(i / perCredential)] as Credential;
    const config = iot.AwsIotMqttConnectionConfigBuilder.new_mtls_builder(cred.certPem, cred.keyPem)
      .with_certificate_authority(caPem)
      .with_endpoint('127.0.0.1')
      .with_port(port)
      .with_client_id(thingName)
      .with_clean_session(true)
      .with_keep_alive_seconds(120)
      .with_protocol_operation_timeout_ms(30_000)
      .build();
    return { thingName, connection: client.new_connection(config), onAnswer: undefined };
  });
  await pool(devices, CONNECT_WINDOW, async (d) => {
    await d.connection.connect();
    const deliver = (_topic: string, payload: ArrayBuffer) => {
      // Both answers carry the request's token: the shadow echoes clientToken, the echo is the payload.
      const text = dec.decode(payload);
      const m = /"clientToken":"([^"]+)"/.exec(text);
      if (m) d.onAnswer?.(m[1] as string);
    };
    const subs = await Promise.all([
      d.connection.subscribe(shadowTopics(d.thingName).updateAccepted, mqtt.QoS.AtLeastOnce, deliver),
      // QoS 0, like the shadow service's answers: both round trips are PUBLISH QoS 1 + PUBACK out,
      // a QoS 0 PUBLISH back (a QoS 1 delivery would add the device's PUBACK to one path only).
      d.connection.subscribe(echoTopic(d.thingName), mqtt.QoS.AtMostOnce, deliver),
    ]);
    for (const s of subs) {
      if ((s.qos as number) === 0x80) throw new Error(`${d.thingName}: subscription to ${s.topic} refused`);
    }
  });
  return devices;
}

type Kind = 'plain' | 'shadow';

function requestOf(kind: Kind, device: Device, token: string, seq: number): { topic: string; payload: string } {
  const body = JSON.stringify(
    kind === 'shadow'
      ? { state: { reported: { temperature: 21.5, humidity: 40.2, seq } }, clientToken: token }
      : { temperature: 21.5, humidity: 40.2, seq, clientToken: token },
  );
  // Same size on both paths.
  const padded = `${body.slice(0, -1)},"pad":"${'x'.repeat(Math.max(0, PAYLOAD_BYTES - body.length - 9))}"}`;
  return {
    topic: kind === 'shadow' ? shadowTopics(device.thingName).update : echoTopic(device.thingName),
    payload: padded,
  };
}

interface PhaseResult {
  readonly kind: Kind;
  readonly devices: number;
  readonly seconds: number;
  readonly completed: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly hostCpuMicrosPerRequest: number;
  readonly timeouts: number;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number);

/** Every device runs request → answer → next request until the deadline; latencies after the warm-up count. */
async function phase(host: Host, devices: readonly Device[], kind: Kind): Promise<PhaseResult> {
  const latencies: number[] = [];
  let timeouts = 0;
  let measuring = false;
  let seq = 0;
  const start = performance.now();
  const warmEnd = start + WARMUP_SECONDS * 1000;
  const end = warmEnd + SECONDS * 1000;
  let cpu0 = 0;
  let completedInWindow = 0;
  const warmup = new Promise<void>((resolve) => {
    setTimeout(() => {
      void host.cpuMicros().then((c) => {
        cpu0 = c;
        measuring = true;
        resolve();
      });
    }, WARMUP_SECONDS * 1000);
  });
  const loop = async (device: Device, index: number) => {
    let n = 0;
    while (performance.now() < end) {
      const token = `${kind[0]}${index}-${n++}`;
      const { topic, payload } = requestOf(kind, device, token, seq++);
      const t0 = performance.now();
      const answered = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 10_000);
        device.onAnswer = (got) => {
          if (got !== token) return;
          clearTimeout(timer);
          resolve(true);
        };
        device.connection.publish(topic, payload, mqtt.QoS.AtLeastOnce).catch(() => resolve(false));
      });
      device.onAnswer = undefined;
      const t1 = performance.now();
      if (!answered) {
        timeouts++;
        continue;
      }
      if (measuring && t1 <= end) {
        latencies.push(t1 - t0);
        completedInWindow++;
      }
    }
  };
  await Promise.all([warmup, ...devices.map((d, i) => loop(d, i))]);
  const cpu = (await host.cpuMicros()) - cpu0;
  const seconds = (end - warmEnd) / 1000;
  latencies.sort((a, b) => a - b);
  const round = (x: number, digits = 2) => Number(x.toFixed(digits));
  return {
    kind,
    devices: devices.length,
    seconds,
    completed: completedInWindow,
    perSecond: Math.round(completedInWindow / seconds),
    p50Ms: round(percentile(latencies, 50)),
    p99Ms: round(percentile(latencies, 99)),
    maxMs: round(latencies.at(-1) ?? Number.NaN),
    hostCpuMicrosPerRequest: round(cpu / Math.max(1, completedInWindow), 1),
    timeouts,
  };
}

// ---- main ---------------------------------------------------------------------------------

async function main(): Promise<void> {
  const watchdog = setTimeout(() => {
    log('shadow bench: watchdog fired after 5 minutes');
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();

  const host = new Host();
  const all: Device[] = [];
  try {
    const started = await host.request({ type: 'start' });
    if (started.type !== 'started') throw new Error('host did not start');
    const loadBefore = os.loadavg();
    const results: {
      devices: number;
      plain: PhaseResult;
      shadow: PhaseResult;
      /** Time to connect and subscribe the devices added for this row (ramped). */
      connectSeconds: number;
    }[] = [];
    for (const count of DEVICE_COUNTS) {
      const need = count - all.length;
      let connectSeconds = 0;
      if (need > 0) {
        log(`shadow bench: provisioning and connecting ${need} more devices (${count} in all)`);
        const p = await host.request({ type: 'provision', count: need });
        if (p.type !== 'provisioned') throw new Error('host did not provision');
        const t0 = performance.now();
        all.push(
          ...(await connectDevices(started.port, started.caPem, p.things, p.credentials, p.thingsPerCredential)),
        );
        connectSeconds = Number(((performance.now() - t0) / 1000).toFixed(2));
        log(`  connected and subscribed ${need} devices in ${connectSeconds} s`);
      }
      const devices = all.slice(0, count);
      // Plain first, then shadow, then plain again: the reported plain figure is the better of the two,
      // so a shadow phase never looks cheap because the machine was busier during the plain one.
      const plainA = await phase(host, devices, 'plain');
      const shadow = await phase(host, devices, 'shadow');
      const plainB = await phase(host, devices, 'plain');
      const plain = plainA.p50Ms <= plainB.p50Ms ? plainA : plainB;
      log(
        `${String(count).padStart(5)} devices  plain p50 ${plain.p50Ms} ms p99 ${plain.p99Ms} ms ${plain.perSecond}/s` +
          `  |  shadow p50 ${shadow.p50Ms} ms p99 ${shadow.p99Ms} ms ${shadow.perSecond}/s` +
          (shadow.timeouts + plain.timeouts > 0 ? `  (timeouts: ${shadow.timeouts + plain.timeouts})` : ''),
      );
      results.push({ devices: count, plain, shadow, connectSeconds });
    }

    const rows = results.map((r) => ({
      devices: r.devices,
      plainP50Ms: r.plain.p50Ms,
      plainP99Ms: r.plain.p99Ms,
      plainPerSecond: r.plain.perSecond,
      shadowP50Ms: r.shadow.p50Ms,
      shadowP99Ms: r.shadow.p99Ms,
      shadowUpdatesPerSecond: r.shadow.perSecond,
      ratioP50: Number((r.shadow.p50Ms / r.plain.p50Ms).toFixed(2)),
      ratioP99: Number((r.shadow.p99Ms / r.plain.p99Ms).toFixed(2)),
      ratioThroughput: Number((r.shadow.perSecond / r.plain.perSecond).toFixed(3)),
      hostCpuMicrosPerPlain: r.plain.hostCpuMicrosPerRequest,
      hostCpuMicrosPerShadowUpdate: r.shadow.hostCpuMicrosPerRequest,
      /** The steadier overhead figure: the core process's own CPU per round trip, shadow over plain. */
      ratioHostCpu: Number((r.shadow.hostCpuMicrosPerRequest / r.plain.hostCpuMicrosPerRequest).toFixed(2)),
    }));
    const header = [
      'devices',
      'plain p50 ms',
      'plain p99 ms',
      'plain /s',
      'shadow p50 ms',
      'shadow p99 ms',
      'updates/s',
      'p50 ×',
      'p99 ×',
      'thrpt ×',
      'core µs plain',
      'core µs shadow',
      'cpu ×',
    ];
    const table = [
      header,
      ...rows.map((r) => [
        r.devices,
        r.plainP50Ms,
        r.plainP99Ms,
        r.plainPerSecond,
        r.shadowP50Ms,
        r.shadowP99Ms,
        r.shadowUpdatesPerSecond,
        r.ratioP50,
        r.ratioP99,
        r.ratioThroughput,
        r.hostCpuMicrosPerPlain,
        r.hostCpuMicrosPerShadowUpdate,
        r.ratioHostCpu,
      ]),
    ].map((row) => row.map(String));
    const widths = header.map((_, c) => Math.max(...table.map((row) => (row[c] ?? '').length)));
    process.stdout.write(
      `${table.map((row) => row.map((cell, c) => cell.padStart(widths[c] ?? 0)).join('  ')).join('\n')}\n`,
    );

    const result = {
      config: {
        deviceCounts: DEVICE_COUNTS,
        secondsPerPhase: SECONDS,
        warmupSeconds: WARMUP_SECONDS,
        payloadBytes: PAYLOAD_BYTES,
        requestQos: 1,
        loop: 'closed: each device keeps one request outstanding',
        plain:
          'PUBLISH QoS 1 to bench/{thing}/echo (no rule reads it), received back on the same connection (subscribed QoS 0)',
        shadow: 'PUBLISH QoS 1 to $aws/things/{thing}/shadow/update → /update/accepted with the same clientToken',
        store: `SQLite, WAL, synchronous=${SYNC ?? 'default of the local core'}`,
        keys: 'RSA-2048 device certificates from the local CA',
        client: 'aws-iot-device-sdk-v2 (aws-crt) MQTT 3.1.1, one process; local IoT Core in a child process',
      },
      machine: {
        cpus: os.cpus().length,
        node: process.version,
        loadAverageBefore: loadBefore.map((l) => Number(l.toFixed(2))),
        loadAverageAfter: os.loadavg().map((l) => Number(l.toFixed(2))),
      },
      rows,
      phases: results,
    };
    mkdirSync(path.join(here, 'results'), { recursive: true });
    writeFileSync(path.join(here, 'results', 'shadow.json'), `${JSON.stringify(result, null, 2)}\n`);
    log('wrote bench/results/shadow.json');
  } finally {
    await Promise.all(all.map((d) => d.connection.disconnect().catch(() => undefined)));
    await host.stop();
    clearTimeout(watchdog);
  }
}

if (process.argv.includes('--host')) {
  await hostMain();
} else {
  await main();
}
