import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  IoTClient,
} from '@aws-sdk/client-iot';
import { GetThingShadowCommand, IoTDataPlaneClient, UpdateThingShadowCommand } from '@aws-sdk/client-iot-data-plane';
import { createLocalIotCore, LOCAL_CORE_DEFAULTS, type LocalCoreInfo, type LocalIotCore } from '@pifleet/cloud';
import { decodeTelemetryBatch, recommendedDevicePolicy, type TelemetryBatch } from '@pifleet/protocol';

/**
 * End-to-end harness: the composed local IoT Core in-process (ephemeral ports, temp data dir),
 * provisioning through the real `@aws-sdk/client-iot`, shadows through the real
 * `@aws-sdk/client-iot-data-plane`, telemetry observed on the broker's bus.
 */

export interface RunningCore {
  readonly core: LocalIotCore;
  readonly info: LocalCoreInfo;
  readonly iot: IoTClient;
  readonly data: IoTDataPlaneClient;
  readonly telemetry: TelemetryLog;
  stop(): Promise<void>;
}

export async function startCore(
  dataDir: string,
  ports: { mqtt?: number; http?: number } = {},
  telemetry: TelemetryLog = new TelemetryLog(),
): Promise<RunningCore> {
  const core = createLocalIotCore({
    config: { ...LOCAL_CORE_DEFAULTS, dataDir, mqttPort: ports.mqtt ?? 0, httpPort: ports.http ?? 0 },
  });
  const info = await core.start();
  const credentials = { ...core.services.credentials };
  const common = { region: info.region, endpoint: info.http, credentials, maxAttempts: 2 };
  const iot = new IoTClient(common);
  const data = new IoTDataPlaneClient(common);
  const unsubscribe = await core.services.broker.bus.subscribe('pifleet/+/telemetry', (m) => {
    telemetry.add(m.payload);
  });
  return {
    core,
    info,
    iot,
    data,
    telemetry,
    async stop() {
      await unsubscribe().catch(() => undefined);
      iot.destroy();
      data.destroy();
      await core.stop();
    },
  };
}

export interface DeviceFiles {
  readonly thingName: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/** CreateThing, CreateKeysAndCertificate, the recommended policy, attachments; writes the files. */
export async function provisionDevice(core: RunningCore, thingName: string, dir: string): Promise<DeviceFiles> {
  const { iot, info } = core;
  await iot.send(new CreateThingCommand({ thingName }));
  const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  const policyName = `pifleet-device-${thingName}`;
  await iot.send(
    new CreatePolicyCommand({
      policyName,
      policyDocument: JSON.stringify(recommendedDevicePolicy(info.region, info.accountId)),
    }),
  );
  await iot.send(new AttachPolicyCommand({ policyName, target: cert.certificateArn }));
  await iot.send(new AttachThingPrincipalCommand({ thingName, principal: cert.certificateArn }));
  const bundle = path.join(dir, thingName);
  mkdirSync(bundle, { recursive: true, mode: 0o700 });
  const files = {
    thingName,
    certFile: path.join(bundle, 'certificate.pem.crt'),
    keyFile: path.join(bundle, 'private.pem.key'),
    caFile: path.join(bundle, 'ca.pem'),
  };
  writeFileSync(files.certFile, cert.certificatePem ?? '');
  writeFileSync(files.keyFile, cert.keyPair?.PrivateKey ?? '', { mode: 0o600 });
  chmodSync(files.keyFile, 0o600);
  writeFileSync(files.caFile, readFileSync(info.caFile));
  return files;
}

export async function desire(core: RunningCore, thingName: string, desired: Record<string, unknown>) {
  const out = await core.data.send(
    new UpdateThingShadowCommand({
      thingName,
      payload: new TextEncoder().encode(JSON.stringify({ state: { desired } })),
    }),
  );
  return JSON.parse(new TextDecoder().decode(out.payload)) as { version: number };
}

export interface ShadowDoc {
  version: number;
  state: { desired?: Record<string, unknown>; reported?: Record<string, unknown>; delta?: Record<string, unknown> };
}

/** A section of `state.reported` (an empty object when absent). */
export function part<T>(doc: ShadowDoc, key: string): T {
  return (doc.state.reported?.[key] ?? {}) as T;
}

export async function getShadow(core: RunningCore, thingName: string): Promise<ShadowDoc | undefined> {
  try {
    const out = await core.data.send(new GetThingShadowCommand({ thingName }));
    return JSON.parse(new TextDecoder().decode(out.payload)) as ShadowDoc;
  } catch (err) {
    if ((err as { name?: string }).name === 'ResourceNotFoundException') return undefined;
    throw err;
  }
}

/** Polls the shadow through the data plane until `match` holds (bounded). */
export async function waitForShadow(
  core: RunningCore,
  thingName: string,
  match: (doc: ShadowDoc) => boolean,
  ms = 15_000,
): Promise<ShadowDoc> {
  const deadline = Date.now() + ms;
  let last: ShadowDoc | undefined;
  for (;;) {
    last = await getShadow(core, thingName);
    if (last && match(last)) return last;
    if (Date.now() > deadline) {
      throw new Error(`shadow of ${thingName} did not converge in ${ms} ms; last: ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every telemetry batch the broker delivered, decoded, with waiting on arrivals. */
export class TelemetryLog {
  readonly batches: TelemetryBatch[] = [];
  readonly invalid: string[] = [];
  readonly #waiters = new Set<() => void>();

  add(payload: Uint8Array): void {
    const r = decodeTelemetryBatch(payload);
    if (r.ok) this.batches.push(r.value);
    else this.invalid.push(new TextDecoder().decode(payload));
    for (const w of [...this.#waiters]) w();
  }

  of(thingName: string): TelemetryBatch[] {
    return this.batches.filter((b) => b.thingName === thingName);
  }

  /** Batches of a thing with duplicates (same bootId and seq) removed. */
  unique(thingName: string): TelemetryBatch[] {
    const seen = new Map<string, TelemetryBatch>();
    for (const b of this.of(thingName)) {
      const key = `${b.bootId}/${b.seq}`;
      if (!seen.has(key)) seen.set(key, b);
    }
    return [...seen.values()];
  }

  readings(thingName: string): number {
    return this.unique(thingName).reduce((n, b) => n + b.readings.length, 0);
  }

  /** Resolves once `match` holds, re-checked at every arrival; rejects after `ms`. */
  waitFor(match: () => boolean, ms: number, what: string): Promise<void> {
    if (match()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!match()) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      this.#waiters.add(check);
    });
  }
}

/** Readings the rules engine's ingest handler stored for a thing (SQLite, deduplicated by bootId and seq). */
export function storedReadings(core: RunningCore, thingName: string): Promise<number> {
  return core.core.services.telemetry.countReadings(thingName);
}

/** Polls the telemetry store until it holds `n` readings of a thing (bounded). */
export async function waitForStored(core: RunningCore, thingName: string, n: number, ms = 10_000): Promise<number> {
  const deadline = Date.now() + ms;
  for (;;) {
    const count = await storedReadings(core, thingName);
    if (count >= n) return count;
    if (Date.now() > deadline) throw new Error(`store holds ${count} of ${n} readings of ${thingName} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits for `cond` with a bounded number of short polls (for state without an event to wait on). */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Settles `work` whose progress needs virtual time (sensor init and conversion delays, the bounded
 * drain on stop) by advancing `clock` in small steps until it does.
 */
export async function drive<T>(
  clock: { advance(ms: number): Promise<void> },
  work: Promise<T>,
  stepMs = 5,
): Promise<T> {
  let settled = false;
  const done = work.finally(() => {
    settled = true;
  });
  while (!settled) await clock.advance(stepMs);
  return done;
}

/**
 * A TCP relay between devices and the broker that can be cut: `down()` drops every relayed
 * connection and refuses new ones (a device losing its network), `up()` lets them through again.
 */
export interface NetworkCut {
  readonly port: number;
  down(): void;
  up(): void;
  close(): Promise<void>;
}

export async function startRelay(targetPort: number): Promise<NetworkCut> {
  let open = true;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    down() {
      open = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    up() {
      open = true;
    },
    close() {
      open = false;
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
