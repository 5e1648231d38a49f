import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { localCorePaths, readCredentialsFile, readLocalEndpoint } from '@pifleet/cloud';
import { LOCAL_ENDPOINT_FILE } from '@pifleet/protocol';
import { SimulatorError } from '../errors.js';
import type { FleetOptions } from './options.js';
import type { FleetIdentity } from './provision.js';
import type { FleetResult, PhaseResult } from './result.js';
import { runOnAws } from './run/aws.js';
import { type RunContext, type RunOutcome, runPhase } from './run/phase.js';
import { bareBrokerTarget, externalCoreTarget, localCoreTarget } from './run/phase-target.js';
import { provisionInProcess, removeProvisioned } from './run/provision-in-process.js';
import { readStore } from './store-readback.js';
import { summarizeRun } from './summary.js';
import { type LocalTarget, startBareBroker, startLocalTarget } from './target.js';

// The result's shape lives in result.ts; the report and the bench import it from here.
export * from './result.js';

export interface FleetRunDeps {
  readonly options: FleetOptions;
  /** A progress line (live on a TTY: `final` false lines replace each other). */
  readonly progress?: (line: string, final: boolean) => void;
  readonly signal?: AbortSignal;
}

/**
 * A fleet run: provisions the devices, runs them against the local IoT Core (and, with
 * `baseline`, against a bare broker), injects the faults, reads back what was stored and
 * returns every figure. Stops by itself; `signal` ends the measured window early.
 *
 * The steps of one phase are in `run/phase.ts`, the AWS target in `run/aws.ts`, and every
 * figure of the result is computed in `summary.ts` (pure).
 */
export function createFleetRunner(deps: FleetRunDeps) {
  const o = deps.options;
  const runId = randomBytes(3).toString('hex');
  const ctx: RunContext = {
    options: o,
    say: deps.progress ?? (() => undefined),
    signal: deps.signal,
    runId,
    thingPrefix: `${o.prefix}-${runId}`,
  };
  return {
    runId,
    async run(): Promise<FleetResult> {
      const startedAt = new Date().toISOString();
      const outcome = o.target === 'aws' ? await runOnAws(ctx) : await runOnLocalOrExternalCore(ctx);
      return summarizeRun({ runId, startedAt, options: o, machine: describeMachine(), ...outcome });
    },
  };
}

/**
 * `--target local` (a core started in this process, then the bare broker with `baseline`) or
 * `--target external` (a core already running on `dataDir`): provisions in process, runs the
 * phases, removes what it provisioned.
 */
async function runOnLocalOrExternalCore(ctx: RunContext): Promise<RunOutcome> {
  const { options: o, say, runId, thingPrefix } = ctx;
  const names = Array.from({ length: o.devices }, (_, i) => `${thingPrefix}-${String(i + 1).padStart(5, '0')}`);
  const ownDir = o.target === 'local' && !o.dataDir;
  const dataDir =
    o.dataDir ?? mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'pifleet-fleet-'));
  const certDir = path.join(dataDir, 'fleet-certs', runId);
  const telemetryFile = localCorePaths(dataDir).telemetryFile;
  const readRunStore = (latencyThings: readonly string[]) => readStore(telemetryFile, `${thingPrefix}-`, latencyThings);
  const phases: PhaseResult[] = [];
  let provisioning: FleetResult['provisioning'];
  let identities: readonly FleetIdentity[] = [];
  let cleanup: FleetResult['cleanup'] = { removed: 0, failed: 0, kept: o.keep };
  let account = { region: '', accountId: '' };
  let local: LocalTarget | undefined;
  try {
    let external: Awaited<ReturnType<typeof readExternalEndpoint>> | undefined;
    if (o.target === 'local') {
      say('starting the local IoT Core', true);
      local = await startLocalTarget({
        dataDir,
        limits: o.limits,
        ...(o.limitsFile ? { limitsFile: o.limitsFile } : {}),
      });
      account = { region: local.info.region, accountId: local.info.accountId };
    } else {
      external = await readExternalEndpoint(dataDir);
      account = { region: external.region, accountId: external.accountId };
    }
    ({ identities, provisioning } = await provisionInProcess({ dataDir, certDir, local, account, names, say }));

    if (local) {
      phases.push(await runPhase(localCoreTarget(local, readRunStore, o.faults), identities, ctx));
      await local.stop();
      local = undefined;
      if (o.baseline) {
        say('starting the bare broker (baseline)', true);
        const bare = await startBareBroker({ dataDir, ...account });
        try {
          phases.push(await runPhase(bareBrokerTarget(bare), identities, ctx));
        } finally {
          await bare.stop();
        }
      }
    } else if (external) {
      const { http, credentials } = external;
      const command = http && credentials ? { baseUrl: `${http}/api`, region: account.region, credentials } : undefined;
      const target = externalCoreTarget({
        host: external.host,
        port: external.port,
        caFile: localCorePaths(dataDir).caFile,
        command,
        readStore: readRunStore,
        faults: o.faults,
        ...(http ? { http } : {}),
      });
      phases.push(await runPhase(target, identities, ctx));
    }
  } finally {
    await local?.stop().catch(() => undefined);
    if (!o.keep && identities.length > 0) cleanup = await removeProvisioned({ dataDir, certDir, account, identities });
    if (ownDir && !o.keep) rmSync(dataDir, { recursive: true, force: true });
  }
  return { phases, provisioning, cleanup };
}

function describeMachine(): FleetResult['machine'] {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
  };
}

export type FleetRunner = ReturnType<typeof createFleetRunner>;

/** The running core's endpoint file (written by `pifleet-local-core`) in its data dir, and its key pair. */
async function readExternalEndpoint(dataDir: string): Promise<{
  host: string;
  port: number;
  http: string;
  region: string;
  accountId: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}> {
  const endpoint = await readLocalEndpoint(dataDir);
  if (!endpoint) {
    throw new SimulatorError(
      'FLEET_EXTERNAL',
      `no ${LOCAL_ENDPOINT_FILE} in ${dataDir}: is the local IoT Core running there?`,
    );
  }
  const credentials = await readCredentialsFile(endpoint.credentialsFile);
  return {
    host: endpoint.mqtt.host,
    port: endpoint.mqtt.port,
    http: endpoint.http,
    region: endpoint.region,
    accountId: endpoint.accountId,
    ...(credentials ? { credentials } : {}),
  };
}
