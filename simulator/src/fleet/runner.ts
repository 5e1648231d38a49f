import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { localCorePaths, readCredentialsFile, readLocalEndpoint } from '@pifleet/cloud';
import { DEFAULT_CLAIMED_THING_PREFIX, LOCAL_ENDPOINT_FILE } from '@pifleet/protocol';
import { createJobsControl } from '@pifleet/provisioning';
import { SimulatorError } from '../errors.js';
import { simulatedJob } from '../jobs/job-document.js';
import { claimedThingNames } from './claim-devices.js';
import { DEFAULT_PROVISION_CONCURRENCY, type FleetOptions } from './options.js';
import type { FleetIdentity } from './provision.js';
import type { FleetResult, PhaseResult } from './result.js';
import { runOnAws } from './run/aws.js';
import { type RunContext, type RunOutcome, runPhase } from './run/phase.js';
import { bareBrokerTarget, externalCoreTarget, localCoreTarget } from './run/phase-target.js';
import { provisionByClaim } from './run/provision-claim.js';
import { provisionInProcess, removeProvisioned } from './run/provision-in-process.js';
import type { RolloutTarget } from './run/rollout.js';
import { groupRunThings } from './run/rollout-group.js';
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
  // The job's document first: a bad `--job` is refused before anything is made.
  const rollout = o.job ? startRolloutSetup(ctx) : undefined;
  const claim = o.provision === 'claim';
  // By claim, the template names each thing after its device's serial (`pi-<serial>`).
  const names = claim
    ? claimedThingNames(o.seed, o.devices)
    : Array.from({ length: o.devices }, (_, i) => `${thingPrefix}-${String(i + 1).padStart(5, '0')}`);
  const ownDir = o.target === 'local' && !o.dataDir;
  const dataDir =
    o.dataDir ?? mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'pifleet-fleet-'));
  const certDir = path.join(dataDir, 'fleet-certs', runId);
  const telemetryFile = localCorePaths(dataDir).telemetryFile;
  // Boot ids start with the thing name; a claimed fleet runs on a fresh core of its own (checkOptions).
  const bootPrefix = claim ? DEFAULT_CLAIMED_THING_PREFIX : `${thingPrefix}-`;
  const readRunStore = (latencyThings: readonly string[]) => readStore(telemetryFile, bootPrefix, latencyThings);
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
    if (claim && local) {
      const claimed = await provisionByClaim({
        local,
        dataDir,
        certDir,
        seed: o.seed,
        names,
        protocol: o.protocol,
        concurrency: o.provisionConcurrency ?? DEFAULT_PROVISION_CONCURRENCY,
        workers: o.workers,
        say,
        signal: ctx.signal,
      });
      ({ identities, provisioning } = claimed);
      // After the identities are known: the clean-up below removes those that were made.
      if (claimed.error) throw claimed.error;
    } else {
      ({ identities, provisioning } = await provisionInProcess({ dataDir, certDir, local, account, names, say }));
    }
    const job =
      rollout &&
      (local
        ? rollout.prepare({
            dataDir,
            local,
            account,
            names,
            http: local.info.http,
            credentials: local.services.credentials,
          })
        : rollout.prepare({
            dataDir,
            local: undefined,
            account,
            names,
            http: external?.http,
            credentials: external?.credentials,
          }));

    if (local) {
      const target = localCoreTarget(local, readRunStore, o.faults);
      phases.push(await runPhase(job ? { ...target, rollout: job } : target, identities, ctx));
      rollout?.cleanup();
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
      phases.push(await runPhase(job ? { ...target, rollout: job } : target, identities, ctx));
    }
  } finally {
    rollout?.cleanup();
    await local?.stop().catch(() => undefined);
    if (!o.keep && identities.length > 0) cleanup = await removeProvisioned({ dataDir, certDir, account, identities });
    if (ownDir && !o.keep) rmSync(dataDir, { recursive: true, force: true });
  }
  return { phases, provisioning, cleanup };
}

/**
 * `--job`: the job's document (and, for an agent update, the run's release key), then, once the
 * fleet is provisioned, the thing group it targets and the control plane that creates it. The
 * group goes with the run's cleanup (before the core stops, while its registry is open).
 */
function startRolloutSetup(ctx: RunContext) {
  const o = ctx.options;
  const jobOptions = o.job as NonNullable<FleetOptions['job']>;
  const simJob = simulatedJob({ job: jobOptions.job, version: jobOptions.releaseVersion, batchAgeMs: o.batchAgeMs });
  const cleanups: (() => void)[] = [];
  return {
    prepare(p: {
      readonly dataDir: string;
      readonly local: LocalTarget | undefined;
      readonly account: { readonly region: string; readonly accountId: string };
      readonly names: readonly string[];
      readonly http: string | undefined;
      readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined;
    }): RolloutTarget {
      if (!p.http || !p.credentials) {
        throw new SimulatorError('FLEET_EXTERNAL', "--job needs the core's HTTP endpoint and its credentials file");
      }
      const group = groupRunThings({ ...p, groupName: `${ctx.thingPrefix}-rollout` });
      cleanups.push(() => group.remove());
      const control = createJobsControl({ region: p.account.region, endpoint: p.http, credentials: p.credentials });
      cleanups.push(() => control.close());
      return {
        job: simJob,
        options: jobOptions,
        control,
        groupArn: group.groupArn,
        jobId: `${ctx.thingPrefix}-${simJob.kind}`,
      };
    },
    cleanup() {
      for (const c of cleanups.splice(0).reverse()) {
        try {
          c();
        } catch {
          // best effort: the run's own data dir goes anyway; an external core keeps a stray group
        }
      }
    },
  };
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
