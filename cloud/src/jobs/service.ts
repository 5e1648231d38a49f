import { type TargetSelection, TERMINAL_EXECUTION_STATUSES } from '@pifleet/protocol';
import { ApiError, invalidRequest } from '../http/errors.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import type { AccountContext } from '../ports/identity.js';
import type { GroupRef, Page, PageRequest, ThingGroupRecord, ThingRecord } from '../registry/sqlite-registry.js';
import { type JobsClock, systemJobsClock } from './clock.js';
import {
  type DescribeRequest,
  type DeviceJobExecution,
  type JobExecutionState,
  type JobExecutionStatus,
  type JobExecutionSummary,
  type JobsDeviceApi,
  JobsDeviceError,
  type JobsNotifications,
  type PendingExecutions,
  type StartNextRequest,
  type StatusDetails,
  type UpdateRequest,
  type UpdateResult,
} from './device-api.js';
import {
  type AbortCriterion,
  type ExecutionRecord,
  JOB_LIMITS,
  type JobRecord,
  type JobStatus,
  type PresignedUrlConfig,
  type RetryCriterion,
  type RolloutConfig,
} from './model.js';
import type { JobsStore } from './store.js';
import {
  checkStatusDetails,
  documentProblem,
  jobIdProblem,
  stepTimeoutProblem,
  thingNameProblem,
} from './validation.js';

/**
 * The local core's IoT Jobs service: jobs and their executions, with the semantics of the AWS IoT
 * Jobs docs ("Jobs and job execution states", "Job configurations", the device MQTT/HTTP APIs).
 * The device side is {@link JobsDeviceApi}; the control plane (CreateJob, CancelJob, …) is the
 * rest of {@link JobsService}. Every change to a thing's pending executions goes out through the
 * {@link JobsNotifications} sink (the MQTT adapter publishes `notify` and `notify-next`).
 *
 * Rollout: an execution is created QUEUED for every target thing at CreateJob (and for a thing
 * that joins a target group of a CONTINUOUS job later), but the thing sees it only once the
 * rollout admits ("notifies") it: at most the rollout rate per minute, the rate being
 * `maximumPerMinute` (default 1000) or the exponential rate `floor(base * factor^k)` capped by it,
 * where k counts how many times `numberOfNotifiedThings` things were notified (or
 * `numberOfSucceededThings` executions succeeded). Minutes are windows starting at the first
 * admission; retries are admitted at once and are not counted as notified.
 */

export interface CreateJobInput {
  readonly jobId: string;
  readonly targets: readonly string[];
  readonly document?: string | undefined;
  readonly documentSource?: string | undefined;
  readonly description?: string | undefined;
  readonly targetSelection?: TargetSelection | undefined;
  readonly presignedUrlConfig?: PresignedUrlConfig | undefined;
  readonly rollout?: RolloutConfig | undefined;
  readonly abort?: readonly AbortCriterion[] | undefined;
  readonly inProgressTimeoutInMinutes?: number | undefined;
  readonly retry?: readonly RetryCriterion[] | undefined;
}

export interface JobProcessDetails {
  readonly processingTargets?: readonly string[];
  readonly numberOfCanceledThings: number;
  readonly numberOfSucceededThings: number;
  readonly numberOfFailedThings: number;
  readonly numberOfRejectedThings: number;
  readonly numberOfQueuedThings: number;
  readonly numberOfInProgressThings: number;
  readonly numberOfRemovedThings: number;
  readonly numberOfTimedOutThings: number;
}

export interface JobView {
  readonly job: JobRecord;
  readonly details: JobProcessDetails;
  /** Rolling out (executions not yet notified): AWS's `isConcurrent`. */
  readonly isConcurrent: boolean;
}

/** The registry as the jobs service reads it: thing and group lookups, and membership changes. */
export interface JobsRegistry {
  readonly account: AccountContext;
  describeThing(thingName: string): ThingRecord;
  describeThingGroup(thingGroupName: string): ThingGroupRecord;
  listThingsInThingGroup(
    thingGroupName: string,
    input: PageRequest & { recursive?: boolean | undefined },
  ): Page<string>;
  listThingGroupsForThing(thingName: string, page: PageRequest): Page<GroupRef>;
  /** Called after a thing joins or leaves a static group (CONTINUOUS jobs); returns an unsubscribe. */
  onMembershipChange?(listener: (change: MembershipChange) => void): () => void;
}

export type MembershipChange =
  | { readonly kind: 'added' | 'removed'; readonly thingName: string; readonly thingGroupName: string }
  | { readonly kind: 'deleted'; readonly thingName: string };

export interface JobsServiceDeps {
  readonly store: JobsStore;
  readonly registry: JobsRegistry;
  readonly clock?: JobsClock;
  /** Where pending-list changes go; settable later with setNotifications (the MQTT wiring). */
  readonly notifications?: JobsNotifications;
  /** Replaces `${aws:iot:s3-presigned-url:…}` placeholders each time a document goes to a device. */
  readonly resolveDocument?: (document: string, presignedUrlConfig?: PresignedUrlConfig) => string;
  /** Reads a CreateJob `documentSource` (an S3 URL); without it documentSource is refused. */
  readonly readDocumentSource?: (url: string) => Promise<string>;
  readonly logger?: Logger;
}

export interface JobsService extends JobsDeviceApi {
  start(): void;
  /** The ARN of a thing of this account and region (what the control plane answers with). */
  thingArn(thingName: string): string;
  stop(): void;
  setNotifications(sink: JobsNotifications | undefined): void;
  createJob(input: CreateJobInput): Promise<JobRecord>;
  describeJob(jobId: string): JobView;
  listJobs(filter: {
    status?: JobStatus | undefined;
    targetSelection?: TargetSelection | undefined;
    thingGroupName?: string | undefined;
    after?: number | undefined;
    limit: number;
  }): { items: readonly JobView[]; next?: number | string };
  cancelJob(jobId: string, options: { force?: boolean; reasonCode?: string; comment?: string }): JobRecord;
  deleteJob(jobId: string, options: { force?: boolean }): void;
  getJobDocument(jobId: string): string;
  describeExecution(jobId: string, thingName: string, executionNumber?: number): ExecutionView;
  listExecutionsForJob(
    jobId: string,
    filter: { status?: JobExecutionStatus | undefined; after?: string | undefined; limit: number },
  ): { items: readonly ExecutionRecord[]; next?: number | string };
  listExecutionsForThing(
    thingName: string,
    filter: {
      status?: JobExecutionStatus | undefined;
      jobId?: string | undefined;
      after?: number | undefined;
      limit: number;
    },
  ): { items: readonly ExecutionRecord[]; next?: number | string };
  cancelExecution(
    jobId: string,
    thingName: string,
    options: { force?: boolean; expectedVersion?: number; statusDetails?: unknown },
  ): void;
}

export interface ExecutionView {
  readonly execution: ExecutionRecord;
  readonly approximateSecondsBeforeTimedOut?: number;
}

const notFound = (message: string) => new ApiError('ResourceNotFoundException', 404, message);
const badTransition = (message: string) => new ApiError('InvalidStateTransitionException', 409, message);
const MINUTE = 60_000;

/** What a thing's pending executions looked like, to tell what changed. */
interface PendingSnapshot {
  readonly key: string;
  readonly nextKey: string | undefined;
}

const executionKey = (e: ExecutionRecord) => `${e.jobId}#${e.executionNumber}#${e.status}`;
/** Oldest first by queuedAt, then creation order (the store's order; the sort is stable). */
function ordered(pending: readonly ExecutionRecord[]): { inProgress: ExecutionRecord[]; queued: ExecutionRecord[] } {
  const byQueued = [...pending].sort((a, b) => a.queuedAt - b.queuedAt);
  return {
    inProgress: byQueued.filter((e) => e.status === 'IN_PROGRESS'),
    queued: byQueued.filter((e) => e.status === 'QUEUED'),
  };
}

/** The next pending execution: the oldest IN_PROGRESS one, else the oldest QUEUED one. */
function nextOf(pending: readonly ExecutionRecord[]): ExecutionRecord | undefined {
  const { inProgress, queued } = ordered(pending);
  return inProgress[0] ?? queued[0];
}

const summary = (e: ExecutionRecord): JobExecutionSummary => ({
  jobId: e.jobId,
  queuedAt: e.queuedAt,
  ...(e.startedAt === undefined ? {} : { startedAt: e.startedAt }),
  lastUpdatedAt: e.lastUpdatedAt,
  versionNumber: e.versionNumber,
  executionNumber: e.executionNumber,
});

const stateOf = (e: ExecutionRecord): JobExecutionState => ({
  status: e.status,
  ...(e.statusDetails === undefined ? {} : { statusDetails: e.statusDetails }),
  versionNumber: e.versionNumber,
});

/** The deadline that times an IN_PROGRESS execution out first. */
function deadlineOf(e: ExecutionRecord): number | undefined {
  if (e.status !== 'IN_PROGRESS') return undefined;
  const ds = [e.stepDeadline, e.inProgressDeadline].filter((d): d is number => d !== undefined);
  return ds.length === 0 ? undefined : Math.min(...ds);
}

function without<T extends object, K extends keyof T>(record: T, ...keys: K[]): Omit<T, K> {
  const copy = { ...record };
  for (const k of keys) delete copy[k];
  return copy;
}

export function createJobsService(deps: JobsServiceDeps): JobsService {
  const { store, registry } = deps;
  const clock = deps.clock ?? systemJobsClock();
  const logger = deps.logger ?? silentLogger();
  const arnPrefix = `arn:aws:iot:${registry.account.region}:${registry.account.accountId}`;
  const jobArn = (jobId: string) => `${arnPrefix}:job/${jobId}`;
  const thingArn = (name: string) => `${arnPrefix}:thing/${name}`;
  const groupArn = (name: string) => `${arnPrefix}:thinggroup/${name}`;
  let notifications = deps.notifications;
  const executionTimers = new Map<string, unknown>();
  const rolloutTimers = new Map<string, unknown>();
  let unsubscribe: (() => void) | undefined;
  let running = false;

  // ---- notifications ------------------------------------------------------------------------

  /**
   * One operation's view of the things it touches: their pending executions before it changed
   * anything, compared with after when it ends, so each thing gets one `notify` when its list
   * changed and one `notify-next` when its next execution did.
   */
  function changeSet() {
    const before = new Map<string, PendingSnapshot>();
    const snapshot = (thingName: string): PendingSnapshot => {
      const pending = store.pendingForThing(thingName);
      const next = nextOf(pending);
      return {
        key: pending.map(executionKey).join(','),
        nextKey: next === undefined ? undefined : `${next.jobId}#${next.executionNumber}`,
      };
    };
    return {
      touch(thingName: string) {
        if (!before.has(thingName)) before.set(thingName, snapshot(thingName));
      },
      flush() {
        const sink = notifications;
        if (!sink) return;
        const at = clock.now();
        for (const [thingName, old] of before) {
          const now = snapshot(thingName);
          try {
            if (now.key !== old.key) {
              const lists = pendingLists(thingName);
              sink.executionsChanged(
                thingName,
                {
                  ...(lists.inProgressJobs.length > 0 ? { IN_PROGRESS: lists.inProgressJobs } : {}),
                  ...(lists.queuedJobs.length > 0 ? { QUEUED: lists.queuedJobs } : {}),
                },
                at,
              );
            }
            if (now.nextKey !== old.nextKey) {
              const next = nextOf(store.pendingForThing(thingName));
              sink.nextChanged(thingName, next === undefined ? undefined : deviceView(next, true), at);
            }
          } catch (err) {
            logger.error({ err, thingName }, 'jobs notification failed');
          }
        }
      },
    };
  }
  type ChangeSet = ReturnType<typeof changeSet>;

  function pendingLists(thingName: string): PendingExecutions {
    const { inProgress, queued } = ordered(store.pendingForThing(thingName));
    const ip = inProgress.slice(0, JOB_LIMITS.maxPendingListed);
    const q = queued.slice(0, JOB_LIMITS.maxPendingListed - ip.length);
    return { inProgressJobs: ip.map(summary), queuedJobs: q.map(summary) };
  }

  // ---- documents and views -----------------------------------------------------------------

  function documentFor(jobId: string): string {
    const job = store.getJob(jobId);
    if (!job) return '{}';
    return deps.resolveDocument ? deps.resolveDocument(job.document, job.presignedUrlConfig) : job.document;
  }

  function secondsLeft(e: ExecutionRecord): number | undefined {
    const d = deadlineOf(e);
    return d === undefined ? undefined : Math.max(0, Math.ceil((d - clock.now()) / 1000));
  }

  function deviceView(e: ExecutionRecord, withDocument: boolean): DeviceJobExecution {
    const left = secondsLeft(e);
    return {
      jobId: e.jobId,
      thingName: e.thingName,
      status: e.status,
      ...(e.statusDetails === undefined ? {} : { statusDetails: e.statusDetails }),
      queuedAt: e.queuedAt,
      ...(e.startedAt === undefined ? {} : { startedAt: e.startedAt }),
      lastUpdatedAt: e.lastUpdatedAt,
      ...(left === undefined ? {} : { approximateSecondsBeforeTimedOut: left }),
      versionNumber: e.versionNumber,
      executionNumber: e.executionNumber,
      ...(withDocument ? { jobDocument: documentFor(e.jobId) } : {}),
    };
  }

  function processDetails(job: JobRecord): { details: JobProcessDetails; isConcurrent: boolean } {
    const counts = store.countByStatus(job.jobId);
    const n = (s: JobExecutionStatus) => counts.get(s) ?? 0;
    const rolling = job.status === 'IN_PROGRESS' && store.countUnnotified(job.jobId) > 0;
    return {
      isConcurrent: rolling,
      details: {
        ...(rolling ? { processingTargets: job.targets } : {}),
        numberOfCanceledThings: n('CANCELED'),
        numberOfSucceededThings: n('SUCCEEDED'),
        numberOfFailedThings: n('FAILED'),
        numberOfRejectedThings: n('REJECTED'),
        numberOfQueuedThings: n('QUEUED'),
        numberOfInProgressThings: n('IN_PROGRESS'),
        numberOfRemovedThings: n('REMOVED'),
        numberOfTimedOutThings: n('TIMED_OUT'),
      },
    };
  }

  // ---- timers --------------------------------------------------------------------------------

  const timerKey = (e: { jobId: string; thingName: string }) => `${e.jobId}\u0000${e.thingName}`;

  function armExecutionTimer(e: ExecutionRecord): void {
    const key = timerKey(e);
    const old = executionTimers.get(key);
    if (old !== undefined) {
      clock.clearTimeout(old);
      executionTimers.delete(key);
    }
    const deadline = deadlineOf(e);
    if (deadline === undefined || !running) return;
    executionTimers.set(
      key,
      clock.setTimeout(() => {
        executionTimers.delete(key);
        onExecutionTimer(e.jobId, e.thingName);
      }, deadline - clock.now()),
    );
  }

  function onExecutionTimer(jobId: string, thingName: string): void {
    const changes = changeSet();
    try {
      store.transaction(() => {
        const e = store.getExecution(jobId, thingName);
        if (!e) return;
        const deadline = deadlineOf(e);
        if (deadline === undefined) return;
        if (deadline > clock.now()) {
          armExecutionTimer(e);
          return;
        }
        changes.touch(thingName);
        const timedOut = save({
          ...stripTimers(e),
          status: 'TIMED_OUT',
          versionNumber: e.versionNumber + 1,
          lastUpdatedAt: clock.now(),
        });
        afterTerminal(timedOut, changes);
      });
    } catch (err) {
      logger.error({ err, jobId, thingName }, 'job execution timeout failed');
    }
    changes.flush();
  }

  function armRollout(job: JobRecord): void {
    const old = rolloutTimers.get(job.jobId);
    if (old !== undefined) {
      clock.clearTimeout(old);
      rolloutTimers.delete(job.jobId);
    }
    if (!running || job.status !== 'IN_PROGRESS') return;
    if (store.countUnnotified(job.jobId) === 0) return;
    const at = Math.max(clock.now(), job.windowStart + JOB_LIMITS.rolloutWindowMs);
    rolloutTimers.set(
      job.jobId,
      clock.setTimeout(() => {
        rolloutTimers.delete(job.jobId);
        const changes = changeSet();
        try {
          store.transaction(() => {
            const current = store.getJob(job.jobId);
            if (current) rollout(current, changes);
          });
        } catch (err) {
          logger.error({ err, jobId: job.jobId }, 'job rollout failed');
        }
        changes.flush();
      }, at - clock.now()),
    );
  }

  // ---- state changes -------------------------------------------------------------------------

  const stripTimers = (e: ExecutionRecord) => without(e, 'stepDeadline', 'inProgressDeadline');

  function save(e: ExecutionRecord): ExecutionRecord {
    store.updateExecution(e);
    armExecutionTimer(e);
    return e;
  }

  /** The rollout's current per-minute rate. */
  function rateOf(job: JobRecord): number {
    const max = job.rollout?.maximumPerMinute ?? JOB_LIMITS.defaultMaximumPerMinute;
    const exp = job.rollout?.exponentialRate;
    if (!exp) return max;
    const { numberOfNotifiedThings: byNotified, numberOfSucceededThings: bySucceeded } = exp.rateIncreaseCriteria;
    let steps = 0;
    if (byNotified !== undefined) steps = Math.floor(job.notified / byNotified);
    else if (bySucceeded !== undefined) {
      steps = Math.floor((store.countByStatus(job.jobId).get('SUCCEEDED') ?? 0) / bySucceeded);
    }
    // Past the cap the exponent no longer matters; bounding it keeps the power finite.
    const rate = exp.baseRatePerMinute * exp.incrementFactor ** Math.min(steps, 64);
    return Math.max(1, Math.min(max, Math.floor(rate)));
  }

  /** Admits what the current minute's rate still allows, and schedules the next minute. */
  function rollout(job: JobRecord, changes: ChangeSet): JobRecord {
    if (job.status !== 'IN_PROGRESS') return job;
    const now = clock.now();
    let current = job;
    if (now >= current.windowStart + JOB_LIMITS.rolloutWindowMs) {
      current = { ...current, windowStart: now, windowAdmitted: 0 };
    }
    // Admit one at a time while the rate (which may grow with each notification) allows.
    let admittedNow = 0;
    for (;;) {
      const room = rateOf(current) - current.windowAdmitted;
      if (room <= 0) break;
      const batch = store.unnotified(current.jobId, room);
      if (batch.length === 0) break;
      for (const e of batch) {
        changes.touch(e.thingName);
        store.updateExecution({ ...e, notified: true });
      }
      admittedNow += batch.length;
      current = {
        ...current,
        notified: current.notified + batch.length,
        windowAdmitted: current.windowAdmitted + batch.length,
      };
      if (batch.length < room) break;
    }
    if (admittedNow > 0 || current !== job) store.updateJob(current);
    armRollout(current);
    return current;
  }

  /** A job whose executions all ended is COMPLETED (never a CONTINUOUS one: it waits for new things). */
  function maybeComplete(job: JobRecord): JobRecord {
    if (job.status !== 'IN_PROGRESS' || job.targetSelection === 'CONTINUOUS') return job;
    if (store.hasPending(job.jobId)) return job;
    const now = clock.now();
    const done: JobRecord = { ...job, status: 'COMPLETED', completedAt: now, lastUpdatedAt: now };
    store.updateJob(done);
    return done;
  }

  const failureMatches = (type: AbortCriterion['failureType'], status: JobExecutionStatus) =>
    type === 'ALL' ? status === 'FAILED' || status === 'REJECTED' || status === 'TIMED_OUT' : type === status;

  /**
   * abortConfig: once at least minNumberOfExecutedThings things have finished (their latest
   * execution SUCCEEDED, FAILED, REJECTED or TIMED_OUT), the job is canceled when the failures of
   * the criterion's type reach thresholdPercentage of those finished.
   */
  function maybeAbort(job: JobRecord, changes: ChangeSet): JobRecord {
    if (job.status !== 'IN_PROGRESS' || !job.abort || job.abort.length === 0) return job;
    const counts = store.countByStatus(job.jobId);
    const n = (s: JobExecutionStatus) => counts.get(s) ?? 0;
    const executed = n('SUCCEEDED') + n('FAILED') + n('REJECTED') + n('TIMED_OUT');
    for (const c of job.abort) {
      if (executed < c.minNumberOfExecutedThings || executed === 0) continue;
      const failures = (['FAILED', 'REJECTED', 'TIMED_OUT'] as const)
        .filter((s) => failureMatches(c.failureType, s))
        .reduce((sum, s) => sum + n(s), 0);
      if ((failures * 100) / executed >= c.thresholdPercentage) {
        logger.info({ jobId: job.jobId, executed, failures, criterion: c }, 'job aborted by its abort configuration');
        return cancel(
          job,
          {
            force: false,
            comment: `Aborted: ${c.failureType} executions reached ${c.thresholdPercentage}% of ${executed} executed things.`,
          },
          changes,
        );
      }
    }
    return job;
  }

  /** jobExecutionsRetryConfig: a FAILED or TIMED_OUT execution comes back as a new executionNumber. */
  function maybeRetry(job: JobRecord, e: ExecutionRecord, changes: ChangeSet): boolean {
    if (job.status !== 'IN_PROGRESS' || !job.retry) return false;
    if (e.status !== 'FAILED' && e.status !== 'TIMED_OUT') return false;
    const specific = job.retry.find((c) => c.failureType === e.status);
    const all = job.retry.find((c) => c.failureType === 'ALL');
    const used = e.status === 'FAILED' ? e.failedRetries : e.timedOutRetries;
    const allowed =
      (specific !== undefined && used < specific.numberOfRetries) ||
      (specific === undefined && all !== undefined && e.retryAttempt < all.numberOfRetries);
    if (!allowed) return false;
    const now = clock.now();
    changes.touch(e.thingName);
    store.insertExecution({
      jobId: e.jobId,
      thingName: e.thingName,
      executionNumber: e.executionNumber + 1,
      status: 'QUEUED',
      queuedAt: now,
      lastUpdatedAt: now,
      versionNumber: 1,
      notified: true,
      retryAttempt: e.retryAttempt + 1,
      failedRetries: e.failedRetries + (e.status === 'FAILED' ? 1 : 0),
      timedOutRetries: e.timedOutRetries + (e.status === 'TIMED_OUT' ? 1 : 0),
    });
    return true;
  }

  /** After an execution reached a terminal status: retry, abort, rollout (rates may grow), completion. */
  function afterTerminal(e: ExecutionRecord, changes: ChangeSet): void {
    let job = store.getJob(e.jobId);
    if (!job) return;
    if (maybeRetry(job, e, changes)) return;
    job = maybeAbort(job, changes);
    job = rollout(job, changes);
    maybeComplete(job);
  }

  function cancel(
    job: JobRecord,
    options: { force?: boolean; reasonCode?: string; comment?: string },
    changes: ChangeSet,
  ): JobRecord {
    const now = clock.now();
    const force = options.force === true;
    const canceled: JobRecord = {
      ...job,
      status: 'CANCELED',
      lastUpdatedAt: now,
      ...(force || job.forceCanceled === true ? { forceCanceled: true } : {}),
      ...(options.reasonCode === undefined ? {} : { reasonCode: options.reasonCode }),
      ...(options.comment === undefined ? {} : { comment: options.comment }),
    };
    store.updateJob(canceled);
    const statuses: JobExecutionStatus[] = force ? ['QUEUED', 'IN_PROGRESS'] : ['QUEUED'];
    for (const e of store.executionsOfJob(job.jobId, statuses)) {
      changes.touch(e.thingName);
      save({
        ...stripTimers(e),
        status: 'CANCELED',
        versionNumber: e.versionNumber + 1,
        lastUpdatedAt: now,
        ...(e.status === 'IN_PROGRESS' ? { forceCanceled: true } : {}),
      });
    }
    armRollout(canceled);
    return canceled;
  }

  // ---- targets -------------------------------------------------------------------------------

  /** The things a target list names now (group members recursively, as AWS counts child groups). */
  function resolveTargets(targets: readonly string[]): string[] {
    const things = new Set<string>();
    for (const target of targets) {
      const thing = target.startsWith(`${arnPrefix}:thing/`) ? target.slice(`${arnPrefix}:thing/`.length) : undefined;
      const group = target.startsWith(`${arnPrefix}:thinggroup/`)
        ? target.slice(`${arnPrefix}:thinggroup/`.length)
        : undefined;
      if (thing !== undefined) {
        const problem = thingNameProblem(thing);
        if (problem) throw invalidRequest(problem);
        registry.describeThing(thing);
        things.add(thing);
      } else if (group !== undefined) {
        registry.describeThingGroup(group);
        let token: string | undefined;
        do {
          const page = registry.listThingsInThingGroup(group, { recursive: true, token, pageSize: 250 });
          for (const t of page.items) things.add(t);
          token = page.next;
        } while (token !== undefined);
      } else {
        throw invalidRequest(
          `Target '${target.slice(0, 200)}' is not a thing or thing group ARN of this account and region.`,
        );
      }
    }
    return [...things];
  }

  /** The groups a thing is in, with their ancestors (a job targeting a parent group covers the thing). */
  function coveringGroups(thingName: string): Set<string> {
    const covering = new Set<string>();
    let token: string | undefined;
    do {
      const page = registry.listThingGroupsForThing(thingName, { token, pageSize: 250 });
      for (const g of page.items) {
        covering.add(g.groupArn);
        for (const up of registry.describeThingGroup(g.groupName).rootToParentThingGroups) covering.add(up.groupArn);
      }
      token = page.next;
    } while (token !== undefined);
    return covering;
  }

  function newExecution(jobId: string, thingName: string, now: number): ExecutionRecord {
    return {
      jobId,
      thingName,
      executionNumber: 1,
      status: 'QUEUED',
      queuedAt: now,
      lastUpdatedAt: now,
      versionNumber: 1,
      notified: false,
      retryAttempt: 0,
      failedRetries: 0,
      timedOutRetries: 0,
    };
  }

  /**
   * A deleted thing's pending executions are REMOVED: nothing can run them any more, and a
   * SNAPSHOT job waiting on them would never complete (a thing created later under the same name
   * starts with none).
   */
  function onThingDeleted(thingName: string, changes: ChangeSet): void {
    const now = clock.now();
    const pending = ['QUEUED', 'IN_PROGRESS'] as const;
    const executions = pending.flatMap(
      (status) => store.listExecutionsForThing(thingName, { status, limit: Number.MAX_SAFE_INTEGER }).items,
    );
    for (const e of executions) {
      changes.touch(thingName);
      save({ ...stripTimers(e), status: 'REMOVED', versionNumber: e.versionNumber + 1, lastUpdatedAt: now });
    }
    for (const jobId of new Set(executions.map((e) => e.jobId))) {
      const job = store.getJob(jobId);
      if (job) maybeComplete(rollout(job, changes));
    }
  }

  function onMembershipChange(change: MembershipChange): void {
    const changes = changeSet();
    try {
      store.transaction(() => {
        if (change.kind === 'deleted') {
          onThingDeleted(change.thingName, changes);
          return;
        }
        const continuous = store.jobsWithStatus('IN_PROGRESS').filter((j) => j.targetSelection === 'CONTINUOUS');
        if (continuous.length === 0) return;
        const covering = coveringGroups(change.thingName);
        const now = clock.now();
        for (const job of continuous) {
          const covered = job.targets.includes(thingArn(change.thingName)) || job.targets.some((t) => covering.has(t));
          const existing = store.getExecution(job.jobId, change.thingName);
          if (change.kind === 'added' && covered && existing === undefined) {
            store.insertExecution(newExecution(job.jobId, change.thingName, now));
            rollout(job, changes);
          } else if (change.kind === 'removed' && !covered && existing?.status === 'QUEUED') {
            // "REMOVED": the thing left the target of a continuous job before it started the execution.
            changes.touch(change.thingName);
            save({ ...existing, status: 'REMOVED', versionNumber: existing.versionNumber + 1, lastUpdatedAt: now });
          }
        }
      });
    } catch (err) {
      logger.error({ err, change }, 'continuous job membership update failed');
    }
    changes.flush();
  }

  // ---- device side ---------------------------------------------------------------------------

  function deviceExecution(thingName: string, jobId: string, executionNumber?: number): ExecutionRecord {
    const e = store.getExecution(jobId, thingName, executionNumber);
    // Not yet admitted by the rollout: the thing has not been told of it, so it does not exist for it.
    if (!e || (e.status === 'QUEUED' && !e.notified)) {
      throw new JobsDeviceError('ResourceNotFound', `Job execution ${jobId} of ${thingName} not found.`);
    }
    return e;
  }

  function deviceDetails(input: unknown): StatusDetails {
    const checked = checkStatusDetails(input);
    if (!checked.ok) throw new JobsDeviceError('InvalidRequest', checked.problem);
    return checked.value;
  }

  function checkStep(value: number | undefined): void {
    const problem = stepTimeoutProblem(value);
    if (problem) throw new JobsDeviceError('InvalidRequest', problem);
  }

  /** The execution moved to IN_PROGRESS (StartNext, or an update to IN_PROGRESS of a QUEUED one). */
  function started(e: ExecutionRecord, job: JobRecord | undefined, now: number): ExecutionRecord {
    const timeout = job?.inProgressTimeoutInMinutes;
    return {
      ...e,
      status: 'IN_PROGRESS',
      startedAt: now,
      ...(timeout === undefined ? {} : { inProgressDeadline: now + timeout * MINUTE }),
    };
  }

  function withStep(e: ExecutionRecord, step: number | undefined, now: number): ExecutionRecord {
    if (step === undefined) return e;
    if (step === -1) return without(e, 'stepDeadline');
    return { ...e, stepDeadline: now + step * MINUTE };
  }

  const api: JobsService = {
    thingArn,

    start() {
      if (running) return;
      running = true;
      unsubscribe = registry.onMembershipChange?.(onMembershipChange);
      for (const e of store.timedExecutions()) armExecutionTimer(e);
      for (const job of store.jobsWithStatus('IN_PROGRESS')) armRollout(job);
    },

    stop() {
      running = false;
      unsubscribe?.();
      unsubscribe = undefined;
      for (const t of executionTimers.values()) clock.clearTimeout(t);
      for (const t of rolloutTimers.values()) clock.clearTimeout(t);
      executionTimers.clear();
      rolloutTimers.clear();
    },

    setNotifications(sink) {
      notifications = sink;
    },

    async getPending(thingName) {
      return pendingLists(thingName);
    },

    async startNext(thingName, request: StartNextRequest) {
      checkStep(request.stepTimeoutInMinutes);
      const details = request.statusDetails === undefined ? undefined : deviceDetails(request.statusDetails);
      const changes = changeSet();
      const result = store.transaction(() => {
        const next = nextOf(store.pendingForThing(thingName));
        if (!next) return undefined;
        if (next.status === 'IN_PROGRESS') return next;
        changes.touch(thingName);
        const now = clock.now();
        let e = started(next, store.getJob(next.jobId), now);
        e = withStep(e, request.stepTimeoutInMinutes, now);
        return save({
          ...e,
          ...(details === undefined ? {} : { statusDetails: details }),
          versionNumber: next.versionNumber + 1,
          lastUpdatedAt: now,
        });
      });
      changes.flush();
      return result === undefined ? undefined : deviceView(result, true);
    },

    async describe(thingName, jobId, request: DescribeRequest) {
      const withDocument = request.includeJobDocument !== false;
      if (jobId === '$next') {
        const next = nextOf(store.pendingForThing(thingName));
        return next === undefined ? undefined : deviceView(next, withDocument);
      }
      return deviceView(deviceExecution(thingName, jobId, request.executionNumber), withDocument);
    },

    async update(thingName, jobId, request: UpdateRequest) {
      checkStep(request.stepTimeoutInMinutes);
      const details = request.statusDetails === undefined ? undefined : deviceDetails(request.statusDetails);
      const changes = changeSet();
      let updated: ExecutionRecord;
      try {
        updated = store.transaction(() => {
          const e = deviceExecution(thingName, jobId, request.executionNumber);
          if (request.expectedVersion !== undefined && request.expectedVersion !== e.versionNumber) {
            throw new JobsDeviceError(
              'VersionMismatch',
              `The expected version ${request.expectedVersion} does not match the execution's version ${e.versionNumber}.`,
              stateOf(e),
            );
          }
          const latest = store.getExecution(jobId, thingName);
          if (TERMINAL_EXECUTION_STATUSES.has(e.status) || latest?.executionNumber !== e.executionNumber) {
            throw new JobsDeviceError(
              'InvalidStateTransition',
              `Job execution ${jobId} of ${thingName} is ${e.status}: it cannot become ${request.status}.`,
              stateOf(e),
            );
          }
          changes.touch(thingName);
          const now = clock.now();
          let next: ExecutionRecord = e;
          if (request.status === 'IN_PROGRESS') {
            if (e.status === 'QUEUED') next = started(e, store.getJob(jobId), now);
            next = withStep(next, request.stepTimeoutInMinutes, now);
          } else {
            next = { ...stripTimers(e), status: request.status };
          }
          next = {
            ...next,
            ...(details === undefined ? {} : { statusDetails: details }),
            versionNumber: e.versionNumber + 1,
            lastUpdatedAt: now,
          };
          save(next);
          if (TERMINAL_EXECUTION_STATUSES.has(next.status)) afterTerminal(next, changes);
          return next;
        });
      } finally {
        changes.flush();
      }
      return {
        ...(request.includeJobExecutionState === true ? { executionState: stateOf(updated) } : {}),
        ...(request.includeJobDocument === true ? { jobDocument: documentFor(jobId) } : {}),
      } satisfies UpdateResult;
    },

    // ---- control plane -----------------------------------------------------------------------

    async createJob(input) {
      const idProblem = jobIdProblem(input.jobId);
      if (idProblem) throw invalidRequest(idProblem);
      if ((input.document === undefined) === (input.documentSource === undefined)) {
        throw invalidRequest('Exactly one of document and documentSource is required.');
      }
      if (input.targets.length === 0) throw invalidRequest('targets must name at least one thing or thing group.');
      if (store.getJob(input.jobId)) {
        throw new ApiError('ResourceAlreadyExistsException', 409, `Job ${input.jobId} already exists.`, {
          fields: { resourceId: input.jobId, resourceArn: jobArn(input.jobId) },
        });
      }
      let document = input.document;
      if (input.documentSource !== undefined) {
        if (!deps.readDocumentSource) {
          throw invalidRequest('documentSource is not available: this core has no artifact store to read it from.');
        }
        try {
          document = await deps.readDocumentSource(input.documentSource);
        } catch (err) {
          if (err instanceof ApiError) throw err;
          throw invalidRequest(`The document at documentSource cannot be read: ${(err as Error).message}`, err);
        }
      }
      const problem = documentProblem(document as string);
      if (problem) throw invalidRequest(problem);
      const changes = changeSet();
      const job = store.transaction(() => {
        // Checked again inside the transaction: the document read above may have taken a while.
        if (store.getJob(input.jobId)) {
          throw new ApiError('ResourceAlreadyExistsException', 409, `Job ${input.jobId} already exists.`, {
            fields: { resourceId: input.jobId, resourceArn: jobArn(input.jobId) },
          });
        }
        const things = resolveTargets(input.targets);
        const now = clock.now();
        const record: JobRecord = {
          jobId: input.jobId,
          jobArn: jobArn(input.jobId),
          status: 'IN_PROGRESS',
          targetSelection: input.targetSelection ?? 'SNAPSHOT',
          targets: [...input.targets],
          ...(input.description === undefined ? {} : { description: input.description }),
          document: document as string,
          ...(input.documentSource === undefined ? {} : { documentSource: input.documentSource }),
          ...(input.presignedUrlConfig === undefined ? {} : { presignedUrlConfig: input.presignedUrlConfig }),
          ...(input.rollout === undefined ? {} : { rollout: input.rollout }),
          ...(input.abort === undefined ? {} : { abort: input.abort }),
          ...(input.inProgressTimeoutInMinutes === undefined
            ? {}
            : { inProgressTimeoutInMinutes: input.inProgressTimeoutInMinutes }),
          ...(input.retry === undefined ? {} : { retry: input.retry }),
          createdAt: now,
          lastUpdatedAt: now,
          notified: 0,
          windowStart: now,
          windowAdmitted: 0,
        };
        store.insertJob(record);
        for (const thing of things) store.insertExecution(newExecution(record.jobId, thing, now));
        return maybeComplete(rollout(record, changes));
      });
      changes.flush();
      return job;
    },

    describeJob(jobId) {
      const job = store.getJob(jobId);
      if (!job) throw notFound(`Job ${jobId} cannot be found.`);
      return { job, ...processDetails(job) };
    },

    listJobs({ status, targetSelection, thingGroupName, after, limit }) {
      const page = store.listJobs({
        status,
        targetSelection,
        target: thingGroupName === undefined ? undefined : groupArn(thingGroupName),
        after,
        limit,
      });
      return {
        items: page.items.map((job) => ({ job, ...processDetails(job) })),
        ...(page.next === undefined ? {} : { next: page.next }),
      };
    },

    cancelJob(jobId, options) {
      const changes = changeSet();
      const job = store.transaction(() => {
        const current = store.getJob(jobId);
        if (!current) throw notFound(`Job ${jobId} cannot be found.`);
        if (current.status === 'COMPLETED') throw badTransition(`Job ${jobId} is COMPLETED: it cannot be canceled.`);
        if (current.status === 'DELETION_IN_PROGRESS') throw badTransition(`Job ${jobId} is being deleted.`);
        // Canceling a canceled job again changes nothing, unless it forces the in-progress executions out.
        if (current.status === 'CANCELED' && options.force !== true) return current;
        return cancel(current, options, changes);
      });
      changes.flush();
      return job;
    },

    deleteJob(jobId, options) {
      const changes = changeSet();
      store.transaction(() => {
        const job = store.getJob(jobId);
        if (!job) throw notFound(`Job ${jobId} cannot be found.`);
        if (job.status === 'IN_PROGRESS' && options.force !== true) {
          throw badTransition(`Job ${jobId} is IN_PROGRESS: cancel it first, or delete it with force.`);
        }
        for (const e of store.executionsOfJob(jobId, ['QUEUED', 'IN_PROGRESS'])) changes.touch(e.thingName);
        for (const e of store.executionsOfJob(jobId)) {
          const t = executionTimers.get(timerKey(e));
          if (t !== undefined) clock.clearTimeout(t);
          executionTimers.delete(timerKey(e));
        }
        const r = rolloutTimers.get(jobId);
        if (r !== undefined) clock.clearTimeout(r);
        rolloutTimers.delete(jobId);
        store.deleteJob(jobId);
      });
      changes.flush();
    },

    getJobDocument(jobId) {
      const job = store.getJob(jobId);
      if (!job) throw notFound(`Job ${jobId} cannot be found.`);
      return job.document;
    },

    describeExecution(jobId, thingName, executionNumber) {
      const problem = thingNameProblem(thingName);
      if (problem) throw invalidRequest(problem);
      const e = store.getExecution(jobId, thingName, executionNumber);
      if (!e) throw notFound(`Job execution of job ${jobId} on thing ${thingName} cannot be found.`);
      const left = secondsLeft(e);
      return { execution: e, ...(left === undefined ? {} : { approximateSecondsBeforeTimedOut: left }) };
    },

    listExecutionsForJob(jobId, filter) {
      if (!store.getJob(jobId)) throw notFound(`Job ${jobId} cannot be found.`);
      return store.listExecutionsForJob(jobId, filter);
    },

    listExecutionsForThing(thingName, filter) {
      const problem = thingNameProblem(thingName);
      if (problem) throw invalidRequest(problem);
      return store.listExecutionsForThing(thingName, filter);
    },

    cancelExecution(jobId, thingName, options) {
      let details: StatusDetails | undefined;
      if (options.statusDetails !== undefined) {
        const checked = checkStatusDetails(options.statusDetails);
        if (!checked.ok) throw invalidRequest(checked.problem);
        details = checked.value;
      }
      const changes = changeSet();
      try {
        store.transaction(() => {
          const e = store.getExecution(jobId, thingName);
          if (!e) throw notFound(`Job execution of job ${jobId} on thing ${thingName} cannot be found.`);
          if (TERMINAL_EXECUTION_STATUSES.has(e.status)) {
            throw badTransition(
              `Job execution of job ${jobId} on thing ${thingName} is ${e.status}: it cannot be canceled.`,
            );
          }
          if (e.status === 'IN_PROGRESS' && options.force !== true) {
            throw badTransition(
              `Job execution of job ${jobId} on thing ${thingName} is IN_PROGRESS: cancel it with force.`,
            );
          }
          if (options.expectedVersion !== undefined && options.expectedVersion !== e.versionNumber) {
            throw new ApiError(
              'VersionConflictException',
              409,
              `The expected version ${options.expectedVersion} does not match the execution's version ${e.versionNumber}.`,
            );
          }
          changes.touch(thingName);
          const canceled = save({
            ...stripTimers(e),
            status: 'CANCELED',
            ...(details === undefined ? {} : { statusDetails: details }),
            ...(e.status === 'IN_PROGRESS' ? { forceCanceled: true } : {}),
            versionNumber: e.versionNumber + 1,
            lastUpdatedAt: clock.now(),
          });
          const job = store.getJob(jobId);
          if (job) maybeComplete(rollout(job, changes));
          return canceled;
        });
      } finally {
        changes.flush();
      }
    },
  };
  return api;
}
