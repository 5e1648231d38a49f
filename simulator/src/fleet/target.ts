import path from 'node:path';
import {
  type BusMessage,
  createBroker,
  createLocalIotCore,
  LOCAL_CORE_DEFAULTS,
  type LocalCoreInfo,
  type LocalCoreServices,
  type LocalIotCore,
  loadOrCreateCa,
  localCorePaths,
  openSqliteRegistry,
} from '@pifleet/cloud';
import { appTopicFilters, telemetryReadingCount } from '@pifleet/protocol';
import { SimulatorError } from '../errors.js';

/** The local IoT Core the fleet runs against, started in this process, restartable on the same ports. */
export interface LocalTarget {
  readonly dataDir: string;
  readonly info: LocalCoreInfo;
  readonly services: LocalCoreServices;
  /** Stops the core and starts it again on the same data dir and ports (the restart fault). */
  restart(): Promise<{ downMs: number }>;
  /** Drops the MQTT connections of these client ids at the broker (sockets destroyed, no DISCONNECT). */
  dropConnections(clientIds: readonly string[]): number;
  /**
   * The core's quota breaches since this target started, by quota (zeros included): the counters of
   * the running core plus those of every core a restart replaced.
   */
  throttles(): { readonly mode: string; readonly byQuota: Readonly<Record<string, number>> };
  stop(): Promise<void>;
}

export async function startLocalTarget(opts: {
  dataDir: string;
  mqttPort?: number;
  httpPort?: number;
  /** The quotas to enforce, as `pifleet-local-core --limits` / `--limits-file` (default IoT Core's). */
  limits?: 'aws' | 'off';
  limitsFile?: string;
}): Promise<LocalTarget> {
  const base = {
    ...LOCAL_CORE_DEFAULTS,
    dataDir: opts.dataDir,
    mqttPort: opts.mqttPort ?? 0,
    httpPort: opts.httpPort ?? 0,
    logLevel: 'error',
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(opts.limitsFile ? { limitsFile: opts.limitsFile } : {}),
  };
  /** Breaches counted by cores a restart replaced (a new core starts its counters at zero). */
  const carried: Record<string, number> = {};
  const carry = (snapshot: Readonly<Record<string, number>>) => {
    for (const [q, n] of Object.entries(snapshot)) carried[q] = (carried[q] ?? 0) + n;
  };
  let core: LocalIotCore = createLocalIotCore({ config: base });
  let info = await core.start();
  const ports = { mqttPort: info.mqtt.port, httpPort: Number(new URL(info.http).port) };
  let running = true;
  return {
    dataDir: opts.dataDir,
    get info() {
      return info;
    },
    get services() {
      return core.services;
    },
    async restart() {
      const t0 = Date.now();
      carry(core.services.throttles.snapshot());
      await core.stop();
      core = createLocalIotCore({ config: { ...base, ...ports } });
      // The listening ports were just released; retry briefly if the OS has not let go yet.
      for (let attempt = 0; ; attempt++) {
        try {
          info = await core.start();
          break;
        } catch (err) {
          if (attempt >= 20 || (err as { code?: string }).code !== 'EADDRINUSE') throw err;
          await new Promise((r) => setTimeout(r, 250));
          core = createLocalIotCore({ config: { ...base, ...ports } });
        }
      }
      return { downMs: Date.now() - t0 };
    },
    throttles() {
      const byQuota: Record<string, number> = { ...carried };
      for (const [q, n] of Object.entries(core.services.throttles.snapshot())) byQuota[q] = (byQuota[q] ?? 0) + n;
      return { mode: core.services.limits.mode, byQuota };
    },
    dropConnections(clientIds) {
      const { broker } = core.services;
      return clientIds.filter((id) => broker.disconnectClient(id)).length;
    },
    async stop() {
      if (!running) return;
      running = false;
      await core.stop();
    },
  };
}

/** The bare-broker baseline: the same mutual TLS, no policy checks, rules, shadows or storage. */
export interface BareBrokerTarget {
  readonly host: string;
  readonly port: number;
  readonly caFile: string;
  /** Messages on every thing's telemetry topic seen by one in-process subscriber. */
  readonly received: {
    messages: number;
    readings: number;
    readonly sealedToBrokerMs: number[];
    /** Each delivered batch's `sealedAt`, in the order of `sealedToBrokerMs`. */
    readonly sealedAtMs: number[];
  };
  readonly perSecond: Map<number, number>;
  stop(): Promise<void>;
}

/**
 * Starts a bare broker on the local core's CA and registry files (which must exist: provision
 * first); the one in-process subscriber counts telemetry and its sealed → delivered latency.
 */
export async function startBareBroker(opts: {
  dataDir: string;
  region: string;
  accountId: string;
}): Promise<BareBrokerTarget> {
  const paths = localCorePaths(opts.dataDir);
  const account = { region: opts.region, accountId: opts.accountId };
  const ca = await loadOrCreateCa({ dir: paths.caDir, now: Date.now });
  const registry = openSqliteRegistry({ file: paths.registryFile, account, now: Date.now });
  const server = await ca.issueServerCertificate(['127.0.0.1']);
  const broker = createBroker({
    identities: registry,
    tls: { caCertPem: ca.caCertPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem },
    host: '127.0.0.1',
    port: 0,
    account,
    policyChecks: false,
  });
  let bound: { host: string; port: number };
  try {
    bound = await broker.start();
  } catch (err) {
    registry.close();
    throw new SimulatorError('FLEET_BASELINE', 'the bare broker did not start', { cause: err });
  }
  const received = { messages: 0, readings: 0, sealedToBrokerMs: [] as number[], sealedAtMs: [] as number[] };
  const perSecond = new Map<number, number>();
  const unsubscribe = await broker.bus.subscribe(appTopicFilters.telemetry, (m: BusMessage) => {
    const now = Date.now();
    received.messages += 1;
    try {
      const batch = JSON.parse(m.payload.toString('utf8')) as { sealedAt?: number };
      const n = telemetryReadingCount(batch);
      received.readings += n;
      const s = Math.floor(now / 1000);
      perSecond.set(s, (perSecond.get(s) ?? 0) + n);
      if (typeof batch.sealedAt === 'number') {
        received.sealedToBrokerMs.push(now - batch.sealedAt);
        received.sealedAtMs.push(batch.sealedAt);
      }
    } catch {
      // not a batch: counted as a message only
    }
  });
  return {
    host: bound.host,
    port: bound.port,
    caFile: ca.caFile ?? path.join(paths.caDir, 'ca.pem'),
    received,
    perSecond,
    async stop() {
      await unsubscribe();
      await broker.stop();
      registry.close();
    },
  };
}
