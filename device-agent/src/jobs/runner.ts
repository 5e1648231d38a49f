import {
  type BackoffSchedule,
  exponentialBackoff,
  type JobDocument,
  type JobOperation,
  jobStatusDetails,
  parseJobDocument,
  TERMINAL_EXECUTION_STATUSES,
} from '@pifleet/protocol';
import { type Logger, silentLogger } from '../logger.js';
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { JobContext, JobHandler, JobHandlers, JobOutcome, ProgressOptions } from './handler.js';
import { type ExecutionState, type JobExecution, JobsRejectedError, type JobsService } from './port.js';
import type { JobStateStore, PersistedJob, PersistedOutcome } from './state.js';

/** The connection the runner follows: it asks for work on every connect. */
export interface RunnerConnection {
  readonly isConnected: boolean;
  on(event: 'connected', listener: () => void): () => void;
}

export interface JobRunnerDeps {
  /** Created once, at start (the SDK's jobs client needs the transport's live MQTT client). */
  readonly service: () => JobsService;
  readonly connection: RunnerConnection;
  readonly store: JobStateStore;
  readonly handlers: JobHandlers;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Waits between retries of a terminal update (default 1 s doubling to 60 s, full jitter). */
  readonly retry?: BackoffSchedule;
  readonly random?: () => number;
}

export interface JobRunner {
  /** Follows notify-next and connects, and asks for the next execution. */
  start(): void;
  /** Stops asking and retrying; an outcome not yet acknowledged stays persisted for the next start. */
  stop(): void;
  /** Asks start-next now (also done on start, on every connect and on every notify-next). */
  kick(why: string): void;
  /** Resolves when the runner has nothing to do (no cycle running or queued). */
  settled(): Promise<void>;
  /** The execution being worked on, if any. */
  current(): PersistedJob | undefined;
}

/** The end of an execution, decided: what the service says it is now. */
type Reported = 'acknowledged' | 'already-ended' | 'gone' | 'stopped';

/**
 * Waits before asking start-next again after failed cycles: 1 s doubling to 15 min, full jitter.
 * Wider than the terminal-update retry because a cycle that keeps failing usually cannot succeed
 * (no jobs service, or a policy without the jobs topics: on MQTT 3.1.1 IoT Core then closes the
 * connection for the start-next PUBLISH, and each attempt costs the telemetry a reconnect).
 */
const ASK_RETRY: BackoffSchedule = { baseMs: 1_000, capMs: 15 * 60_000 };

/**
 * Runs the thing's jobs one at a time.
 *
 * - It asks StartNextPendingJobExecution on start, on every connect and on every notify-next, so a
 *   job queued while the device was offline starts when it comes back.
 * - The execution it works on is persisted (the store, beside the outbox) before each step is
 *   reported; after a crash or a reboot, start-next returns the same IN_PROGRESS execution and the
 *   handler resumes from the persisted step (or, when the file was lost, from the step the
 *   execution's own statusDetails recorded).
 * - A handler's terminal outcome is persisted before it is reported, and reported until the
 *   service acknowledges it, across reconnects and restarts. Every update carries
 *   `expectedVersion`; a VersionMismatch (or a refusal because the execution is already terminal)
 *   is reconciled with DescribeJobExecution: an update that did reach the service (its answer was
 *   lost with the connection) is not sent again, one that did not is sent with the current version.
 *   So each terminal status is reported exactly once.
 */
export function createJobRunner(deps: JobRunnerDeps): JobRunner {
  const { clock, store } = deps;
  const log = (deps.logger ?? silentLogger()).child({ component: 'jobs' });
  const retry = deps.retry ?? { baseMs: 1_000, capMs: 60_000 };
  const random = deps.random ?? Math.random;
  let service: JobsService | undefined;
  let running = false;
  let busy: Promise<void> | undefined;
  let again = false;
  let failures = 0;
  /** A handler left its job to a restart of the process: nothing more is asked until then. */
  let awaitingRestart = false;
  let current: PersistedJob | undefined;
  const cleanups: (() => void)[] = [];
  /** What wakes the waits in progress when the runner stops. */
  const wakers = new Set<() => void>();

  /** Waits on the clock; resolves early when the runner stops. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      let timer: TimerHandle | undefined;
      const wake = () => {
        wakers.delete(wake);
        if (timer !== undefined) clock.clearTimeout(timer);
        resolve();
      };
      wakers.add(wake);
      timer = clock.setTimeout(wake, ms);
    });

  /** Resolves on the next connect (at once when connected), or when the runner stops. */
  const connectedOrStopped = () =>
    new Promise<void>((resolve) => {
      if (deps.connection.isConnected || !running) {
        resolve();
        return;
      }
      const wake = () => {
        wakers.delete(wake);
        off();
        resolve();
      };
      const off = deps.connection.on('connected', wake);
      wakers.add(wake);
    });

  const save = (job: PersistedJob) => {
    store.save(job);
    current = job;
  };

  const clear = () => {
    store.clear();
    current = undefined;
  };

  /**
   * Learns the execution's state when an update was refused for it (VersionMismatch carries it;
   * otherwise DescribeJobExecution).
   */
  const stateAfterRefusal = async (job: PersistedJob, err: JobsRejectedError): Promise<ExecutionState | undefined> => {
    if (err.executionState) return err.executionState;
    const described = await (service as JobsService).describe(job.jobId, job.executionNumber);
    return described
      ? {
          status: described.status,
          versionNumber: described.versionNumber,
          ...(described.statusDetails ? { statusDetails: described.statusDetails } : {}),
        }
      : undefined;
  };

  /** Reports a terminal outcome until the service has it (or has ended the execution itself). */
  const reportOutcome = async (job: PersistedJob, outcome: PersistedOutcome): Promise<Reported> => {
    let version = job.versionNumber;
    // After a reconciled version the update is sent again at once; after a failure, after a backoff.
    let immediate = false;
    for (let attempt = 0; running; attempt += 1) {
      if (attempt > 0 && !immediate) {
        await pause(exponentialBackoff(attempt - 1, retry, random));
        await connectedOrStopped();
        if (!running) break;
      }
      immediate = false;
      try {
        await (service as JobsService).update(job.jobId, {
          status: outcome.status,
          statusDetails: outcome.statusDetails,
          expectedVersion: version,
          executionNumber: job.executionNumber,
        });
        return 'acknowledged';
      } catch (err) {
        if (!(err instanceof JobsRejectedError)) {
          log.warn({ err, jobId: job.jobId, attempt }, 'job status update not acknowledged; retrying');
          continue;
        }
        if (err.serviceCode === 'ResourceNotFound') return 'gone';
        if (err.serviceCode === 'RequestThrottled' || err.serviceCode === 'InternalError') {
          log.warn({ err, jobId: job.jobId, attempt }, 'job status update throttled or failed; retrying');
          continue;
        }
        let state: ExecutionState | undefined;
        try {
          state = await stateAfterRefusal(job, err);
        } catch (describeErr) {
          log.warn({ err: describeErr, jobId: job.jobId }, 'cannot describe the execution; retrying');
          continue;
        }
        if (!state) return 'gone';
        if (TERMINAL_EXECUTION_STATUSES.has(state.status)) {
          if (state.status === outcome.status) return 'acknowledged';
          log.warn(
            { jobId: job.jobId, status: state.status, wanted: outcome.status },
            'the execution had already ended; its status stands',
          );
          return 'already-ended';
        }
        if (err.serviceCode !== 'VersionMismatch' && state.versionNumber === version) {
          // Refused for something else than the version (InvalidRequest): sending it again changes nothing.
          log.error({ err, jobId: job.jobId }, 'job status update refused; giving up on this execution');
          return 'already-ended';
        }
        log.info({ jobId: job.jobId, expected: version, actual: state.versionNumber }, 'execution version reconciled');
        // At once when the version did move; a refusal at the same version waits like a failure.
        immediate = state.versionNumber !== version;
        version = state.versionNumber;
      }
    }
    return 'stopped';
  };

  /** Persists and reports a terminal outcome; clears the execution once the service has it. */
  const finish = async (job: PersistedJob, outcome: PersistedOutcome): Promise<boolean> => {
    const ended = { ...job, outcome };
    save(ended);
    const result = await reportOutcome(ended, outcome);
    if (result === 'stopped') return false;
    log.info({ jobId: job.jobId, status: outcome.status, result, details: outcome.statusDetails }, 'job finished');
    clear();
    return true;
  };

  const progressReporter =
    (job: () => PersistedJob, setJob: (j: PersistedJob) => void, operation: string) =>
    async (step: string, options: ProgressOptions = {}) => {
      const before = job();
      const next: PersistedJob = {
        ...before,
        step,
        ...(options.data ? { data: { ...(before.data ?? {}), ...options.data } } : {}),
      };
      save(next);
      setJob(next);
      const statusDetails = jobStatusDetails({
        operation,
        step,
        ...(options.detail === undefined ? {} : { detail: options.detail }),
        ...(options.version === undefined ? {} : { version: options.version }),
      });
      try {
        const state = await (service as JobsService).update(next.jobId, {
          status: 'IN_PROGRESS',
          statusDetails,
          expectedVersion: next.versionNumber,
          executionNumber: next.executionNumber,
        });
        const version = state?.versionNumber ?? next.versionNumber + 1;
        const updated = { ...job(), versionNumber: version };
        save(updated);
        setJob(updated);
      } catch (err) {
        // Progress is informative: the persisted step is what resumes, and the terminal report
        // reconciles the version. A refusal that carries the state updates the version now.
        if (
          err instanceof JobsRejectedError &&
          err.executionState &&
          !TERMINAL_EXECUTION_STATUSES.has(err.executionState.status)
        ) {
          const updated = { ...job(), versionNumber: err.executionState.versionNumber };
          save(updated);
          setJob(updated);
        }
        log.warn({ err, jobId: next.jobId, step }, 'job progress not reported');
      }
    };

  const outcomeOf = (operation: string, o: Exclude<JobOutcome, { status: 'PENDING' }>): PersistedOutcome => ({
    status: o.status,
    statusDetails: jobStatusDetails({
      operation,
      step: o.step,
      ...(o.detail === undefined ? {} : { detail: o.detail }),
      ...(o.version === undefined ? {} : { version: o.version }),
      ...(o.changed === undefined ? {} : { changed: o.changed }),
      ...(o.rejected === undefined ? {} : { rejected: o.rejected }),
    }),
  });

  /** Runs (or resumes) one execution; false when the work goes on outside this process. */
  const execute = async (execution: JobExecution, persisted: PersistedJob | undefined): Promise<boolean> => {
    const parsed = parseJobDocument(execution.jobDocument);
    const operation = parsed.ok ? parsed.document.operation : (parsed.operation ?? 'unknown');
    const resumedStep =
      persisted?.step ?? (execution.status === 'IN_PROGRESS' ? execution.statusDetails?.step : undefined);
    let job: PersistedJob = {
      jobId: execution.jobId,
      executionNumber: execution.executionNumber,
      operation,
      step: resumedStep ?? 'received',
      versionNumber: execution.versionNumber,
      ...(persisted?.data ? { data: persisted.data } : {}),
    };
    save(job);
    if (!parsed.ok) {
      log.warn({ jobId: job.jobId, reason: parsed.reason }, 'job document refused');
      return finish(job, outcomeOf(operation, { status: 'REJECTED', step: 'validate', detail: parsed.reason }));
    }
    const doc: JobDocument = parsed.document;
    const jobLog = log.child({ jobId: job.jobId, operation: doc.operation });
    if (resumedStep !== undefined) jobLog.info({ step: resumedStep }, 'resuming job');
    else jobLog.info('job started');
    const ctx: JobContext<JobDocument> = {
      jobId: job.jobId,
      document: doc,
      resumedStep,
      data: job.data ?? {},
      progress: progressReporter(
        () => job,
        (j) => {
          job = j;
        },
        doc.operation,
      ),
      log: jobLog,
    };
    let outcome: JobOutcome;
    try {
      const handler = deps.handlers[doc.operation as JobOperation] as JobHandler<JobDocument>;
      outcome = await handler.run(ctx);
    } catch (err) {
      jobLog.error({ err }, 'job handler failed');
      outcome = { status: 'FAILED', step: job.step, detail: `unexpected error: ${(err as Error).message}` };
    }
    if (outcome.status === 'PENDING') {
      // The work goes on outside this process (a reboot, a restart into another agent): asking
      // start-next again here would hand the same execution back, and its handler would take the
      // restart that has not happened yet for one that did not work.
      awaitingRestart = true;
      jobLog.info({ step: outcome.step }, 'job continues after a restart');
      return false;
    }
    return finish(job, outcomeOf(doc.operation, outcome));
  };

  /** One cycle: start-next and the executions it returns; `'offline'` when there was no connection to ask on. */
  const cycle = async (): Promise<'done' | 'offline'> => {
    const persisted = store.load();
    current = persisted;
    if (persisted?.outcome) {
      // A handler finished before the last stop but its end was not acknowledged: report it; the
      // job is not run again.
      const result = await reportOutcome(persisted, persisted.outcome);
      if (result === 'stopped') return 'done';
      log.info(
        { jobId: persisted.jobId, status: persisted.outcome.status, result },
        'job finished (reported after restart)',
      );
      clear();
    }
    while (running) {
      if (!deps.connection.isConnected) return 'offline';
      const execution = await (service as JobsService).startNext();
      const kept = store.load();
      if (!execution) {
        if (kept) {
          log.warn(
            { jobId: kept.jobId, step: kept.step },
            'the persisted execution is no longer pending (canceled or timed out); dropped',
          );
          clear();
        }
        return 'done';
      }
      const same = kept && kept.jobId === execution.jobId && kept.executionNumber === execution.executionNumber;
      if (kept && !same) {
        log.warn({ jobId: kept.jobId, next: execution.jobId }, 'the persisted execution is no longer pending; dropped');
        clear();
      }
      const done = await execute(execution, same ? kept : undefined);
      if (!done) return 'done';
    }
    return 'done';
  };

  const kick = (why: string) => {
    if (!running || awaitingRestart) return;
    if (busy !== undefined) {
      again = true;
      return;
    }
    log.debug({ why }, 'asking for the next job');
    busy = (async () => {
      do {
        again = false;
        // After a failed cycle the next waits: a start-next that cannot succeed (no jobs service, a
        // policy that refuses the topic and, on MQTT 3.1.1, ends the connection for it) must not
        // turn every reconnect into another attempt at once.
        if (failures > 0) await pause(exponentialBackoff(failures - 1, ASK_RETRY, random));
        if (!running) break;
        try {
          // A cycle skipped for want of a connection proves nothing: the backoff stands.
          if ((await cycle()) === 'done') failures = 0;
        } catch (err) {
          failures += 1;
          // Asked again after the backoff (or at the next connect, still after it): no notification
          // comes for an execution this device already has in progress (an agent update waiting
          // for its confirmation), and a throttled subscription is granted soon.
          again = true;
          log.warn({ err, failures }, 'jobs cycle failed; trying again after a backoff');
        }
      } while (again && running && !awaitingRestart);
      busy = undefined;
    })();
  };

  return {
    start() {
      if (running) return;
      running = true;
      service = deps.service();
      cleanups.push(
        service.onNextChanged((next) => {
          if (next) kick('notify-next');
        }),
        service.onStreamRestored(() => kick('notify-next subscribed')),
        deps.connection.on('connected', () => kick('connected')),
      );
      if (deps.connection.isConnected) kick('start');
    },
    stop() {
      if (!running) return;
      running = false;
      for (const c of cleanups.splice(0)) c();
      for (const wake of [...wakers]) wake();
      service?.close();
    },
    kick,
    async settled() {
      for (let b = busy; b !== undefined; b = busy) await b;
    },
    current: () => current,
  };
}
