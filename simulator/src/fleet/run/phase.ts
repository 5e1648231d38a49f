import { releaseFaultPlan } from '../../jobs/fault-plan.js';
import { createCommandLoad } from '../command-load.js';
import type { HostEvent, HostFinal } from '../host.js';
import { type FleetOptions, SIM_INITIAL_VERSION } from '../options.js';
import { createHostPool, type HostPool } from '../pool.js';
import type { FleetIdentity } from '../provision.js';
import { throttlesBetween } from '../quotas-readback.js';
import type { FleetResult, PhaseResult, RolloutResult } from '../result.js';
import { summarizePhase, total } from '../summary.js';
import { injectFaults } from './faults.js';
import { measureWindow } from './measure.js';
import { type PhaseMonitor, startPhaseMonitor } from './monitor.js';
import type { PhaseTarget } from './phase-target.js';
import { waitForRamp } from './ramp.js';
import { readLatency, waitForStored } from './read-back.js';
import { followRollout, type RolloutFollowed, type RolloutTarget } from './rollout.js';
import { waitUntilSettled } from './settle.js';

export interface PhaseContext {
  readonly options: FleetOptions;
  readonly say: (line: string, final: boolean) => void;
  readonly signal: AbortSignal | undefined;
}

/** A run's context: the phase context, and the run's id and thing-name prefix. */
export interface RunContext extends PhaseContext {
  readonly runId: string;
  /** `<prefix>-<runId>`: every thing of the run is named `<thingPrefix>-NNNNN`. */
  readonly thingPrefix: string;
}

/** What a run against one kind of target collected, before the run's summary. */
export interface RunOutcome {
  readonly phases: readonly PhaseResult[];
  readonly provisioning: FleetResult['provisioning'];
  readonly cleanup: FleetResult['cleanup'];
}

/**
 * One phase of a run: the whole fleet against one target. Starts the device hosts, ramps,
 * measures (commands throughout, faults half-way), stops sampling and lets the fleet deliver its
 * backlog, stops the agents, reads back what was stored, and summarizes.
 */
export async function runPhase(
  target: PhaseTarget,
  identities: readonly FleetIdentity[],
  ctx: PhaseContext,
): Promise<PhaseResult> {
  const { options: o, say, signal } = ctx;
  const names = identities.map((id) => id.thingName);
  let commandLoad: ReturnType<typeof createCommandLoad> | undefined;
  const connected = new Set<string>();
  const ramped = new Set<number>();
  const pool = createDeviceHosts(target, identities, o, (e) => {
    if (e.type === 'ramped') ramped.add(e.hostId);
    else {
      connected.add(e.thingName);
      commandLoad?.observe(e.thingName, e.outputs, e.at);
    }
  });
  // The core's counters before the phase, so the phase reports its own breaches (an external core
  // may have counted some before); unreadable means not available, never a failed run.
  const readThrottles = async () => target.readThrottles?.().catch(() => undefined);
  const throttlesBefore = await readThrottles();
  const t0 = Date.now();
  const monitor: PhaseMonitor = startPhaseMonitor({ name: target.name, pool, devices: o.devices, t0, say });
  try {
    await pool.start();
    const rampEnd = await waitForRamp({
      pool,
      monitor,
      ramped,
      devices: o.devices,
      rampPerSecond: o.rampPerSecond,
      t0,
      signal,
    });
    const cpuStart = monitor.cpuNow(await pool.snapshot());
    if (target.command && o.commandRate > 0) {
      commandLoad = createCommandLoad({
        target: target.command,
        ratePerSecond: o.commandRate,
        things: names,
        eligible: (t) => connected.has(t),
      });
      commandLoad.start();
    }
    let faults: Awaited<ReturnType<typeof injectFaults>> = { outcomes: [], failedThings: [] };
    let followed: RolloutFollowed | undefined;
    // With a job, the measured window is the rollout: from CreateJob until it has ended.
    const rolloutTarget = target.rollout;
    const measureEnd = rolloutTarget
      ? await followRollout({ target: rolloutTarget, devices: o.devices, signal, say, name: target.name }).then((f) => {
          followed = f;
          return Date.now();
        })
      : await measureWindow({
          rampEnd,
          durationS: o.durationS,
          signal,
          atMiddle: async () => {
            faults = await injectFaults({
              faults: target.faults,
              local: target.local,
              pool,
              names,
              devices: o.devices,
              intervalMs: o.intervalMs,
              t0,
            });
          },
        });
    const atEnd = await monitor.refresh();
    const cpuEnd = monitor.cpuNow(atEnd);
    const fleetRssEndBytes = monitor.fleetRss(atEnd);
    const commands = commandLoad ? await commandLoad.stop(10_000) : undefined;
    if (faults.failedThings.length > 0) await pool.syncShadow(faults.failedThings);
    // The measured window is over: the devices stop generating and deliver what they hold, so the
    // settle can wait for every outbox to be empty (a backlog built over the publish quota drains
    // instead of growing until the agents stop). "generated" counts readings up to here.
    await pool.pauseSampling();
    const settled = await waitUntilSettled({ pool, monitor, timeoutS: o.drainTimeoutS, signal });
    say(
      settled.quiet
        ? `[${target.name}] sampling stopped; every outbox empty after ${settled.seconds.toFixed(1)} s`
        : `[${target.name}] sampling stopped; ${settled.outboxDepth} batches still in outboxes after ${settled.seconds.toFixed(1)} s (drain timeout ${o.drainTimeoutS} s)`,
      true,
    );

    say(`[${target.name}] stopping ${o.devices} agents`, false);
    await monitor.stop();
    const finals = await pool.stop();
    const stoppedAt = Date.now();
    const stored = await waitForStored(target, {
      published: total(finals, (s) => s.published),
      things: names,
      timeoutS: o.drainTimeoutS,
    });
    const drainedAt = Date.now();
    const latency = readLatency(target, { things: names, latencyThings: o.latencyThings });
    const throttlesAfter = await readThrottles();

    const summary = summarizePhase({
      name: target.name,
      devices: o.devices,
      deviceHosts: { mode: pool.mode, hosts: pool.hosts, transport: o.transport, protocol: o.protocol },
      times: { t0, rampEnd, measureEnd, stoppedAt, drainedAt },
      series: monitor.series,
      latest: monitor.latest,
      finals,
      stored,
      latency,
      commands,
      cpu: { start: cpuStart, end: cpuEnd },
      memory: {
        rssMaxBytes: monitor.rssMaxBytes,
        rssEndBytes: process.memoryUsage().rss,
        fleetRssMaxBytes: monitor.fleetRssMaxBytes,
        fleetRssEndBytes,
      },
      coreEventLoop: monitor.eventLoop(),
      faults: faults.outcomes,
      failedThings: faults.failedThings,
      coreThrottles: throttlesAfter ? throttlesBetween(throttlesBefore, throttlesAfter) : undefined,
    });
    const result: PhaseResult =
      followed && rolloutTarget ? { ...summary, rollout: rolloutOf(followed, rolloutTarget, finals) } : summary;
    const t = result.telemetry;
    say(
      `[${target.name}] generated ${t.generated}  published ${t.published}  stored ${t.stored}  lost ${t.lost}`,
      true,
    );
    return result;
  } catch (err) {
    monitor.close();
    await pool.terminate().catch(() => undefined);
    throw err;
  } finally {
    monitor.close();
  }
}

/** The device hosts of a phase: every identity as a device with the run's telemetry profile, seeded per device. */
function createDeviceHosts(
  target: PhaseTarget,
  identities: readonly FleetIdentity[],
  o: FleetOptions,
  onEvent: (e: HostEvent) => void,
): HostPool {
  const plan = target.rollout ? releaseFaultPlan(identities.length, target.rollout.options) : undefined;
  return createHostPool({
    workers: o.workers,
    endpoint: target.endpoint,
    port: target.port,
    caFile: target.caFile,
    profile: {
      ...(o.publishPerSecond === undefined ? {} : { publishPerSecond: o.publishPerSecond }),
      sensors: o.sensors,
      intervalMs: o.intervalMs,
      batchReadings: o.batchReadings,
      batchAgeMs: o.batchAgeMs,
      shadow: target.shadow,
      reconnectMaxMs: o.reconnectMaxMs,
      transport: o.transport,
      protocol: o.protocol,
      ...(target.rollout
        ? {
            jobs: {
              publicKeys: target.rollout.job.publicKeys,
              initialVersion: SIM_INITIAL_VERSION,
              healthDeadlineMs: target.rollout.options.healthDeadlineMs,
              installMs: target.rollout.options.installMs,
            },
          }
        : {}),
    },
    devices: identities.map((id, i) => ({
      thingName: id.thingName,
      certFile: id.certFile,
      keyFile: id.keyFile,
      seed: `${o.seed}-${i}`,
      ...(plan ? { releaseFaults: plan[i] ?? [] } : {}),
    })),
    rampPerSecond: o.rampPerSecond,
    onEvent,
  });
}

/** The rollout's result: the job's side, the planned faults, and every device's final version. */
function rolloutOf(followed: RolloutFollowed, target: RolloutTarget, finals: readonly HostFinal[]): RolloutResult {
  const plan = releaseFaultPlan(
    finals.reduce((n, f) => n + f.devices, 0),
    target.options,
  );
  const count = (fault: string) => plan.filter((faults) => faults.some((f) => f === fault)).length;
  const versions: Record<string, number> = {};
  let withoutWorkingVersion = 0;
  let restarts = 0;
  let total = 0;
  for (const f of finals) {
    for (const d of f.jobs ?? []) {
      total += 1;
      versions[d.version] = (versions[d.version] ?? 0) + 1;
      if (!d.working) withoutWorkingVersion += 1;
      restarts += d.restarts;
    }
  }
  return {
    ...followed,
    plannedFaults: { unhealthy: count('unhealthy'), crashInstall: count('crash-install'), corrupt: count('corrupt') },
    devices: { total, versions, withoutWorkingVersion, restarts },
  };
}
