import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { type LogLevel, makeDirectorySync } from '@pifleet/protocol';
import type { AwsIotTransport } from '../adapters/aws-iot-sdk.js';
import { createLinuxHostStats } from '../adapters/linux-host-stats.js';
import { type AgentConfig, toHardwareSpec } from '../config/schema.js';
import { AgentError } from '../errors.js';
import { createHardware, type Hardware, type HardwarePorts } from '../hardware/open.js';
import type { RebootPort } from '../jobs/reboot.js';
import type { JobRunner } from '../jobs/runner.js';
import type { JobStateStore } from '../jobs/state.js';
import type { AgentUpdater } from '../jobs/update-job.js';
import { createAgentJobs } from '../jobs/wiring.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Outbox, type OutboxRecovery, openOutbox } from '../outbox/outbox.js';
import type { Clock } from '../ports/clock.js';
import type { HostStats } from '../ports/host-stats.js';
import type { Transport } from '../ports/transport.js';
import { createIotShadowService } from '../shadow/iot-shadow-v2.js';
import type { ShadowService } from '../shadow/port.js';
import { createTopicShadowService } from '../shadow/topic-shadow.js';
import { type Agent, type AgentStatus, createAgent } from './agent.js';
import { mqttJsTransportFromConfig, transportFromConfig } from './transport.js';

/**
 * The MQTT client under the agent: `crt`, the AWS IoT Device SDK (aws-crt) with its shadow client,
 * what a device runs; `mqtt`, mqtt.js with the shadow over its reserved topics, ~8× cheaper per
 * connection for a fleet on one machine (see `createMqttJsTransport`); or a ready `Transport`, with
 * the shadow over its reserved topics.
 */
export type RuntimeTransport = 'crt' | 'mqtt' | Transport;

export interface AgentRuntimeDeps {
  readonly config: AgentConfig;
  /** Time of sampling, batching, publishing, the outbox and the hardware (a virtual clock in tests). */
  readonly clock: Clock;
  /** Time of the MQTT reconnect backoff and the last will's timestamp (default: `clock`). */
  readonly ioClock?: Clock;
  /** Time of shadow request timeouts (default: `ioClock`). */
  readonly shadowClock?: Clock;
  readonly logger?: Logger;
  /** Defaults to a random UUID: one per runtime. */
  readonly bootId?: string;
  /** Ports the hardware uses (the simulator's GPIO and I2C); default: the real adapters `config.hardware` names. */
  readonly ports?: HardwarePorts;
  /** Default `crt`. */
  readonly transport?: RuntimeTransport;
  /** Called once with the transport, before anything starts it (to follow its events from the first). */
  readonly onTransport?: (transport: Transport) => void;
  /** A ready outbox (the fleet's in-memory one); default: the SQLite outbox at `config.outbox.path`, its directory made. */
  readonly outbox?: Outbox;
  /** Wraps the shadow client the agent gets (to observe what it reports). */
  readonly observeShadow?: (shadow: ShadowService) => ShadowService;
  /** Applies a desired log level; default: on the agent's loggers. */
  readonly setLogLevel?: (level: LogLevel) => void;
  /** Reads PEM files for the mqtt.js transport (a fleet host caches the CA its devices share). */
  readonly readFile?: (file: string) => Buffer;
  /**
   * The host's counters for `reported.health` (sampled only when `health.intervalSeconds` > 0);
   * default: Linux's /proc and /sys, which leave every field out where they do not exist.
   */
  readonly hostStats?: HostStats;
  /**
   * Jobs (when `config.jobs.enabled`): where the execution in progress is kept (default: a file
   * beside the outbox), how the device reboots (default `systemctl reboot`), the on-device updater
   * (absent: agent updates are REJECTED), and the clock of the runner's retries (default `ioClock`).
   */
  readonly jobs?: {
    readonly store?: JobStateStore;
    readonly reboot?: RebootPort;
    readonly updater?: AgentUpdater;
    /** Ends the process gracefully so that systemd starts the agent an update switched to. */
    readonly restart?: (reason: string) => void;
    readonly clock?: Clock;
  };
}

export interface AgentRuntime {
  readonly bootId: string;
  /**
   * Opens the outbox, starts the hardware, then the agent (which connects in the background).
   * Rejects with the hardware's `HardwareUnavailableError` (the outbox closed again) when the
   * hardware cannot start. Once only: a second call does nothing.
   */
  start(): Promise<void>;
  /** The agent's SIGTERM path (drain, offline status, disconnect, close the outbox), then releases the hardware. Idempotent. */
  stop(reason?: string): Promise<void>;
  /** The agent's status; throws before start(). */
  status(): AgentStatus;
  /** Undefined before start(). */
  readonly agent: Agent | undefined;
  /** Undefined before start(). */
  readonly transport: Transport | undefined;
  /** Undefined before start(). */
  readonly hardware: Hardware | undefined;
  /** The job runner; undefined before start() and when `config.jobs.enabled` is false. */
  readonly jobs: JobRunner | undefined;
  /** What opening the SQLite outbox found (a damaged file moved aside), once started. */
  readonly outboxRecovery: OutboxRecovery | undefined;
}

/**
 * The one way to build a running agent from its config: outbox, hardware, transport, shadow client
 * and the agent core, wired the same for `pifleet-agent`, a simulated device and a fleet's devices,
 * which differ only in what they pass (ports, clocks, transport kind, outbox, hooks). Holds no
 * module-level state, so a process can run as many as it has memory for. No I/O until start().
 */
export function createAgentRuntime(deps: AgentRuntimeDeps): AgentRuntime {
  const { config, clock } = deps;
  const ioClock = deps.ioClock ?? clock;
  const shadowClock = deps.shadowClock ?? ioClock;
  const logger = deps.logger ?? silentLogger();
  const bootId = deps.bootId ?? randomUUID();
  let agent: Agent | undefined;
  let transport: Transport | undefined;
  let hardware: Hardware | undefined;
  let jobs: JobRunner | undefined;
  let recovery: OutboxRecovery | undefined;
  let state: 'idle' | 'running' | 'stopped' = 'idle';

  const openConfiguredOutbox = (): Outbox => {
    if (deps.outbox) return deps.outbox;
    // Level by level: Node's recursive mkdirSync never returns for an outbox path under /proc.
    if (config.outbox.path !== ':memory:') makeDirectorySync(path.dirname(config.outbox.path));
    const opened = openOutbox({
      path: config.outbox.path,
      maxBytes: config.outbox.maxBytes,
      synchronous: config.outbox.synchronous,
      readingSync: config.outbox.readingSync,
      now: () => clock.now(),
    });
    recovery = opened.recovery;
    return opened.outbox;
  };

  const createTransport = (): { transport: Transport; crt: AwsIotTransport | undefined } => {
    const choice = deps.transport ?? 'crt';
    if (choice === 'crt') {
      const crt = transportFromConfig(config, { bootId, clock: ioClock, logger });
      return { transport: crt, crt };
    }
    if (choice === 'mqtt') {
      const t = mqttJsTransportFromConfig(config, {
        bootId,
        clock: ioClock,
        logger,
        ...(deps.readFile ? { readFile: deps.readFile } : {}),
      });
      return { transport: t, crt: undefined };
    }
    return { transport: choice, crt: undefined };
  };

  /** The SDK's shadow client on the device SDK transport, the topic shadow on any other. */
  const createShadow = (t: Transport, crt: AwsIotTransport | undefined): ShadowService => {
    const common = { thingName: config.thingName, requestTimeoutMs: config.shadow.requestTimeoutMs, logger };
    let shadow: ShadowService;
    if (crt) {
      const native = crt.native();
      if (!native) throw new AgentError('TRANSPORT_NOT_STARTED', 'transport has no client yet');
      shadow = createIotShadowService({ ...common, native, clock: shadowClock });
    } else {
      shadow = createTopicShadowService({ ...common, transport: t, clock: shadowClock });
    }
    return deps.observeShadow ? deps.observeShadow(shadow) : shadow;
  };

  return {
    bootId,
    get agent() {
      return agent;
    },
    get transport() {
      return transport;
    },
    get hardware() {
      return hardware;
    },
    get jobs() {
      return jobs;
    },
    get outboxRecovery() {
      return recovery;
    },
    async start() {
      if (state !== 'idle') return;
      state = 'running';
      const outbox = openConfiguredOutbox();
      const hw = createHardware({
        spec: toHardwareSpec(config),
        clock,
        logger,
        ...(deps.ports ? { ports: deps.ports } : {}),
      });
      hardware = hw;
      try {
        await hw.start();
      } catch (err) {
        outbox.close();
        throw err;
      }
      const { transport: t, crt } = createTransport();
      transport = t;
      deps.onTransport?.(t);
      agent = createAgent({
        config,
        transport: t,
        outbox,
        sensors: hw.sensors,
        outputs: hw.outputs,
        inputs: hw.inputs,
        // The hardware layer initialises and closes the devices.
        manageDevices: false,
        clock,
        logger,
        bootId,
        ...(recovery ? { outboxRecovery: recovery } : {}),
        ...(deps.setLogLevel ? { setLogLevel: deps.setLogLevel } : {}),
        hostStats: deps.hostStats ?? createLinuxHostStats(),
        createShadow: () => createShadow(t, crt),
      });
      await agent.start();
      if (config.jobs.enabled) {
        jobs = createAgentJobs({
          config,
          agent,
          transport: t,
          crt,
          clock: deps.jobs?.clock ?? ioClock,
          logger,
          ...(deps.jobs?.store ? { store: deps.jobs.store } : {}),
          ...(deps.jobs?.reboot ? { reboot: deps.jobs.reboot } : {}),
          ...(deps.jobs?.updater ? { updater: deps.jobs.updater } : {}),
          ...(deps.jobs?.restart ? { restart: deps.jobs.restart } : {}),
        });
        jobs.start();
      }
    },
    async stop(reason = 'shutdown') {
      if (state !== 'running') {
        state = 'stopped';
        return;
      }
      state = 'stopped';
      // The jobs client holds the MQTT client the agent stops; an unacknowledged outcome stays persisted.
      jobs?.stop();
      await agent?.stop(reason);
      await hardware?.stop().catch((err: unknown) => logger.warn({ err }, 'hardware stop failed'));
    },
    status() {
      if (!agent) throw new AgentError('NOT_STARTED', 'the agent exists only after start()');
      return agent.status();
    },
  };
}
