import { randomUUID } from 'node:crypto';
import {
  appTopics,
  type BackoffSchedule,
  exponentialBackoff,
  type HealthReport,
  type LogLevel,
  MQTT5_REASON,
  type Reading,
  type RejectedDesired,
  type SensorReport,
  type StatusMessage,
  shadowTopics,
  splitDesired,
  utf8Length,
} from '@pifleet/protocol';
import type { AgentConfig } from '../config/schema.js';
import { Batcher, type BatchLimits, type SealedBatch, sealBatch } from '../core/batcher.js';
import { type ActualState, type Change, desiredChangeOf, Reconciler } from '../core/reconciler.js';
import { buildReported } from '../core/reported.js';
import type { DigitalInput, Output, Sensor, SensorHealth } from '../drivers/types.js';
import { AgentError, ShadowRejectedError, ShadowTimeoutError, TransportError } from '../errors.js';
import type { SettingsResult } from '../jobs/config-job.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import type { Dropped, Outbox, OutboxRecovery } from '../outbox/outbox.js';
import { type Clock, type TimerHandle, withTimeout } from '../ports/clock.js';
import type { HostStats } from '../ports/host-stats.js';
import type { Transport } from '../ports/transport.js';
import type { ShadowService } from '../shadow/port.js';
import { createQuotaShadow } from '../shadow/quota.js';
import { createHealthSampler } from './health-sampler.js';
import { createPublisher } from './publisher.js';

export const AGENT_VERSION = '0.1.0';

/** Retries of a connection's shadow get that failed (timed out, throttled, refused): 1 s doubling to 60 s, full jitter. */
const SHADOW_SYNC_RETRY: BackoffSchedule = { baseMs: 1_000, capMs: 60_000, floorMs: 100 };

/** Everything an agent needs; nothing is global, so one process can run thousands of agents. */
export interface AgentDeps {
  readonly config: AgentConfig;
  readonly transport: Transport;
  readonly outbox: Outbox;
  /** Sensors from the hardware layer (supervised: `health()` is used when present). */
  readonly sensors: readonly Sensor[];
  readonly outputs: readonly Output[];
  /** Digital inputs whose debounced edges become readings at once (between samples). */
  readonly inputs?: readonly DigitalInput[];
  /** Whether the agent calls `init()`/`close()` on sensors and outputs (false when the hardware layer does). */
  readonly manageDevices?: boolean;
  readonly clock: Clock;
  /** Created once the transport has started (the SDK shadow client needs the live MQTT client). */
  readonly createShadow?: () => ShadowService;
  readonly logger?: Logger;
  /** In [0, 1): jitter of the agent's own retries. Default Math.random. */
  readonly random?: () => number;
  /** Defaults to a random UUID: one per agent start. */
  readonly bootId?: string;
  readonly agentVersion?: string;
  /** What happened when the outbox file was opened (reported in logs at start). */
  readonly outboxRecovery?: OutboxRecovery;
  /** Applies a log level (desired `logLevel`); defaults to setting it on the agent's loggers. */
  readonly setLogLevel?: (level: LogLevel) => void;
  /**
   * The device's CPU, memory, temperature, load and uptime for `reported.health`; absent, the health
   * holds the connection's numbers only (reconnects, connection uptime, publish latency).
   */
  readonly hostStats?: HostStats;
}

export interface AgentStatus {
  readonly bootId: string;
  readonly connected: boolean;
  readonly readings: number;
  readonly sealedBatches: number;
  readonly inFlight: number;
  readonly outbox: ReturnType<Outbox['stats']>;
  readonly sensorErrors: number;
  readonly shadowVersion: number;
  readonly actual: ActualState;
  /** What IoT Core's quotas refused this agent since it started (all zero when it stays inside them). */
  readonly throttled: AgentThrottled;
  /** The newest health sample (`reported.health`); undefined before the first or with health off. */
  readonly health: HealthReport | undefined;
}

/** Requests of this agent the broker or the shadow service refused for a quota, since start. */
export interface AgentThrottled {
  /** Telemetry publishes refused with MQTT 5 PUBACK 0x97 QUOTA_EXCEEDED / 0x96 MESSAGE_RATE_TOO_HIGH. */
  readonly publishes: number;
  /** Telemetry publishes never acknowledged in time (how a throttled publish shows on MQTT 3.1.1). */
  readonly unacknowledged: number;
  /** Connects refused or connections ended for a quota (CONNACK/DISCONNECT 0x9F, 0x97, 0x96). */
  readonly connects: number;
  /** Shadow requests answered 429 (too many requests). */
  readonly shadow: number;
}

/** MQTT 5 reason codes of a CONNACK or DISCONNECT that say a quota was exceeded. */
const QUOTA_REASONS: ReadonlySet<number> = new Set([
  MQTT5_REASON.CONNECTION_RATE_EXCEEDED,
  MQTT5_REASON.QUOTA_EXCEEDED,
  MQTT5_REASON.MESSAGE_RATE_TOO_HIGH,
]);

export interface Agent {
  readonly bootId: string;
  start(): Promise<void>;
  /** SIGTERM path: stop sampling, seal the open batch, wait for in-flight acks (bounded), report offline, close. */
  stop(reason?: string): Promise<void>;
  status(): AgentStatus;
  /** Reconciles and reports now (also done on every connect and delta). */
  syncShadow(): Promise<void>;
  /**
   * Stops taking readings (sensor samples and digital-input edges) and seals the open batch into
   * the outbox, but stays connected: the outbox keeps being published and the shadow kept in sync.
   * Lets a load test end its measured window and still deliver its backlog. Idempotent; `stop()`
   * after it works as ever; there is no resume (a fresh agent samples again).
   */
  pauseSampling(): Promise<void>;
  /**
   * Applies settings of a `pifleet.config` job through the shadow's path (same validation, same
   * appliers, in the shadow's queue), all or nothing: when any key is invalid nothing is applied.
   * The shadow is told the new reported state.
   */
  applySettings(settings: unknown): Promise<SettingsResult>;
  /**
   * Resolves once the agent is healthy: connected, its shadow synced (a get reconciled and
   * reported, when it has a shadow) and every sensor read at least once. An agent update confirms
   * the new agent at that moment.
   */
  whenHealthy(): Promise<void>;
}

interface SensorState {
  readonly sensor: Sensor;
  intervalMs: number;
  timer: TimerHandle | undefined;
  errors: number;
  lastError: string | undefined;
  healthy: boolean;
  reading: boolean;
}

export function createAgent(deps: AgentDeps): Agent {
  const { config, transport, outbox, clock } = deps;
  const random = deps.random ?? Math.random;
  const bootId = deps.bootId ?? randomUUID();
  const agentVersion = deps.agentVersion ?? AGENT_VERSION;
  const base = deps.logger ?? silentLogger();
  // pino writes a binding once per child that adds it: `pifleet-agent run` already binds the thing
  // name at the root (its lines outside the agent carry it too), so it is added here only when missing.
  const root = base.child('thingName' in base.bindings() ? { bootId } : { thingName: config.thingName, bootId });
  const loggers: Logger[] = [root];
  const child = (component: string) => {
    const l = root.child({ component });
    loggers.push(l);
    return l;
  };
  const log = child('agent');
  const sampleLog = child('sampler');
  const shadowLog = child('shadow');
  const thing = config.thingName;
  const telemetryTopic = appTopics.telemetry(thing);
  const statusTopic = appTopics.status(thing);
  const documentsTopic = shadowTopics(thing).updateDocuments;

  const configured = new Map(config.sensors.map((s) => [s.id, s]));
  const sensors = new Map<string, SensorState>(
    deps.sensors.map((sensor) => [
      sensor.id,
      {
        sensor,
        intervalMs: configured.get(sensor.id)?.intervalMs ?? 10_000,
        timer: undefined,
        errors: 0,
        lastError: undefined,
        healthy: true,
        reading: false,
      },
    ]),
  );
  const outputs = new Map(deps.outputs.map((o) => [o.id, o]));
  const initialOutputs = new Map(config.outputs.map((o) => [o.id, o.initial]));
  let logLevel: LogLevel = config.logLevel;
  const batcher = new Batcher({
    thingName: thing,
    bootId,
    limits: { ...config.batch },
    encoding: config.telemetry.encoding,
  });
  const reconciler = new Reconciler();
  /**
   * Whether the shadow may still show a refused telemetry topic that has cleared: reports carry
   * `telemetry: null` until one is accepted (a shadow update merges, so leaving the key out would
   * leave the old reason standing).
   */
  let telemetryClearPending = false;
  const publisher = createPublisher({
    outbox,
    transport,
    topic: telemetryTopic,
    clock,
    logger: child('publisher'),
    maxInFlight: config.publish.maxInFlight,
    maxPerSecond: config.publish.maxPerSecond,
    maxBytesPerSecond: config.publish.maxBytesPerSecond,
    ackTimeoutMs: config.publish.ackTimeoutMs,
    refusedRetryMs: config.publish.refusedRetryMs,
    // The shadow says so at once (and again when it clears), not at the next periodic report.
    onBlockedChange: () => {
      if (!publisher.blocked()) telemetryClearPending = true;
      if (state === 'running') void enqueue('telemetry status', () => report());
    },
  });

  // Health goes out with the shadow reports: without a shadow there is nobody to tell.
  const health =
    config.health.intervalSeconds > 0 && deps.createShadow && config.shadow.enabled
      ? createHealthSampler({
          clock,
          intervalMs: config.health.intervalSeconds * 1000,
          hostStats: deps.hostStats,
          link: () => ({ reconnects, connectedSince, latency: publisher.latency() }),
          onSignificant: () => {
            if (state === 'running') void enqueue('health', () => report());
          },
          logger: child('health'),
        })
      : undefined;

  let state: 'idle' | 'running' | 'stopping' | 'stopped' = 'idle';
  /** False once `pauseSampling()` ran: no sample is scheduled and no reading is added any more. */
  let sampling = true;
  let startedAt = 0;
  let readings = 0;
  let sealedBatches = 0;
  let ageTimer: TimerHandle | undefined;
  /** The batch deadline `ageTimer` fires at. */
  let ageTimerAt: number | undefined;
  let reportTimer: TimerHandle | undefined;
  let shadow: ShadowService | undefined;
  let shadowQueue: Promise<void> = Promise.resolve();
  let connectsThrottled = 0;
  let shadowThrottled = 0;
  /** Connections after the first, and when the current one came up: `reported.health.connection`. */
  let reconnects = 0;
  let connectedSince: number | undefined;
  const throttled = (): AgentThrottled => {
    const p = publisher.throttling();
    return {
      publishes: p.throttled,
      unacknowledged: p.unacknowledged,
      connects: connectsThrottled,
      shadow: shadowThrottled,
    };
  };
  const cleanups: (() => void)[] = [];

  const setLogLevel =
    deps.setLogLevel ??
    ((level: LogLevel) => {
      for (const l of loggers) l.level = level;
    });

  // ---- telemetry ----------------------------------------------------------------------------
  /**
   * Sealed batches the outbox could not store (disk full, I/O error), oldest first: kept in memory
   * and stored before the next one, so a write failure delays a batch instead of losing it. Their
   * readings also stay in the outbox's journal, so a crash meanwhile loses no more than the journal
   * failed to write. Bounded by the outbox's own byte bound.
   */
  const reportDropped = (r: Dropped) => {
    if (r.droppedBatches === 0) return;
    log.warn(
      { droppedBatches: r.droppedBatches, droppedReadings: r.droppedReadings },
      'outbox full; dropped the oldest batches',
    );
  };
  const unstored: SealedBatch[] = [];
  let unstoredBytes = 0;
  let writeFailures = 0;
  const store = (batch: SealedBatch | undefined) => {
    if (batch) {
      sealedBatches += 1;
      unstored.push(batch);
      unstoredBytes += batch.bytes;
    }
    while (unstored.length > 0) {
      const next = unstored[0] as SealedBatch;
      try {
        reportDropped(outbox.put(next));
      } catch (err) {
        writeFailures += 1;
        if (writeFailures === 1 || writeFailures % 100 === 0)
          log.error(
            { err, seq: next.seq, waiting: unstored.length, failures: writeFailures },
            'outbox write failed; batch kept in memory',
          );
        while (unstoredBytes > config.outbox.maxBytes && unstored.length > 1) {
          const lost = unstored.shift() as SealedBatch;
          unstoredBytes -= lost.bytes;
          log.error({ seq: lost.seq, readings: lost.readings }, 'outbox unwritable past its bound; batch lost');
        }
        return;
      }
      unstored.shift();
      unstoredBytes -= next.bytes;
    }
    publisher.kick();
  };

  /**
   * One age timer per open batch, not one per reading: the deadline moves only when a batch is
   * sealed or the limits change, so a reading that leaves it where it is keeps the armed timer
   * (at 5 readings/s, clearing and making a timer and its closure for each was most of what a
   * reading allocated besides the reading itself).
   */
  const armAgeTimer = () => {
    const deadline = state === 'running' ? batcher.deadline() : undefined;
    if (ageTimer !== undefined && deadline === ageTimerAt) return;
    if (ageTimer !== undefined) clock.clearTimeout(ageTimer);
    ageTimer = undefined;
    ageTimerAt = deadline;
    if (deadline === undefined) return;
    ageTimer = clock.setTimeout(onBatchAge, Math.max(0, deadline - clock.now()));
  };
  const onBatchAge = () => {
    ageTimer = undefined;
    store(batcher.sealIfDue(clock.now()));
    armAgeTimer();
  };

  let journalFailures = 0;
  /**
   * Every reading is persisted as it is taken: one that stays in the open batch goes to the outbox's
   * journal (no fsync by default: it survives a process kill), one that completes a batch goes to
   * the outbox inside that batch. The trace line says the reading is stored.
   */
  const addReading = (reading: Reading) => {
    readings += 1;
    const json = JSON.stringify(reading);
    const bytes = utf8Length(json);
    for (const b of batcher.add(reading, clock.now(), bytes + 1)) store(b);
    if (batcher.pending > 0) {
      try {
        reportDropped(outbox.journal({ bootId, seq: batcher.nextSeq, reading, json, bytes }));
      } catch (err) {
        // The reading stays in the open batch in memory and is stored when it is sealed.
        journalFailures += 1;
        if (journalFailures === 1 || journalFailures % 100 === 0)
          sampleLog.warn({ err, failures: journalFailures }, 'reading not journaled; kept in memory until sealed');
      }
    }
    // Checked first: the trace line's fields would otherwise be allocated for every reading, logged or not.
    if (sampleLog.isLevelEnabled('trace')) sampleLog.trace({ sensor: reading.sensor, ts: reading.ts }, 'reading');
    armAgeTimer();
  };

  /**
   * Seals the readings a stopped process left in the journal, each group under the batch identity it
   * was journaled with: that batch was never stored (storing it deletes its journal rows in the same
   * transaction), so never sent, and `(bootId, seq)` names no other content anywhere.
   */
  const recoverJournal = () => {
    let groups: ReturnType<Outbox['unsealed']>;
    try {
      groups = outbox.unsealed();
    } catch (err) {
      log.error({ err }, 'outbox journal unreadable; unsealed readings of an earlier run not recovered');
      return;
    }
    for (const g of groups) {
      if (g.unreadable > 0)
        log.error({ bootId: g.bootId, seq: g.seq, unreadable: g.unreadable }, 'journal rows unreadable');
      if (g.readings.length === 0) continue;
      store(
        sealBatch({
          thingName: thing,
          bootId: g.bootId,
          seq: g.seq,
          readings: g.readings,
          now: clock.now(),
          encoding: batcher.encoding,
        }),
      );
      log.info(
        { bootId: g.bootId, seq: g.seq, readings: g.readings.length },
        'unsealed readings of an earlier run recovered',
      );
    }
  };

  const sampleOnce = async (s: SensorState) => {
    if (s.reading) return;
    s.reading = true;
    try {
      const metrics = await s.sensor.read();
      if (state !== 'running' || !sampling) return;
      s.healthy = true;
      sensorsRead.add(s.sensor.id);
      checkHealthy();
      addReading({ sensor: s.sensor.id, ts: clock.now(), metrics: { ...metrics } });
    } catch (err) {
      s.errors += 1;
      s.healthy = false;
      s.lastError = `${(err as { code?: string }).code ?? 'ERROR'}: ${(err as Error).message}`;
      if (s.errors === 1 || s.errors % 100 === 0)
        sampleLog.warn({ err, sensor: s.sensor.id, errors: s.errors }, 'sensor read failed');
    } finally {
      s.reading = false;
    }
  };

  /**
   * Fixed-rate sampling: the next sample is due one interval after the previous one started, so a
   * sensor's conversion time (up to ~100 ms for a BME280 at 16× oversampling) does not stretch the
   * period. A read that overruns its interval is followed by the next one at once, never by a burst.
   */
  const scheduleSensor = (s: SensorState, delayMs = s.intervalMs) => {
    if (state !== 'running' || !sampling) return;
    s.timer = clock.setTimeout(() => {
      s.timer = undefined;
      const startedAt = clock.now();
      void sampleOnce(s).finally(() => scheduleSensor(s, Math.max(0, startedAt + s.intervalMs - clock.now())));
    }, delayMs);
  };

  // ---- desired state ------------------------------------------------------------------------
  const actual = (): ActualState => {
    const sampling: Record<string, number> = {};
    for (const [id, s] of sensors) sampling[id] = s.intervalMs;
    const outs: Record<string, boolean> = {};
    for (const [id, o] of outputs) outs[id] = safeGet(o, initialOutputs.get(id) ?? false);
    return { sampling, batch: batcher.limits, outputs: outs, logLevel };
  };

  const apply = async (change: Change): Promise<RejectedDesired | undefined> => {
    switch (change.kind) {
      case 'sampling': {
        const s = sensors.get(change.sensorId);
        if (!s) return { path: change.path, value: change.intervalMs, reason: 'no such sensor' };
        s.intervalMs = change.intervalMs;
        if (s.timer !== undefined) {
          clock.clearTimeout(s.timer);
          s.timer = undefined;
          scheduleSensor(s);
        }
        return undefined;
      }
      case 'batch': {
        const limits: BatchLimits = change.limits;
        store(batcher.setLimits(limits, clock.now()));
        armAgeTimer();
        return undefined;
      }
      case 'output': {
        const o = outputs.get(change.outputId);
        if (!o) return { path: change.path, value: change.on, reason: 'no such output' };
        try {
          await o.set(change.on);
          return undefined;
        } catch (err) {
          return { path: change.path, value: change.on, reason: `could not switch: ${(err as Error).message}` };
        }
      }
      case 'logLevel':
        logLevel = change.level;
        setLogLevel(change.level);
        return undefined;
    }
  };

  const sensorReports = (): Record<string, SensorReport> => {
    const out: Record<string, SensorReport> = {};
    for (const [id, s] of sensors) {
      const health = (s.sensor as { health?: () => SensorHealth }).health?.();
      const healthy = health ? health.status !== 'unhealthy' : s.healthy;
      const lastError = health?.lastError ? `${health.lastError.code}: ${health.lastError.message}` : s.lastError;
      out[id] = {
        driver: s.sensor.driver,
        healthy,
        intervalMs: s.intervalMs,
        errors: s.errors,
        ...(lastError && !healthy ? { lastError } : {}),
      };
    }
    return out;
  };

  const reportedNow = (rejected: ReturnType<Reconciler['commit']> | undefined, healthNow: HealthReport | undefined) => {
    const a = actual();
    return buildReported(
      {
        agentVersion,
        bootId,
        startedAt,
        now: clock.now(),
        sensors: sensorReports(),
        outputs: a.outputs,
        batch: a.batch,
        logLevel,
        outbox: outbox.stats(),
        ...telemetryReport(),
        throttled: throttled(),
        health: healthNow,
      },
      rejected,
    );
  };

  const telemetryReport = () => {
    const blocked = publisher.blocked();
    if (blocked) return { telemetry: blocked };
    return telemetryClearPending ? { telemetry: null } : {};
  };

  const report = async (rejected?: ReturnType<Reconciler['commit']>) => {
    if (!shadow || !transport.isConnected) return;
    const clearing = telemetryClearPending && !publisher.blocked();
    const healthNow = health?.unreported();
    await shadow.updateReported(reportedNow(rejected, healthNow));
    if (healthNow) health?.reported(healthNow);
    if (clearing && !publisher.blocked()) telemetryClearPending = false;
  };

  /**
   * `get`: the whole shadow (on connect), always answered with a report. `recheck`: the whole
   * desired state (a get or an `/update/documents` message while a rejection stands), answered
   * only when something changed. `delta`: a delta, answered only when something changed.
   */
  type Source = 'get' | 'recheck' | 'delta';

  const reconcile = async (desired: unknown, version: number, source: Source, reportedRejected?: unknown) => {
    const full = source !== 'delta';
    if (source === 'get') reconciler.seedReportedRejections(reportedRejected);
    const plan = reconciler.plan(
      desired,
      version,
      actual(),
      {
        sensors: new Set(sensors.keys()),
        outputs: new Set(outputs.keys()),
      },
      full,
    );
    if (!plan) {
      shadowLog.debug({ version }, 'stale shadow version ignored');
      return;
    }
    const failed: RejectedDesired[] = [];
    for (const change of plan.changes) {
      const f = await apply(change);
      if (f) failed.push(f);
    }
    const patch = reconciler.commit(plan, failed);
    if (plan.changes.length > 0 || plan.rejected.length > 0 || failed.length > 0) {
      shadowLog.info(
        { version, applied: plan.changes.length - failed.length, rejected: plan.rejected.length + failed.length },
        'desired state reconciled',
      );
    }
    // AWS IoT publishes a delta after every accepted update while desired and reported differ,
    // the agent's own reports included. A delta that changes nothing here (a standing rejection)
    // is not answered, or a rejected key would make device and shadow echo each other forever.
    watchRejections();
    if (source !== 'get' && plan.changes.length === 0 && failed.length === 0 && patch === undefined) return;
    await report(patch);
  };

  // A delta lists only desired keys that differ from reported: removing a rejected desired key, or
  // setting it to the value already reported, publishes no delta for it, so its rejection would
  // stand until the next get. While any rejection stands the agent follows `/update/documents`
  // (the whole desired state after every update) and re-checks when desired changed; with none
  // standing it unsubscribes, so a healthy device does not receive a document per own report.
  let watching = false;
  let watchBusy = false;
  const onDocuments = (_topic: string, payload: Uint8Array) => {
    if (state !== 'running' || reconciler.rejected.size === 0) return;
    let change: ReturnType<typeof desiredChangeOf>;
    try {
      change = desiredChangeOf(JSON.parse(Buffer.from(payload).toString('utf8')));
    } catch (err) {
      shadowLog.warn({ err }, 'unreadable shadow documents message ignored');
      return;
    }
    if (!change) return;
    const { desired, version } = change;
    void enqueue('documents', () => reconcile(desired, version, 'recheck'));
  };
  function watchRejections(): void {
    if (watchBusy) return;
    const want = state === 'running' && reconciler.rejected.size > 0;
    if (want === watching) return;
    watchBusy = true;
    const op = want ? transport.subscribe(documentsTopic, 1, onDocuments) : transport.unsubscribe(documentsTopic);
    op.then(
      () => {
        watching = want;
        watchBusy = false;
        // A key removed between the reconcile that rejected it and this subscription taking
        // effect published nothing we saw: read the whole desired state once more.
        if (want) void syncShadow('recheck');
        watchRejections();
      },
      (err: unknown) => {
        // Tried again after the next reconcile (every connect does one).
        watchBusy = false;
        shadowLog.warn({ err, subscribe: want }, 'shadow documents subscription change failed');
      },
    );
  }

  /**
   * Runs shadow work one item at a time; failures are logged and retried on the next connect. A
   * rejection is the service refusing what this agent sent (its code says why: a document too
   * large or too deep, throttling), a timeout is a connection that answers nothing: the log names
   * which, so the two are not mistaken for each other.
   */
  const enqueue = (what: string, job: () => Promise<void>) => {
    shadowQueue = shadowQueue.then(job).catch((err: unknown) => {
      if (err instanceof ShadowRejectedError) {
        shadowLog.warn({ err, what, serviceCode: err.serviceCode }, 'shadow request rejected');
      } else if (err instanceof ShadowTimeoutError) {
        shadowLog.warn({ err, what, timeoutMs: err.timeoutMs }, 'shadow request timed out');
      } else shadowLog.warn({ err, what }, 'shadow sync step failed');
    });
    return shadowQueue;
  };

  const syncShadow = (source: 'get' | 'recheck' = 'get') =>
    enqueue(source, async () => {
      if (!shadow || !transport.isConnected) return;
      const doc = await shadow.get();
      const reportedRejected = (doc?.reported as { rejected?: unknown } | undefined)?.rejected;
      await reconcile(doc?.desired ?? {}, doc?.version ?? 0, source, reportedRejected);
      if (source === 'get') {
        shadowSynced = true;
        connectionSynced = true;
        checkHealthy();
      }
    });

  // The get of each connection is tried until it succeeds (or the connection ends): a throttled
  // subscription or a lost answer would otherwise leave the desired state unread until the next
  // connect, and an agent update waiting for health would roll back a healthy release.
  let connectionSynced = false;
  let syncFailures = 0;
  let syncTimer: TimerHandle | undefined;
  const cancelSyncRetry = () => {
    if (syncTimer !== undefined) clock.clearTimeout(syncTimer);
    syncTimer = undefined;
  };
  const syncOnConnect = async () => {
    cancelSyncRetry();
    await syncShadow();
    if (connectionSynced || state !== 'running' || !transport.isConnected || !shadow) return;
    const delayMs = exponentialBackoff(syncFailures++, SHADOW_SYNC_RETRY, random);
    shadowLog.info(
      { retryInMs: delayMs, failures: syncFailures },
      'shadow not synced on this connection; trying again',
    );
    syncTimer = clock.setTimeout(() => {
      syncTimer = undefined;
      void syncOnConnect();
    }, delayMs);
  };

  // ---- health (what an agent update waits for before it confirms the new agent) ---------------
  const sensorsRead = new Set<string>();
  let shadowSynced = false;
  const healthyWaiters: (() => void)[] = [];
  function checkHealthy(): void {
    if (healthyWaiters.length === 0 || !isHealthy()) return;
    for (const resolve of healthyWaiters.splice(0)) resolve();
  }
  function isHealthy(): boolean {
    const shadowOk = shadowSynced || !deps.createShadow || !config.shadow.enabled;
    return state === 'running' && transport.isConnected && shadowOk && sensorsRead.size >= sensors.size;
  }

  // ---- settings from config jobs ---------------------------------------------------------------
  const applySettings = async (settings: unknown): Promise<SettingsResult> => {
    let result: SettingsResult | undefined;
    const { accepted } = splitDesired(settings);
    await enqueue('config job', async () => {
      const known = { sensors: new Set(sensors.keys()), outputs: new Set(outputs.keys()) };
      // A planner of its own: a job is not a shadow version, and its rejections are its own answer.
      const plan = new Reconciler().plan(settings, 0, actual(), known, false);
      if (!plan) return;
      if (plan.rejected.length > 0) {
        result = { rejected: plan.rejected, changed: [], failed: [], accepted };
        return;
      }
      const failed: RejectedDesired[] = [];
      const changed: string[] = [];
      for (const change of plan.changes) {
        const f = await apply(change);
        if (f) failed.push(f);
        else if (change.kind === 'batch') changed.push(...plan.acceptedPaths.filter((p) => p.startsWith('batch.')));
        else changed.push(change.path);
      }
      result = { rejected: [], changed, failed, accepted };
      if (changed.length > 0) await report();
    });
    if (!result)
      throw new AgentError('SETTINGS_NOT_APPLIED', 'the settings could not be applied (the agent logged why)');
    return result;
  };

  const armReportTimer = () => {
    reportTimer = clock.setTimeout(() => {
      reportTimer = undefined;
      void enqueue('periodic report', () => report()).finally(() => {
        if (state === 'running') armReportTimer();
      });
    }, config.shadow.reportIntervalMs);
  };

  // ---- status --------------------------------------------------------------------------------
  const statusPayload = (online: boolean, reason?: string): string => {
    const msg: StatusMessage = {
      thingName: thing,
      state: online ? 'online' : 'offline',
      bootId,
      ts: clock.now(),
      agentVersion,
      ...(reason ? { reason } : {}),
    };
    return JSON.stringify(msg);
  };

  return {
    bootId,
    async start() {
      if (state !== 'idle') return;
      state = 'running';
      startedAt = clock.now();
      if (deps.outboxRecovery) {
        log.error({ ...deps.outboxRecovery }, 'outbox file was damaged; moved aside and kept what was readable');
      }
      recoverJournal();
      const backlog = outbox.stats();
      log.info({ depth: backlog.depth, dropped: backlog.dropped, protocol: transport.protocol }, 'agent starting');
      const manage = deps.manageDevices ?? true;
      if (manage) {
        for (const o of outputs.values()) {
          try {
            await o.init();
          } catch (err) {
            log.error({ err, output: o.id }, 'output init failed');
          }
        }
        for (const s of sensors.values()) {
          try {
            await s.sensor.init();
          } catch (err) {
            s.healthy = false;
            s.lastError = (err as Error).message;
            log.warn({ err, sensor: s.sensor.id }, 'sensor init failed; will retry');
          }
        }
      }
      for (const input of deps.inputs ?? []) {
        cleanups.push(
          input.onEvent((e) => {
            if (state === 'running' && sampling) {
              addReading({ sensor: input.id, ts: e.ts, metrics: { state: e.state, count: e.count } });
            }
          }),
        );
      }
      // A refusal for a quota (connect rate, message rate) is counted; the transport's backoff
      // already keeps its CONNECTs at least a second apart (1 CONNECT/s per client id).
      const countQuota = (error: Error) => {
        const reason = reasonOf(error);
        if (reason && QUOTA_REASONS.has(reason.reasonCode)) {
          connectsThrottled += 1;
          log.warn(
            { ...reason, connectsThrottled },
            'the broker refused or ended the connection for a quota; backing off',
          );
        }
      };
      cleanups.push(
        transport.on('connectFailed', ({ error }) => countQuota(error)),
        transport.on('connected', ({ first }) => {
          if (!first) reconnects += 1;
          connectedSince = clock.now();
          transport.publish(statusTopic, statusPayload(true), { qos: 1, retain: true }).catch((err: unknown) => {
            log.warn({ err }, 'online status not published');
          });
          publisher.kick();
          checkHealthy();
          connectionSynced = false;
          syncFailures = 0;
          void syncOnConnect();
        }),
        transport.on('interrupted', ({ error }) => {
          connectedSince = undefined;
          cancelSyncRetry();
          const reason = reasonOf(error);
          if (reason?.reasonCode === MQTT5_REASON.SESSION_TAKEN_OVER) {
            // IoT Core ends the older of two connections with one client id. Two agents with the
            // same thing name (a copied bundle) take the connection from each other for ever.
            log.error(
              { ...reason, clientId: transport.clientId },
              'another client connected with this client id and took over the connection (SESSION_TAKEN_OVER): is this bundle running on a second device? telemetry stays in the outbox',
            );
          } else log.warn({ ...reason }, 'connection lost; telemetry stays in the outbox');
          countQuota(error);
        }),
      );
      transport.start();
      if (deps.createShadow && config.shadow.enabled) {
        shadow = createQuotaShadow({
          shadow: deps.createShadow(),
          clock,
          logger: root,
          onThrottled: () => {
            shadowThrottled += 1;
          },
        });
        cleanups.push(
          shadow.onDelta((delta) => {
            void enqueue('delta', () => reconcile(delta.state, delta.version, 'delta'));
          }),
          // A delta published while the stream was not subscribed (throttled) never arrives.
          shadow.onStreamRestored(() => {
            if (transport.isConnected) void syncShadow('recheck');
          }),
        );
        armReportTimer();
      }
      health?.start();
      for (const s of sensors.values()) scheduleSensor(s);
    },
    async stop(reason = 'shutdown') {
      if (state !== 'running') {
        state = 'stopped';
        return;
      }
      state = 'stopping';
      for (const s of sensors.values()) if (s.timer !== undefined) clock.clearTimeout(s.timer);
      if (ageTimer !== undefined) clock.clearTimeout(ageTimer);
      ageTimer = undefined;
      if (reportTimer !== undefined) clock.clearTimeout(reportTimer);
      health?.stop();
      cancelSyncRetry();
      for (const c of cleanups.splice(0)) c();
      store(batcher.seal(clock.now()));
      if (unstored.length > 0) {
        log.error(
          { batches: unstored.length, readings: unstored.reduce((n, b) => n + b.readings, 0) },
          'batches the outbox could not store at stop; what its journal holds of them is recovered at the next start',
        );
      }
      const acked = await publisher.drain(config.shutdownTimeoutMs);
      if (transport.isConnected) {
        try {
          const timeoutMs = Math.max(1_000, config.shutdownTimeoutMs);
          await withTimeout(
            clock,
            timeoutMs,
            transport.publish(statusTopic, statusPayload(false, reason), { qos: 1, retain: true }),
            () => new TransportError('PUBLISH_TIMEOUT', 'offline status publish timed out', { data: { timeoutMs } }),
          );
        } catch (err) {
          log.warn({ err }, 'offline status not published');
        }
      }
      shadow?.close();
      await transport.stop();
      const left = outbox.stats();
      outbox.close();
      if (deps.manageDevices ?? true) {
        for (const s of sensors.values()) await s.sensor.close().catch(() => undefined);
        for (const o of outputs.values()) await o.close().catch(() => undefined);
      }
      state = 'stopped';
      log.info({ inFlightAcked: acked, depth: left.depth, sent: left.sent, reason }, 'agent stopped');
    },
    status() {
      const ob = state === 'stopped' ? { depth: 0, bytes: 0, dropped: 0, droppedReadings: 0, sent: 0 } : outbox.stats();
      let sensorErrors = 0;
      for (const s of sensors.values()) sensorErrors += s.errors;
      return {
        bootId,
        connected: transport.isConnected,
        readings,
        sealedBatches,
        inFlight: publisher.inFlight,
        outbox: ob,
        sensorErrors,
        shadowVersion: reconciler.version,
        actual: actual(),
        throttled: throttled(),
        health: health?.latest(),
      };
    },
    syncShadow: () => syncShadow(),
    applySettings,
    whenHealthy() {
      if (isHealthy()) return Promise.resolve();
      return new Promise<void>((resolve) => healthyWaiters.push(resolve));
    },
    async pauseSampling() {
      if (state !== 'running' || !sampling) return;
      sampling = false;
      for (const s of sensors.values()) {
        if (s.timer !== undefined) clock.clearTimeout(s.timer);
        s.timer = undefined;
      }
      if (ageTimer !== undefined) clock.clearTimeout(ageTimer);
      ageTimer = undefined;
      // The open batch goes to the outbox now, not when its age runs out: nothing will fill it.
      store(batcher.seal(clock.now()));
      log.info({ readings, sealedBatches }, 'sampling paused; the outbox is still published');
    },
  };
}

/** The MQTT 5 reason code and its name a transport error carries (a broker's DISCONNECT), if any. */
function reasonOf(err: Error): { reasonCode: number; reason: string } | undefined {
  const data = (err as { data?: { reasonCode?: unknown; reason?: unknown } }).data;
  return typeof data?.reasonCode === 'number' && typeof data.reason === 'string'
    ? { reasonCode: data.reasonCode, reason: data.reason }
    : undefined;
}

function safeGet(o: Output, fallback: boolean): boolean {
  try {
    return o.get();
  } catch {
    return fallback;
  }
}
