import { readFile, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import {
  describeIssues,
  formatLocalEndpoint,
  LOCAL_CREDENTIALS_FILE,
  LOCAL_ENDPOINT_FILE,
  type LocalEndpoint,
  parseLocalEndpoint,
} from '@pifleet/protocol';
import { lockDataDir, prepareDataDir } from '../adapters/data-dir.js';
import { createPrometheusMetrics } from '../adapters/prometheus-metrics.js';
import { SQLITE_TELEMETRY_FILENAME } from '../adapters/sqlite-telemetry-store.js';
import { type Artifacts, createArtifacts } from '../artifacts/index.js';
import { type Broker, createBroker } from '../broker/index.js';
import { type LocalCa, loadOrCreateCa } from '../ca/local-ca.js';
import { ConfigError, type LocalCoreConfig } from '../config/local-core.js';
import { thisMachineHosts } from '../console/auth.js';
import { createWebConsole, type WebConsole } from '../console/console.js';
import { CloudError } from '../errors.js';
import { loadHookModules } from '../fleet-provisioning/hook-modules.js';
import type { PreProvisioningHookFunction } from '../fleet-provisioning/register-thing.js';
import { HandlerConfigError } from '../handlers/lambda-env.js';
import { createProvisioningHook, PROVISIONING_HOOK_FUNCTION_NAME } from '../handlers/provisioning-hook.js';
import { type LocalCredentials, loadOrCreateCredentials, singleCredentialStore } from '../http/credentials.js';
import { iotControlPlaneRoutes } from '../http/iot-control-plane.js';
import { metricsRoutes } from '../http/metrics-routes.js';
import { createHttpServer, type HttpServerHandle, type RouteGroup } from '../http/server.js';
import { thingGroupRoutes } from '../http/thing-groups-routes.js';
import { type JobsClock, systemJobsClock } from '../jobs/clock.js';
import { jobsControlPlaneRoutes } from '../jobs/control-plane-routes.js';
import { createJobsService, type JobsService } from '../jobs/service.js';
import { openSqliteJobsStore } from '../jobs/store.js';
import {
  createApiRateGate,
  createThrottleCounters,
  type Limits,
  parseLimitOverrides,
  resolveLimits,
  type ThrottleCounters,
} from '../limits/index.js';
import { quotaReport, quotaRoutes } from '../limits/routes.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import type { AccountContext } from '../ports/identity.js';
import type { TelemetryStore } from '../ports/telemetry-store.js';
import { openLocalProvisioningTemplates } from '../provisioning/local.js';
import { openSqliteRegistry, type Registry } from '../registry/sqlite-registry.js';
import type { RulesEngine } from '../rules/engine.js';
import { topicRuleRoutes } from '../rules/topic-rule-routes.js';
import type { ShadowService } from '../shadow/service.js';
import type { ShadowStore } from '../shadow/store.js';
import { createLocalCloud, type LocalCloudDeps } from './cloud-wiring.js';
import { createLocalFleetProvisioning } from './fleet-provisioning-wiring.js';
import { createLocalJobsTransports, registeredIn } from './jobs-wiring.js';
import { createLocalShadow } from './shadow-wiring.js';
import { createLocalWebSocket, loadWebSocketPolicy } from './websocket-wiring.js';

/**
 * The local IoT Core in one process: local CA, registry (SQLite), TLS MQTT broker with IoT policy
 * checks, and the SigV4-verified HTTP server carrying the IoT control plane (and whatever route
 * groups later parts add). `start()` resolves to what the ready line prints.
 */

/** The ready line: what `start()` resolves to, the bin prints, and the endpoint file holds (`@pifleet/protocol`). */
export type LocalCoreInfo = LocalEndpoint & { readonly ws: string };

/** What a started core offers to code composed around it (tests, later services). */
export interface LocalCoreServices {
  readonly account: AccountContext;
  readonly registry: Registry;
  readonly ca: LocalCa;
  readonly broker: Broker;
  readonly credentials: LocalCredentials;
  /** The Device Shadow service (the same one MQTT and the data plane use). */
  readonly shadows: ShadowService;
  /** The telemetry store (SQLite in the data dir) the rule-invoked handlers write. */
  readonly telemetry: TelemetryStore;
  /** The rules engine running the shipped rule definitions on the broker bus. */
  readonly rules: RulesEngine;
  /** The web console (its route group is on the HTTP listener; `token` opens it). */
  readonly console: WebConsole;
  /** The IoT Jobs service (its control-plane routes are on the HTTP listener; devices reach it through jobs-wiring). */
  readonly jobs: JobsService;
  /** Release artifacts: the S3 subset on the HTTP listener and the presigned URLs of job documents. */
  readonly artifacts: Artifacts;
  /** The quotas this core enforces (`--limits`, `--limits-file`). */
  readonly limits: Limits;
  /** How often each quota was breached since start. */
  readonly throttles: ThrottleCounters;
  readonly info: LocalCoreInfo;
}

export interface LocalIotCoreDeps {
  readonly config: LocalCoreConfig;
  readonly logger?: Logger;
  /** Milliseconds since the epoch. Default Date.now. */
  readonly now?: () => number;
  /**
   * More HTTP route groups (IoT data plane, command API, console), built once the registry, CA and
   * broker exist. They share the listener, the SigV4 check and the error shape.
   */
  readonly routes?: (services: Omit<LocalCoreServices, 'info'>) => readonly RouteGroup[];
  /** Limits to run with instead of the config's `limits`/`limitsFile` (tests). */
  readonly limits?: Limits;
  /** Shadow store to use instead of `shadows.sqlite` in the data dir (tests inject slow stores). */
  readonly shadowStore?: () => ShadowStore;
  /**
   * The jobs service's time and timers (rollout minutes, step and in-progress timeouts); default
   * `now` and Node timers. Tests drive it virtually; SigV4 keeps the real `now`.
   */
  readonly jobsClock?: JobsClock;
  /**
   * Pre-provisioning hooks by Lambda function name: a template whose hook's targetArn is
   * `arn:aws:lambda:…:function:NAME` calls `provisioningHooks[NAME]` in process. pifleet's own,
   * `pifleet-provisioning-hook`, is always there (a function of that name here replaces it).
   */
  readonly provisioningHooks?: Readonly<Record<string, PreProvisioningHookFunction>>;
  /** The silent-devices check's schedule and threshold (default every 5 minutes, 15 minutes quiet). */
  readonly silentCheck?: LocalCloudDeps['silentCheck'];
}

export interface LocalIotCore {
  start(): Promise<LocalCoreInfo>;
  stop(): Promise<void>;
  /** The running services; throws before start() and after stop(). */
  readonly services: LocalCoreServices;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]']);

/** The file names inside the data directory. */
export function localCorePaths(dataDir: string) {
  const dir = resolve(dataDir);
  return {
    dataDir: dir,
    caDir: join(dir, 'ca'),
    caFile: join(dir, 'ca', 'ca.pem'),
    credentialsFile: join(dir, LOCAL_CREDENTIALS_FILE),
    registryFile: join(dir, 'registry.sqlite'),
    /** The ready line of the running core, for tools (the `pifleet` CLI's `--local`); removed on stop. */
    endpointFile: join(dir, LOCAL_ENDPOINT_FILE),
    shadowFile: join(dir, 'shadows.sqlite'),
    jobsFile: join(dir, 'jobs.sqlite'),
    telemetryFile: join(dir, SQLITE_TELEMETRY_FILENAME),
    /** The archive stream's objects, `raw/thing=<thing>/date=<day>/…jsonl.gz` (Firehose into S3 in AWS). */
    archiveDir: join(dir, 'archive'),
    /** The S3 subset's objects, `<bucket>/<key>` (release artifacts). */
    artifactsDir: join(dir, 'artifacts'),
    /** Log actions, the rules' error sink among them: one JSONL file per log group. */
    ruleLogDir: join(dir, 'rule-logs'),
  };
}

/**
 * The endpoint file of the core running on `dataDir`, read through the schema the core writes it
 * with; undefined when there is none (no core started there, or the last one stopped).
 */
export async function readLocalEndpoint(dataDir: string): Promise<LocalEndpoint | undefined> {
  const file = localCorePaths(dataDir).endpointFile;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CloudError('LOCAL_CORE_ENDPOINT_UNREADABLE', `cannot read ${file}`, { cause: err });
  }
  const parsed = parseLocalEndpoint(text);
  if (!parsed.ok) {
    throw new CloudError(
      'LOCAL_CORE_ENDPOINT_INVALID',
      `${file} is not a local IoT Core endpoint file: ${describeIssues(parsed.issues)}`,
      {
        data: { file },
      },
    );
  }
  return parsed.value;
}

/** The config's limits: the mode, then the limits file's single values (exit 78 when the file is bad). */
async function loadLimits(config: LocalCoreConfig): Promise<Limits> {
  if (config.limitsFile === '') return resolveLimits(config.limits);
  let text: string;
  try {
    text = await readFile(config.limitsFile, 'utf8');
  } catch (err) {
    throw new ConfigError([`--limits-file: cannot read ${config.limitsFile} (${(err as NodeJS.ErrnoException).code})`]);
  }
  const parsed = parseLimitOverrides(text);
  if (!parsed.ok) throw new ConfigError(parsed.problems.map((p) => `--limits-file ${config.limitsFile}: ${p}`));
  return resolveLimits(config.limits, parsed.value);
}

/** pifleet's pre-provisioning hook, its allow-list from the environment (exit 78 when the list is malformed). */
function builtInHook(logger: Logger) {
  try {
    return createProvisioningHook({ env: process.env, logger });
  } catch (err) {
    if (err instanceof HandlerConfigError) {
      throw new ConfigError([`${err.message} (the built-in ${PROVISIONING_HOOK_FUNCTION_NAME}): fix or unset it`]);
    }
    throw err;
  }
}

export function createLocalIotCore(deps: LocalIotCoreDeps): LocalIotCore {
  const { config } = deps;
  const logger = deps.logger ?? silentLogger();
  const now = deps.now ?? Date.now;
  const paths = localCorePaths(config.dataDir);
  const account: AccountContext = Object.freeze({ region: config.region, accountId: config.accountId });
  /** The name devices connect to: the bind address, or this machine's name when binding all interfaces. */
  const publicHost = WILDCARDS.has(config.host) ? hostname() : config.host;

  let running: LocalCoreServices | undefined;
  let cleanup: Array<() => Promise<void> | void> = [];
  /**
   * Stopping takes the broker down before everything else: no connection may publish (and be
   * acknowledged) while the rules engine drains and the stores close.
   */
  let stopFirst: (() => Promise<void>) | undefined;

  async function unwind(): Promise<void> {
    const first = stopFirst;
    stopFirst = undefined;
    if (first) {
      try {
        await first();
      } catch (err) {
        logger.error({ err }, 'local core shutdown step failed');
      }
    }
    const steps = cleanup.reverse();
    cleanup = [];
    for (const step of steps) {
      try {
        await step();
      } catch (err) {
        logger.error({ err }, 'local core shutdown step failed');
      }
    }
  }

  return {
    get services(): LocalCoreServices {
      if (!running) throw new CloudError('LOCAL_CORE_NOT_RUNNING', 'the local IoT Core is not running');
      return running;
    },

    async start() {
      if (running || cleanup.length > 0) {
        throw new CloudError('LOCAL_CORE_ALREADY_STARTED', 'the local IoT Core is already started');
      }
      try {
        prepareDataDir(paths.dataDir);
        // Before anything in the directory is read or written: a second core must change nothing
        // (it used to delete the running core's endpoint.json when it stopped).
        const lock = lockDataDir(paths.dataDir);
        cleanup.push(() => lock.release());
        const limits = deps.limits ?? (await loadLimits(config));
        const wsPolicy = await loadWebSocketPolicy(config.wsPolicyFile, account);
        const operatorHooks = await loadHookModules(config.hooks);
        const pifleetHook = builtInHook(logger);
        const throttles = createThrottleCounters({ logger: logger.child({ component: 'quotas' }) });
        cleanup.push(() => throttles.close());
        const ca = await loadOrCreateCa({ dir: paths.caDir, now });
        const { credentials, created } = await loadOrCreateCredentials(paths.credentialsFile);
        if (created) logger.info({ file: paths.credentialsFile }, 'generated local credentials');

        const registry = openSqliteRegistry({
          file: paths.registryFile,
          account,
          now,
          logger: logger.child({ component: 'registry' }),
        });
        cleanup.push(() => registry.close());

        const server = await ca.issueServerCertificate([publicHost, config.host]);
        const broker = createBroker({
          identities: registry,
          tls: { caCertPem: ca.caCertPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem },
          host: config.host,
          port: config.mqttPort,
          account,
          logger,
          now,
          persistentSessionExpirySeconds: config.persistentSessionExpirySeconds,
          limits,
          throttles,
        });
        // The bus first, the listener last: a device that connects finds the shadow service and the
        // rules in place (a message acknowledged before the rules subscribed was never stored).
        await broker.open();
        cleanup.push(() => broker.stop());
        stopFirst = () => broker.stop();

        const shadow = createLocalShadow({
          broker,
          file: paths.shadowFile,
          ...(deps.shadowStore ? { store: deps.shadowStore() } : {}),
          now,
          logger,
          limits,
          throttles,
        });
        await shadow.start();
        cleanup.push(() => shadow.stop());

        // Read at scrape time; `cloud` (the rules engine) exists by the time anything can scrape.
        const metrics = createPrometheusMetrics({ broker, throttles, rules: () => cloud.rules });
        const cloud = createLocalCloud({
          metrics,
          ...(deps.silentCheck === undefined ? {} : { silentCheck: deps.silentCheck }),
          bus: broker.bus,
          account,
          credentials,
          telemetryFile: paths.telemetryFile,
          archiveDir: paths.archiveDir,
          ruleLogDir: paths.ruleLogDir,
          now,
          logger,
        });
        cleanup.push(() => cloud.stop());
        await cloud.start();

        const artifacts = createArtifacts({
          dir: paths.artifactsDir,
          region: config.region,
          credentials,
          now,
          logger,
        });
        await artifacts.start();

        const provisioning = openLocalProvisioningTemplates({ dataDir: paths.dataDir, ...account, now });
        cleanup.push(() => provisioning.close());
        const jobsStore = openSqliteJobsStore({ path: paths.jobsFile });
        cleanup.push(() => jobsStore.close());
        const jobs = createJobsService({
          store: jobsStore,
          registry,
          clock: deps.jobsClock ?? systemJobsClock(now),
          resolveDocument: artifacts.resolveDocument,
          readDocumentSource: artifacts.readDocumentSource,
          logger: logger.child({ component: 'jobs' }),
        });
        jobs.start();
        cleanup.push(() => jobs.stop());
        const jobsDevices = createLocalJobsTransports({
          broker,
          service: jobs,
          thingExists: registeredIn(registry),
          now,
          logger,
        });
        await jobsDevices.start();
        cleanup.push(() => jobsDevices.stop());
        const fleetProvisioning = createLocalFleetProvisioning({
          broker,
          registry,
          ca,
          templates: provisioning.templates,
          // pifleet's default hook (the Lambda the CDK app deploys), its allow-list from the
          // core's environment as the Lambda's is from its own; then the caller's functions.
          hooks: {
            [PROVISIONING_HOOK_FUNCTION_NAME]: pifleetHook,
            ...operatorHooks,
            ...deps.provisioningHooks,
          },
          now,
          logger,
        });
        await fleetProvisioning.start();
        cleanup.push(() => fleetProvisioning.stop());

        const webConsole = createWebConsole({
          registry,
          broker,
          shadows: shadow.service,
          allowedHosts: [config.host, publicHost],
          now,
          logger,
          metrics: metrics.summary,
          quotas: () => quotaReport({ limits, throttles }),
          jobs,
        });
        await webConsole.start();
        cleanup.push(() => webConsole.stop());

        const mqtt = await broker.start();
        const websocket = createLocalWebSocket({
          broker,
          tls: { caCertPem: ca.caCertPem, serverCertPem: server.certPem, serverKeyPem: server.keyPem },
          host: config.host,
          publicHost: WILDCARDS.has(config.host) ? publicHost : config.host,
          port: config.wsPort ?? 0,
          region: config.region,
          credentials,
          policy: wsPolicy,
          now,
          logger,
        });
        const wsUrl = await websocket.start();
        cleanup.push(() => websocket.stop());

        const base = {
          limits,
          throttles,
          console: webConsole,
          account,
          registry,
          ca,
          broker,
          credentials,
          shadows: shadow.service,
          telemetry: cloud.store,
          rules: cloud.rules,
          jobs,
          artifacts,
        };
        const http: HttpServerHandle = createHttpServer({
          host: config.host,
          port: config.httpPort,
          region: config.region,
          credentials: singleCredentialStore(credentials),
          routes: [
            iotControlPlaneRoutes({ registry, ca, endpointAddress: () => publicHost }),
            thingGroupRoutes({ registry }),
            jobsControlPlaneRoutes({ jobs }),
            provisioning.routes,
            jobsDevices.routes,
            topicRuleRoutes({ rules: cloud.rules, account, now }),
            quotaRoutes({ limits, throttles }),
            shadow.routes,
            cloud.routes,
            webConsole.routes,
            artifacts.routes,
            // Prometheus cannot sign: the console's Host check instead (see metrics-routes.ts).
            metricsRoutes({ scrape: metrics.scrape, isThisMachine: thisMachineHosts([config.host, publicHost]) }),
            ...(deps.routes?.(base) ?? []),
          ],
          now,
          logger,
          // IoT Core's per-operation control-plane rates (a 429 ThrottlingException past them).
          admit: createApiRateGate({ limits, throttles }).admit,
        });
        const bound = await http.start();
        cleanup.push(() => http.stop());

        const httpHost = WILDCARDS.has(config.host) ? publicHost : bound.host;
        const httpUrl = httpHost.includes(':')
          ? `http://[${httpHost}]:${bound.port}`
          : `http://${httpHost}:${bound.port}`;
        const info: LocalCoreInfo = Object.freeze({
          ready: true,
          mqtt: Object.freeze({ host: WILDCARDS.has(config.host) ? publicHost : mqtt.host, port: mqtt.port }),
          http: httpUrl,
          ws: wsUrl,
          caFile: paths.caFile,
          credentialsFile: paths.credentialsFile,
          region: config.region,
          accountId: config.accountId,
          console: webConsole.url(httpUrl),
          limits: Object.freeze({ mode: limits.mode, changed: limits.changed }),
        });
        cloud.bindEndpoint(info.http);
        artifacts.bindEndpoint(info.http);
        await writeFile(paths.endpointFile, formatLocalEndpoint(info), { mode: 0o600 });
        cleanup.push(() => rm(paths.endpointFile, { force: true }));
        running = Object.freeze({ ...base, info });
        logger.info(
          { mqtt: info.mqtt, http: info.http, ws: info.ws, dataDir: paths.dataDir, limits: limits.values },
          'local IoT Core ready',
        );
        return info;
      } catch (err) {
        await unwind();
        throw err;
      }
    },

    async stop() {
      running = undefined;
      await unwind();
      logger.info('local IoT Core stopped');
    },
  };
}
