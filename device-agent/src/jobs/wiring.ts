import path from 'node:path';
import { AGENT_INSTALL_PATHS, type DesiredState, splitDesired } from '@pifleet/protocol';
import type { AwsIotTransport } from '../adapters/aws-iot-sdk.js';
import type { Agent } from '../app/agent.js';
import { configOverlayPath, mergeSettings } from '../config/overlay.js';
import type { AgentConfig } from '../config/schema.js';
import { AgentError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../ports/clock.js';
import type { Transport } from '../ports/transport.js';
import { createConfigHandler, type SettingsOverlay } from './config-job.js';
import { createIotJobsService } from './iot-jobs-v2.js';
import type { JobsService } from './port.js';
import { createRebootHandler, createSystemReboot, type RebootPort } from './reboot.js';
import { createJobRunner, type JobRunner } from './runner.js';
import {
  createFileJobState,
  createMemoryJobState,
  type JobStateStore,
  readOwnJsonFile,
  writeFileAtomic,
} from './state.js';
import { createTopicJobsService } from './topic-jobs.js';
import { type AgentUpdater, createUpdateHandler } from './update-job.js';

/** The execution state file, beside the outbox. */
export const JOB_STATE_FILE = 'job-execution.json';

/** The settings overlay as a file (atomic writes), or in memory for an in-memory outbox. */
export function createSettingsOverlay(opts: {
  readonly file: string | undefined;
  readonly onCorrupt?: (reason: string) => void;
}): SettingsOverlay & { read(): DesiredState } {
  let memory: DesiredState = {};
  const read = (): DesiredState => {
    if (opts.file === undefined) return memory;
    // Our own file, but read by the same rules as any desired state: a damaged one loses keys, not the agent.
    return splitDesired(readOwnJsonFile(opts.file, opts.onCorrupt ?? (() => undefined)) ?? {}).accepted;
  };
  return {
    read,
    merge(settings) {
      const next = mergeSettings(read(), settings);
      if (opts.file === undefined) memory = next;
      else writeFileAtomic(opts.file, `${JSON.stringify(next)}\n`);
    },
  };
}

export interface AgentJobsDeps {
  readonly config: AgentConfig;
  readonly agent: Agent;
  readonly transport: Transport;
  /** The device SDK transport, when the agent runs on it: its jobs client is then the SDK's. */
  readonly crt: AwsIotTransport | undefined;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Default: `job-execution.json` beside the outbox (in memory for an in-memory outbox). */
  readonly store?: JobStateStore;
  /** Default: `systemctl reboot`. */
  readonly reboot?: RebootPort;
  /** The on-device updater; absent: agent updates are REJECTED. */
  readonly updater?: AgentUpdater;
  /** Ends the process gracefully so systemd starts the switched agent (`pifleet-agent run` passes it). */
  readonly restart?: (reason: string) => void;
}

/**
 * The reboot port of a simulated device that was given none: a simulated device runs on a host
 * that is not the device, and `systemctl reboot` there would reboot the host.
 */
const hostRebootRefused: RebootPort = {
  reboot: () =>
    Promise.reject(new AgentError('REBOOT_REFUSED', 'a simulated device does not reboot the machine it runs on')),
  bootId: () => undefined,
};

/** The job runner of one agent, its handlers and its jobs client, wired from the agent's config. */
export function createAgentJobs(deps: AgentJobsDeps): JobRunner {
  const { config, logger } = deps;
  const stateDir = config.outbox.path === ':memory:' ? undefined : path.dirname(config.outbox.path);
  const onCorrupt = (reason: string) => logger.error({ reason }, 'job state file unreadable; moved aside');
  const store =
    deps.store ??
    (stateDir === undefined
      ? createMemoryJobState()
      : createFileJobState({ file: path.join(stateDir, JOB_STATE_FILE), onCorrupt }));
  const overlay = createSettingsOverlay({ file: configOverlayPath(config.outbox.path), onCorrupt });
  const service = (): JobsService => {
    const common = { thingName: config.thingName, requestTimeoutMs: config.jobs.requestTimeoutMs, logger };
    if (deps.crt) {
      const native = deps.crt.native();
      if (!native) throw new AgentError('TRANSPORT_NOT_STARTED', 'transport has no client yet');
      return createIotJobsService({ ...common, native, clock: deps.clock });
    }
    return createTopicJobsService({ ...common, transport: deps.transport, clock: deps.clock });
  };
  const runner = createJobRunner({
    service,
    connection: {
      get isConnected() {
        return deps.transport.isConnected;
      },
      on: (event, listener) => deps.transport.on(event, () => listener()),
    },
    store,
    clock: deps.clock,
    logger,
    handlers: {
      'pifleet.config': createConfigHandler({ target: deps.agent, overlay }),
      'pifleet.reboot': createRebootHandler({
        allowReboot: config.jobs.allowReboot,
        port: deps.reboot ?? (config.hardware === 'simulated' ? hostRebootRefused : createSystemReboot()),
      }),
      'pifleet.agent-update': createUpdateHandler({
        ...(deps.updater ? { updater: deps.updater } : {}),
        publicKeys: config.update.publicKeys,
        healthy: () => deps.agent.whenHealthy(),
        ...(deps.restart ? { restart: deps.restart } : {}),
      }),
    },
  });
  const { updater } = deps;
  if (!updater) return runner;
  return {
    ...runner,
    start() {
      runner.start();
      // The new agent's health deadline runs from its start, connected or not: a release that
      // never connects must still be rolled back in time, not only when the job can be resumed.
      const job = store.load();
      if (job?.operation === 'pifleet.agent-update' && job.outcome === undefined) {
        updater.onStart(job.jobId).catch((err: unknown) => logger.error({ err }, 'updater start check failed'));
      }
    },
  };
}

/**
 * Where an agent installed for updates keeps them, when this process is one: the unit's
 * `selfUpdate` runs `<stateDir>/current/bin/pifleet-agent.js` (the state directory is the
 * outbox's), with the factory install as the fallback. Undefined for an agent started any other
 * way (the factory unit, a development checkout): switching `current` would not change what runs,
 * so it has no updater and agent-update jobs are REJECTED with that reason.
 */
export function selfUpdateLayout(
  config: AgentConfig,
  launcher: string | undefined,
): { readonly stateDir: string; readonly factoryDir: string; readonly runningDir: string } | undefined {
  if (launcher === undefined || config.outbox.path === ':memory:') return undefined;
  const stateDir = path.dirname(path.resolve(config.outbox.path));
  const runningDir = path.join(stateDir, 'current');
  if (path.resolve(launcher) !== path.join(runningDir, 'bin', 'pifleet-agent.js')) return undefined;
  return { stateDir, factoryDir: AGENT_INSTALL_PATHS.agentDir, runningDir };
}
