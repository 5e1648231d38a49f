import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import {
  checkReleaseArtifact,
  currentReleaseTarget,
  isReleaseVersion,
  makeDirectory,
  type ReleaseManifest,
  type ReleaseTarget,
  releaseTargetMismatch,
  verifyReleaseManifest,
} from '@pifleet/protocol';
import type { Logger } from '../logger.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import { DownloadError, downloadRelease } from './download.js';
import { completeRollback, rollBackState } from './guard.js';
import {
  isRunnable,
  nodeFs,
  readLinkTarget,
  switchLink,
  syncDir,
  syncTree,
  type UpdateFs,
  updateLayout,
} from './layout.js';
import {
  isFinal,
  isInstallPhase,
  readUpdateState,
  type UpdateReason,
  type UpdateState,
  writeUpdateState,
} from './state.js';
import {
  checkReleaseTarball,
  DEFAULT_UNPACK_LIMITS,
  ReleaseTarballError,
  type UnpackLimits,
  unpackReleaseTarball,
} from './unpack.js';

/**
 * The on-device updater of `pifleet.agent-update` jobs. The job runner calls it; it never exits the
 * process itself (the runner stops the agent gracefully and systemd starts the new one).
 *
 * install: verify the manifest's signature (before any byte is downloaded) → download to
 * `releases/.incoming/` (resumed with Range after a cut, capped at the signed size) → check SHA-256
 * and size → check every tar entry, unpack into a temp dir, rename to `releases/<version>` → record
 * `switching` with the previous target → switch `current` → record `verifying` with the health
 * deadline → RESTARTING. Each phase is persisted before it runs (see state.ts); the boot guard
 * (guard.ts) finishes a switch or a rollback cut short and rolls back a release that keeps
 * crashing at start. After the restart the new agent calls {@link Updater.onStart}, then
 * {@link Updater.confirmHealthy} once connected, shadow synced and sensors read; if its deadline
 * passes first the updater rolls back and asks for a restart, and the previous agent reports FAILED.
 */

export type UpdaterResult =
  | { readonly status: 'SUCCEEDED' | 'FAILED' | 'REJECTED'; readonly step: string; readonly detail?: string }
  | { readonly status: 'RESTARTING'; readonly step: string };
export type FinalUpdaterResult = Exclude<UpdaterResult, { status: 'RESTARTING' }>;

export type UpdaterResume =
  | { readonly state: 'awaiting-health'; readonly step: string; readonly deadline?: number }
  | { readonly state: 'ended'; readonly result: FinalUpdaterResult }
  | { readonly state: 'none' };

export interface UpdateJob {
  readonly jobId: string;
  readonly document: {
    readonly version: string;
    readonly release: { readonly url: string; readonly manifest: string; readonly signature: string };
  };
}

export interface UpdaterDeps {
  readonly stateDir: string;
  /** The read-only factory install: the first `current`, and the last fallback. */
  readonly factoryDir: string;
  /** Trusted release keys (PEM SPKI). */
  readonly publicKeys: readonly string[];
  /** How long the new agent has after the switch to confirm health. */
  readonly healthDeadlineMs: number;
  /** Starts of a new release the boot guard allows while it has not confirmed health. Default 3. */
  readonly maxStarts?: number;
  readonly fetch?: typeof globalThis.fetch;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly fs?: UpdateFs;
  readonly unpackLimits?: UnpackLimits;
  /** The release directory this process runs from: confirmHealthy refuses to confirm another one. */
  readonly runningDir?: string;
  /** Asks the agent to stop gracefully and exit, so systemd restarts it (after a rollback by deadline). */
  readonly restart?: (reason: string) => void;
  /** Step-boundary hook (tests SIGKILL the process there, as a power cut would). */
  readonly at?: (point: string) => void;
  /** Download attempts within one install when the connection breaks (each resumes). Default 3. */
  readonly downloadAttempts?: number;
  /** What this device runs (a release's native modules must be built for it). Default: this process's. */
  readonly target?: ReleaseTarget;
}

export interface Updater {
  install(job: UpdateJob, progress: (step: string, detail?: string) => Promise<void>): Promise<UpdaterResult>;
  onStart(jobId: string): Promise<UpdaterResume>;
  confirmHealthy(jobId: string): Promise<FinalUpdaterResult>;
  /** Switches back to the previous release (the new one is not healthy); the caller restarts. */
  rollBack(jobId: string, reason: UpdateReason): Promise<UpdaterResult>;
  /** The persisted state (for status commands and tests). */
  state(): Promise<UpdateState | undefined>;
  /** Cancels the health deadline timer. */
  stop(): void;
}

/** The step boundaries at which `at` is called, in order, on the install path. */
export const UPDATE_STEP_POINTS = [
  'downloading',
  'download-partial',
  'checking',
  'unpacking',
  'unpacked',
  'switching',
  'switched',
  'verifying',
  'confirming',
  'succeeded',
] as const;

export function createUpdater(deps: UpdaterDeps): Updater {
  const fs = deps.fs ?? nodeFs;
  const layout = updateLayout(deps.stateDir, deps.factoryDir);
  const now = () => deps.clock.now();
  const at = deps.at ?? (() => {});
  const maxStarts = deps.maxStarts ?? 3;
  const deviceTarget = deps.target ?? currentReleaseTarget();
  const log = deps.logger.child({ component: 'updater' });
  let deadlineTimer: TimerHandle | undefined;
  // One operation at a time: a deadline rollback never interleaves with a confirmation.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => {});
    return run;
  };

  const read = () => readUpdateState(fs, layout.stateFile);
  const write = async (state: UpdateState, change: Partial<UpdateState>): Promise<UpdateState> => {
    const next: UpdateState = { ...state, ...change, updatedAt: now() };
    await writeUpdateState(fs, layout.stateFile, next);
    return next;
  };

  async function finish(
    state: UpdateState,
    phase: 'rejected' | 'failed',
    step: string,
    reason: UpdateReason,
    keepDownload = false,
  ): Promise<FinalUpdaterResult> {
    // Files first: on a full disk the record below needs the space the download took.
    if (!keepDownload) await cleanIncoming();
    const ended = await write(state, { phase, step, reason });
    log.warn({ version: state.version, step, reason: reason.code, detail: reason.message }, `update ${phase}`);
    return resultOf(ended);
  }

  async function cleanIncoming(): Promise<void> {
    await removeTree(layout.incomingDir);
  }

  /**
   * node-tar's extract rejects at the first failed write (ENOSPC) while the writes of entries it
   * already started can still land in the directory, so a removal right after may find a directory
   * it just emptied not empty again (ENOTEMPTY, which once crashed the updater instead of recording
   * FAILED). fs.rm retries that case, waiting 20 ms more each time.
   */
  function removeTree(dir: string): Promise<void> {
    return fs.rm(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
  }

  async function sha256Of(file: string): Promise<{ sha256: string; size: number }> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of createReadStream(file)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).byteLength;
    }
    return { sha256: hash.digest('hex'), size };
  }

  async function download(
    state: UpdateState,
    manifest: ReleaseManifest,
    file: string,
  ): Promise<FinalUpdaterResult | undefined> {
    const fetchFn = deps.fetch ?? globalThis.fetch;
    let partialSignalled = false;
    const attempts = deps.downloadAttempts ?? 3;
    for (let attempt = 1; ; attempt++) {
      try {
        await makeDirectory(layout.incomingDir, 0o777, fs);
        await downloadRelease({
          url: state.release.url,
          file,
          size: manifest.size,
          fetch: fetchFn,
          fs,
          onBytes: (bytes) => {
            if (!partialSignalled && bytes >= manifest.size / 2) {
              partialSignalled = true;
              at('download-partial');
            }
          },
        });
        return undefined;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
          return finish(state, 'failed', 'download', {
            code: 'disk-full',
            message: 'no space left on the device for the release',
          });
        }
        if (!(err instanceof DownloadError)) throw err;
        if (err.code === 'DOWNLOAD_TOO_LARGE') {
          return finish(state, 'rejected', 'download', { code: 'size-mismatch', message: err.message });
        }
        if (err.code === 'DOWNLOAD_INTERRUPTED' && attempt < attempts) {
          log.info({ attempt, err: err.message }, 'download interrupted, resuming');
          continue;
        }
        return finish(
          state,
          'failed',
          'download',
          { code: 'download', message: err.message },
          err.code === 'DOWNLOAD_INTERRUPTED',
        );
      }
    }
  }

  async function unpack(state: UpdateState, tarball: string): Promise<FinalUpdaterResult | undefined> {
    const tmp = path.join(layout.incomingDir, `${state.version}.unpack`);
    try {
      await checkReleaseTarball(tarball, deps.unpackLimits ?? DEFAULT_UNPACK_LIMITS);
      await removeTree(tmp);
      await makeDirectory(tmp, 0o777, fs);
      await unpackReleaseTarball(tarball, tmp);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        return finish(state, 'failed', 'unpack', {
          code: 'disk-full',
          message: 'no space left on the device to unpack the release',
        });
      }
      if (err instanceof ReleaseTarballError)
        return finish(state, 'rejected', 'unpack', { code: 'tarball', message: err.message });
      throw err;
    }
    if (!(await isRunnable(fs, tmp))) {
      return finish(state, 'rejected', 'unpack', {
        code: 'not-an-agent',
        message: 'release has no bin/pifleet-agent.js: it is not a deployable agent directory',
      });
    }
    await syncTree(fs, tmp);
    await fs.rm(state.target, { recursive: true, force: true });
    await fs.rename(tmp, state.target);
    await syncDir(fs, layout.releasesDir);
    at('unpacked');
    await fs.rm(tarball, { force: true });
    return undefined;
  }

  /** Where `current` points now, if it can run; else what the guard would fall back to. */
  async function runningTarget(state: UpdateState | undefined): Promise<string> {
    const current = await readLinkTarget(fs, layout.currentLink);
    if (await isRunnable(fs, current)) return current as string;
    if (await isRunnable(fs, state?.lastGood)) return state?.lastGood as string;
    return layout.factoryDir;
  }

  async function install(
    job: UpdateJob,
    progress: (step: string, detail?: string) => Promise<void>,
  ): Promise<UpdaterResult> {
    const { version, release } = job.document;
    const state = await read();
    if (state?.jobId === job.jobId) {
      if (isFinal(state.phase)) return resultOf(state);
      if (!isInstallPhase(state.phase)) return { status: 'RESTARTING', step: 'restart' };
    } else if (state && !isFinal(state.phase) && !isInstallPhase(state.phase)) {
      return {
        status: 'REJECTED',
        step: 'validate',
        detail: `update ${state.version} (job ${state.jobId}) is still being verified`,
      };
    }
    if (!isReleaseVersion(version)) {
      // It names a directory: never joined into a path unchecked (the job document is outside input).
      return { status: 'REJECTED', step: 'validate', detail: 'version must be a semantic version such as 1.2.3' };
    }
    const target = path.join(layout.releasesDir, version);
    const fresh: UpdateState = {
      format: 1,
      phase: 'downloading',
      jobId: job.jobId,
      version,
      release: { url: release.url, manifest: release.manifest, signature: release.signature },
      target,
      attempts: 0,
      healthDeadlineMs: deps.healthDeadlineMs,
      maxStarts,
      updatedAt: now(),
      ...(state?.lastGood === undefined ? {} : { lastGood: state.lastGood }),
    };
    const resuming = state?.jobId === job.jobId ? state : undefined;
    // Another job's unfinished install is dropped with its files.
    if (state && state.jobId !== job.jobId) await cleanIncoming();
    let current = resuming ?? fresh;

    await progress('verify', 'checking the release signature');
    if (deps.publicKeys.length === 0) {
      return finish(current, 'rejected', 'verify', {
        code: 'no-trusted-keys',
        message: 'no release public keys are configured on this device',
      });
    }
    const verified = verifyReleaseManifest(
      Buffer.from(release.manifest, 'base64'),
      Buffer.from(release.signature, 'base64'),
      deps.publicKeys,
      version,
    );
    if (!verified.ok) return finish(current, 'rejected', 'verify', verified.rejection);
    const manifest = verified.manifest;
    // Before any download: a release whose native modules were built for another machine (an x64
    // build sent to a Pi) would exit at every start until the boot guard rolled it back.
    const wrongTarget = releaseTargetMismatch(manifest.target, deviceTarget);
    if (wrongTarget) return finish(current, 'rejected', 'verify', wrongTarget);

    if ((await runningTarget(state)) === target) {
      return { status: 'SUCCEEDED', step: 'verify', detail: `agent ${version} is already running` };
    }
    const tarball = path.join(layout.incomingDir, `${version}.tar.gz`);

    if (current.phase === 'downloading') {
      if (!resuming) {
        // Level by level (makeDirectory): Node's recursive mkdir never settles under /proc.
        await makeDirectory(layout.releasesDir, 0o777, fs);
        current = await write(current, {});
      }
      at('downloading');
      await progress('download', `${manifest.size} bytes`);
      const failed = await download(current, manifest, tarball);
      if (failed) return failed;
      current = await write(current, { phase: 'checking' });
    }
    if (current.phase === 'checking' && !(await exists(tarball))) {
      // Nothing to check (the incoming directory was cleared): download again.
      current = await write(current, { phase: 'downloading' });
      return install(job, progress);
    }
    if (current.phase === 'checking') {
      at('checking');
      const measured = await sha256Of(tarball).catch(() => ({ sha256: '', size: -1 }));
      const mismatch = checkReleaseArtifact(manifest, measured);
      if (mismatch) return finish(current, 'rejected', 'verify', mismatch);
      current = await write(current, { phase: 'unpacking' });
    }
    if (current.phase === 'unpacking') {
      at('unpacking');
      await progress('unpack');
      // The tarball is deleted only after the unpacked release was renamed into place: a cut after
      // that leaves the release complete and nothing to unpack.
      const done = !(await exists(tarball)) && (await isRunnable(fs, target));
      if (!done) {
        const failed = await unpack(current, tarball);
        if (failed) return failed;
      }
    }
    const previous = await runningTarget(current);
    current = await write(current, { phase: 'switching', previous });
    at('switching');
    await progress('switch', `from ${previous}`);
    await switchLink(fs, layout.currentLink, target);
    at('switched');
    current = await write(current, { phase: 'verifying', deadline: now() + deps.healthDeadlineMs, attempts: 0 });
    at('verifying');
    log.info({ version, previous }, 'update switched, restarting into the new release');
    await progress('restart', `restarting into ${version}`);
    return { status: 'RESTARTING', step: 'restart' };
  }

  async function exists(file: string): Promise<boolean> {
    try {
      await fs.stat(file);
      return true;
    } catch {
      return false;
    }
  }

  // What this process runs, resolved at its first call (before any switch this process makes): a
  // runningDir given as the `current` link itself would otherwise resolve, after the switch, to
  // the new release, and the old agent could confirm a release it is not running.
  let runningReal: Promise<string | undefined> | undefined;
  const running = () => {
    const dir = deps.runningDir;
    runningReal ??= dir === undefined ? Promise.resolve(undefined) : realpathOrSelf(dir);
    return runningReal;
  };

  async function isRunningTarget(state: UpdateState): Promise<boolean> {
    const dir = await running();
    return dir === undefined || dir === (await realpathOrSelf(state.target));
  }

  async function realpathOrSelf(p: string): Promise<string> {
    try {
      return await fs.realpath(p);
    } catch {
      return p;
    }
  }

  async function rollBack(jobId: string, reason: UpdateReason): Promise<UpdaterResult> {
    return serial(async () => {
      const state = await read();
      if (!state || state.jobId !== jobId) return { status: 'FAILED', step: 'rollback', detail: 'no such update' };
      if (isFinal(state.phase)) return resultOf(state);
      if (state.phase !== 'verifying' && state.phase !== 'switching' && state.phase !== 'rolling-back') {
        return { status: 'FAILED', step: 'rollback', detail: `nothing to roll back in phase ${state.phase}` };
      }
      clearDeadline();
      const rolled =
        state.phase === 'rolling-back'
          ? await completeRollback(fs, layout, state, now, at)
          : await rollBackState(fs, layout, state, reason, now, at);
      log.warn({ version: state.version, reason: reason.code, detail: reason.message }, 'update rolled back');
      return { status: 'RESTARTING', step: rolled.step ?? 'rollback' };
    });
  }

  function clearDeadline(): void {
    if (deadlineTimer !== undefined) deps.clock.clearTimeout(deadlineTimer);
    deadlineTimer = undefined;
  }

  async function onStart(jobId: string): Promise<UpdaterResume> {
    const state = await read();
    if (!state || state.jobId !== jobId) return { state: 'none' };
    if (isFinal(state.phase)) return { state: 'ended', result: resultOf(state) };
    if (isInstallPhase(state.phase)) return { state: 'none' };
    if (state.phase === 'verifying' && (await isRunningTarget(state))) {
      const deadline = state.deadline ?? 0;
      const healthDeadline: UpdateReason = {
        code: 'health-deadline',
        message: `release ${state.version} did not confirm health within ${Math.round(state.healthDeadlineMs / 1000)} s`,
      };
      clearDeadline();
      // Never longer than the deadline itself from this start: a Pi has no real-time clock, and one
      // that booted on an older time (fake-hwclock, before NTP) would otherwise wait hours or days
      // for a release that hangs. A clock that went forward rolls back at once; the boot guard's
      // start count bounds the rest.
      const waitMs = Math.min(Math.max(0, deadline - now()), state.healthDeadlineMs);
      deadlineTimer = deps.clock.setTimeout(() => {
        deadlineTimer = undefined;
        rollBack(jobId, healthDeadline).then(
          (r) => {
            if (r.status === 'RESTARTING') deps.restart?.(healthDeadline.message);
          },
          (err: unknown) => log.error({ err }, 'rollback after the health deadline failed'),
        );
      }, waitMs);
      return { state: 'awaiting-health', step: 'health', deadline };
    }
    // A switch or rollback the boot guard did not get to (no guard ran before this start), or this
    // process is not the release being verified: finish it and restart into what `current` names.
    if (state.phase === 'switching') {
      await switchLink(fs, layout.currentLink, state.target);
      await write(state, { phase: 'verifying', deadline: now() + state.healthDeadlineMs, attempts: 0 });
    } else if (state.phase === 'rolling-back') {
      await completeRollback(fs, layout, state, now, at);
    }
    deps.restart?.('the update needs a restart into the release `current` names');
    return { state: 'awaiting-health', step: 'restart' };
  }

  async function confirmHealthy(jobId: string): Promise<FinalUpdaterResult> {
    return serial(async () => {
      const state = await read();
      if (!state || state.jobId !== jobId) {
        return { status: 'FAILED', step: 'health', detail: 'no update of this job is being verified' };
      }
      if (isFinal(state.phase)) return resultOf(state);
      if (state.phase !== 'verifying' || !(await isRunningTarget(state))) {
        return { status: 'FAILED', step: 'health', detail: `update is ${state.phase}, not verifying this release` };
      }
      clearDeadline();
      at('confirming');
      const done = await write(state, { phase: 'succeeded', step: 'health', lastGood: state.target });
      at('succeeded');
      await prune(done);
      log.info({ version: state.version }, 'update succeeded');
      return resultOf(done);
    });
  }

  /** Keeps the new release and the previous one (for one more update); removes the rest. */
  async function prune(state: UpdateState): Promise<void> {
    const keep = new Set([path.basename(state.target)]);
    if (state.previous && path.dirname(state.previous) === layout.releasesDir) keep.add(path.basename(state.previous));
    let names: string[];
    try {
      names = await fs.readdir(layout.releasesDir);
    } catch {
      return;
    }
    for (const name of names) {
      if (!keep.has(name)) await fs.rm(path.join(layout.releasesDir, name), { recursive: true, force: true });
    }
  }

  return {
    install: (job, progress) =>
      serial(async () => {
        await running();
        return install(job, progress);
      }),
    onStart: (jobId) =>
      serial(async () => {
        await running();
        return onStart(jobId);
      }),
    confirmHealthy: async (jobId) => {
      await running();
      return confirmHealthy(jobId);
    },
    rollBack: async (jobId, reason) => {
      await running();
      return rollBack(jobId, reason);
    },
    state: read,
    stop: clearDeadline,
  };
}

export function resultOf(state: UpdateState): FinalUpdaterResult {
  const detail = state.reason?.message;
  switch (state.phase) {
    case 'succeeded':
      return {
        status: 'SUCCEEDED',
        step: state.step ?? 'health',
        detail: `agent ${state.version} is running and healthy`,
      };
    case 'rolled-back':
      return {
        status: 'FAILED',
        step: state.step ?? 'rollback',
        detail: `rolled back from ${state.version}: ${detail ?? 'unknown reason'}`,
      };
    case 'rejected':
      return { status: 'REJECTED', step: state.step ?? 'verify', detail: detail ?? 'release rejected' };
    default:
      return {
        status: 'FAILED',
        step: state.step ?? 'install',
        detail: detail ?? `update ended in phase ${state.phase}`,
      };
  }
}
