import type { AgentRuntimeDeps, Clock, TimerHandle } from '@pifleet/device-agent';
import {
  type AgentUpdateDocument,
  checkReleaseArtifact,
  isReleaseVersion,
  verifyReleaseManifest,
} from '@pifleet/protocol';

/** The agent's updater port, as the runtime takes it (`device-agent/src/jobs/update-job.ts`). */
export type AgentUpdater = NonNullable<NonNullable<AgentRuntimeDeps['jobs']>['updater']>;
type UpdaterResult = Awaited<ReturnType<AgentUpdater['install']>>;
type FinalResult = Exclude<UpdaterResult, { status: 'RESTARTING' }>;
type UpdaterResume = Awaited<ReturnType<AgentUpdater['onStart']>>;

/**
 * What goes wrong with a release on one device:
 * - `unhealthy`: the new agent never proves healthy; at the deadline the updater rolls back to the
 *   previous version and restarts, and the job FAILS;
 * - `crash-install`: the device loses power once in the middle of the install; the agent restarts,
 *   the runner resumes the execution from its persisted step and the install starts over;
 * - `corrupt`: the downloaded tarball does not match the signed manifest's SHA-256: REJECTED.
 */
export type ReleaseFault = 'unhealthy' | 'crash-install' | 'corrupt';
export const RELEASE_FAULTS: readonly ReleaseFault[] = ['unhealthy', 'crash-install', 'corrupt'];

/**
 * A release version can carry faults for every device that installs it, as prerelease identifiers
 * `sim-unhealthy`, `sim-crash-install`, `sim-corrupt` (e.g. `2.0.0-sim-unhealthy`): a test or a
 * demo ships a bad release without a per-device plan.
 */
export function versionFaults(version: string): ReleaseFault[] {
  if (!isReleaseVersion(version)) return [];
  const pre = /^[^-+]*-([^+]*)/.exec(version)?.[1] ?? '';
  const ids = new Set(pre.split('.'));
  return RELEASE_FAULTS.filter((f) => ids.has(`sim-${f}`));
}

/** Why the simulated agent process ends: systemd restarts it after a switch or a rollback, or power is cut. */
export type RestartReason = 'switched' | 'rolled-back' | 'power-cut';

export interface RunningVersion {
  readonly version: string;
  /** false only while a release that cannot become healthy runs (the deadline rolls it back). */
  readonly working: boolean;
}

export interface SimulatedUpdaterDeps {
  /** The version the device runs before any update (its factory install). */
  readonly initialVersion: string;
  /** `update.publicKeys` of the agent config: the signature is checked for real. */
  readonly publicKeys: readonly string[];
  /** This device's faults (its share of the fleet's plan); the version's own are added. */
  readonly faults: ReadonlySet<ReleaseFault>;
  readonly clock: Clock;
  /** How long a new agent has to prove healthy after the switch. */
  readonly healthDeadlineMs: number;
  /** Simulated download + unpack time. Default 0. */
  readonly installMs?: number;
  /** Ends the simulated agent process (gracefully, as systemd would) and starts a new one. Called once per restart. */
  readonly restart: (reason: RestartReason) => void;
}

export interface SimulatedUpdater extends AgentUpdater {
  /** What the device runs now: it is never without a version. */
  readonly running: RunningVersion;
  /** Updates this device ended, by how they ended. */
  readonly counts: Readonly<Record<'succeeded' | 'rolledBack' | 'rejected' | 'powerCuts', number>>;
  /** Cancels the deadline timer (the device stops). */
  stop(): void;
}

/**
 * The updater's persisted state, as `update.json` is on a device: it survives the simulated
 * restarts because it lives in the device, not in an agent incarnation.
 */
type State =
  | { readonly phase: 'idle' }
  | { readonly phase: 'installing'; readonly jobId: string; readonly version: string }
  | {
      readonly phase: 'verifying';
      readonly jobId: string;
      readonly previous: RunningVersion;
      readonly deadlineAt: number;
    }
  | { readonly phase: 'ended'; readonly jobId: string; readonly result: FinalResult };

const decode = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));

/**
 * An on-device updater for simulated agents, behind the same port as the real one
 * (`device-agent/src/update/`), driven by the real job runner: it checks the release's signature and
 * its (simulated) download against the signed manifest with `@pifleet/protocol`'s own checks, and
 * follows the real updater's phases (install → switch → restart → verify health → confirm, or roll
 * back at the deadline → restart → FAILED), with no file system: "installing" a release changes
 * the version the device runs.
 */
export function createSimulatedUpdater(deps: SimulatedUpdaterDeps): SimulatedUpdater {
  const { clock } = deps;
  let running: RunningVersion = { version: deps.initialVersion, working: true };
  let state: State = { phase: 'idle' };
  let deadlineTimer: TimerHandle | undefined;
  /** Jobs whose install already lost power once: the power comes back and stays on. */
  const powerCutDone = new Set<string>();
  const counts = { succeeded: 0, rolledBack: 0, rejected: 0, powerCuts: 0 };
  const wait = (ms: number) =>
    ms <= 0 ? Promise.resolve() : new Promise<void>((resolve) => clock.setTimeout(resolve, ms));

  const rejectedWith = (step: string, detail: string): FinalResult => {
    counts.rejected += 1;
    state = { phase: 'idle' };
    return { status: 'REJECTED', step, detail };
  };

  /** The deadline passed without a confirmation: back to the previous version, and restart on it. */
  const rollBack = () => {
    deadlineTimer = undefined;
    if (state.phase !== 'verifying') return;
    const failed = running.version;
    running = state.previous;
    counts.rolledBack += 1;
    state = {
      phase: 'ended',
      jobId: state.jobId,
      result: {
        status: 'FAILED',
        step: 'health',
        detail: `${failed} did not prove healthy within ${deps.healthDeadlineMs} ms; rolled back to ${running.version}`,
      },
    };
    deps.restart('rolled-back');
  };

  const armDeadline = (deadlineAt: number) => {
    if (deadlineTimer !== undefined) clock.clearTimeout(deadlineTimer);
    deadlineTimer = clock.setTimeout(rollBack, Math.max(0, deadlineAt - clock.now()));
  };

  return {
    get running() {
      return running;
    },
    counts,

    async install(job, progress) {
      const doc: AgentUpdateDocument = job.document;
      const faults = new Set([...deps.faults, ...versionFaults(doc.version)]);
      const verified = verifyReleaseManifest(
        decode(doc.release.manifest),
        decode(doc.release.signature),
        deps.publicKeys,
        doc.version,
      );
      if (!verified.ok) return rejectedWith('verify', verified.rejection.message);
      state = { phase: 'installing', jobId: job.jobId, version: doc.version };
      await progress('download', `${verified.manifest.size} bytes`);
      await wait((deps.installMs ?? 0) / 2);
      if (faults.has('crash-install') && !powerCutDone.has(job.jobId)) {
        // Power is cut mid-download: this process does nothing more (RESTARTING leaves the
        // execution IN_PROGRESS with its persisted step), and the device boots again.
        powerCutDone.add(job.jobId);
        counts.powerCuts += 1;
        deps.restart('power-cut');
        return { status: 'RESTARTING', step: 'download' };
      }
      // The simulated download: the signed digest, or, on a device whose download is corrupted, another one.
      const measured = {
        size: verified.manifest.size,
        sha256: faults.has('corrupt') ? 'f'.repeat(64) : verified.manifest.sha256,
      };
      const mismatch = checkReleaseArtifact(verified.manifest, measured);
      if (mismatch) return rejectedWith('download', mismatch.message);
      await progress('unpack');
      await wait((deps.installMs ?? 0) / 2);
      await progress('switch', `${running.version} -> ${doc.version}`);
      state = {
        phase: 'verifying',
        jobId: job.jobId,
        previous: running,
        deadlineAt: clock.now() + deps.healthDeadlineMs,
      };
      running = { version: doc.version, working: !faults.has('unhealthy') };
      // The deadline runs from the switch, whether or not the new agent ever starts.
      armDeadline(state.deadlineAt);
      deps.restart('switched');
      return { status: 'RESTARTING', step: 'restart' };
    },

    // A read of the persisted state, as the real updater's: the agent asks at its start and the
    // job handler asks again when it resumes the execution, and both must hear the same. An
    // install cut short before the switch is 'none' (nothing of it runs; the handler starts it
    // over, and the new install replaces the state).
    async onStart(jobId): Promise<UpdaterResume> {
      const s = state;
      if (s.phase === 'verifying' && s.jobId === jobId) {
        armDeadline(s.deadlineAt);
        return { state: 'awaiting-health', step: 'health' };
      }
      if (s.phase === 'ended' && s.jobId === jobId) return { state: 'ended', result: s.result };
      return { state: 'none' };
    },

    confirmHealthy(jobId): Promise<FinalResult> {
      const s = state;
      if (s.phase === 'ended' && s.jobId === jobId) {
        // Healthy too late: the deadline already rolled back and the restart it asked for ends
        // this agent; the next one reports the rollback (one FAILED, with its reason).
        return new Promise<FinalResult>(() => undefined);
      }
      if (s.phase !== 'verifying' || s.jobId !== jobId) {
        return Promise.resolve({ status: 'FAILED', step: 'health', detail: 'no update of this job to confirm' });
      }
      if (!running.working) {
        // A release that cannot be healthy never confirms: the deadline rolls it back and restarts
        // the device, which ends this agent (and this wait with it).
        return new Promise<FinalResult>(() => undefined);
      }
      if (deadlineTimer !== undefined) clock.clearTimeout(deadlineTimer);
      deadlineTimer = undefined;
      state = { phase: 'idle' };
      counts.succeeded += 1;
      return Promise.resolve({ status: 'SUCCEEDED', step: 'health', detail: `running ${running.version}` });
    },

    stop() {
      if (deadlineTimer !== undefined) clock.clearTimeout(deadlineTimer);
      deadlineTimer = undefined;
    },
  };
}
