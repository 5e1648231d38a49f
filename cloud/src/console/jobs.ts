import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { isJsonObject, parseJson } from '@pifleet/protocol';
import type { Route, RouteResponse } from '../http/server.js';
import type { JobExecutionStatus, StatusDetails } from '../jobs/device-api.js';
import type { ExecutionRecord, JobRecord } from '../jobs/model.js';
import type { JobProcessDetails, JobsService, JobView } from '../jobs/service.js';
import type { Logger } from '../logger.js';
import type { Registry } from '../registry/sqlite-registry.js';
import { CONSOLE_PREFIX } from './auth.js';
import { parseCancelJobRequest, parseCreateJobRequest } from './jobs-request.js';
import { createSseHub, type SseClient } from './sse.js';
import { json } from './wire.js';

/**
 * The console's jobs view: the jobs list, one job's progress (its executions by status, each
 * thing's statusDetails), and the create and cancel forms, on the local core's jobs service.
 * Routes under `/console/api/jobs` and the event streams `/console/events/jobs[?job=ID]` sit in
 * the console's route group, behind its session and Origin checks like every console write.
 *
 * Live updates: the jobs service has one notifications sink (the MQTT wiring's, and it only says
 * when a thing's pending list changes, not when an execution reports progress), so the console
 * reads what its streams show from the service every `pollMs` (longer when a read is costly) while
 * a stream is open, and sends only what changed; nothing is read when no one watches.
 */

/** The jobs service as the console uses it. */
export type ConsoleJobsService = Pick<
  JobsService,
  'createJob' | 'describeJob' | 'listJobs' | 'cancelJob' | 'listExecutionsForJob'
>;

export interface ConsoleJobsDeps {
  readonly jobs: ConsoleJobsService;
  readonly registry: Pick<Registry, 'describeThing' | 'describeThingGroup' | 'account'>;
  /** Milliseconds since the epoch. */
  readonly now: () => number;
  readonly log: Logger;
  /** How often open streams are refreshed (default 1,000 ms). */
  readonly pollMs?: number;
  /** Executions a job's page shows at most (default {@link MAX_EXECUTIONS_SHOWN}). */
  readonly maxExecutions?: number;
  readonly heartbeatMs?: number;
  /** Random hex for default job ids (default: 3 random bytes). */
  readonly suffix?: () => string;
}

export interface ConsoleJobs {
  readonly routes: Route[];
  /** Closes every jobs stream and stops reading. */
  stop(): void;
}

/** Jobs the list reads at most (newest shown first). */
export const MAX_JOBS_LISTED = 1_000;
/** Executions a job's page shows at most (a larger job shows its counts, and the first ones). */
export const MAX_EXECUTIONS_SHOWN = 2_000;
const PAGE = 250;
/** A refresh waits at least this many times what the previous one took (see `schedule`). */
const REFRESH_COST_FACTOR = 10;

export type ExecutionCounts = Readonly<Record<JobExecutionStatus, number>>;

export interface JobListItem {
  readonly jobId: string;
  readonly status: JobRecord['status'];
  /** The document's `operation` (`pifleet.config`, …); null when it names none. */
  readonly operation: string | null;
  readonly createdAt: number;
  readonly lastUpdatedAt: number;
  readonly completedAt: number | null;
  readonly forceCanceled: boolean;
  readonly isConcurrent: boolean;
  readonly counts: ExecutionCounts;
}

export interface ExecutionItem {
  readonly thingName: string;
  readonly status: JobExecutionStatus;
  readonly statusDetails: StatusDetails | null;
  readonly executionNumber: number;
  readonly versionNumber: number;
  readonly queuedAt: number;
  readonly startedAt: number | null;
  readonly lastUpdatedAt: number;
  /** Admitted by the rollout (the thing has been told of it). */
  readonly notified: boolean;
}

export interface JobDetail extends JobListItem {
  readonly jobArn: string;
  /** The document as stored (a presigned-URL placeholder not replaced). */
  readonly document: string;
  readonly description: string | null;
  readonly targets: readonly string[];
  readonly targetSelection: JobRecord['targetSelection'];
  readonly rollout: JobRecord['rollout'] | null;
  readonly abort: JobRecord['abort'] | null;
  readonly inProgressTimeoutInMinutes: number | null;
  readonly retry: JobRecord['retry'] | null;
  readonly reasonCode: string | null;
  readonly comment: string | null;
  readonly executions: readonly ExecutionItem[];
  /** More executions exist than `executions` holds. */
  readonly executionsTruncated: boolean;
}

export function executionCounts(d: JobProcessDetails): ExecutionCounts {
  return {
    QUEUED: d.numberOfQueuedThings,
    IN_PROGRESS: d.numberOfInProgressThings,
    SUCCEEDED: d.numberOfSucceededThings,
    FAILED: d.numberOfFailedThings,
    REJECTED: d.numberOfRejectedThings,
    TIMED_OUT: d.numberOfTimedOutThings,
    REMOVED: d.numberOfRemovedThings,
    CANCELED: d.numberOfCanceledThings,
  };
}

/** The `operation` string of a stored document (documents are JSON objects: CreateJob checked them). */
export function documentOperation(document: string): string | null {
  const parsed = parseJson(document);
  if (!parsed.ok || !isJsonObject(parsed.value)) return null;
  const op = Object.hasOwn(parsed.value, 'operation') ? parsed.value.operation : undefined;
  return typeof op === 'string' ? op : null;
}

export function jobListItem(view: JobView): JobListItem {
  const { job } = view;
  return {
    jobId: job.jobId,
    status: job.status,
    operation: documentOperation(job.document),
    createdAt: job.createdAt,
    lastUpdatedAt: job.lastUpdatedAt,
    completedAt: job.completedAt ?? null,
    forceCanceled: job.forceCanceled === true,
    isConcurrent: view.isConcurrent,
    counts: executionCounts(view.details),
  };
}

function executionItem(e: ExecutionRecord): ExecutionItem {
  return {
    thingName: e.thingName,
    status: e.status,
    statusDetails: e.statusDetails ?? null,
    executionNumber: e.executionNumber,
    versionNumber: e.versionNumber,
    queuedAt: e.queuedAt,
    startedAt: e.startedAt ?? null,
    lastUpdatedAt: e.lastUpdatedAt,
    notified: e.notified,
  };
}

const JOB_ID = /^[a-zA-Z0-9_-]{1,64}$/;

/** A GET route and its HEAD twin (as routes.ts declares its own). */
function get(path: string, operation: string, handle: Route['handle']): Route[] {
  return [
    { method: 'GET', path, operation, handle },
    { method: 'HEAD', path, operation, handle },
  ];
}

export function createConsoleJobs(deps: ConsoleJobsDeps): ConsoleJobs {
  const { jobs, registry, now, log } = deps;
  const pollMs = deps.pollMs ?? 1_000;
  const maxExecutions = deps.maxExecutions ?? MAX_EXECUTIONS_SHOWN;
  const suffix = deps.suffix ?? (() => randomBytes(3).toString('hex'));
  /** Fleet streams are the jobs list's, thing-keyed streams follow one job id. */
  const hub = createSseHub({
    ...(deps.heartbeatMs === undefined ? {} : { heartbeatMs: deps.heartbeatMs }),
    onClose: (client) => {
      if (client.thing === undefined) {
        listClients--;
        if (listClients === 0) lastSent.delete('');
      } else if (!hub.watched().has(client.thing)) lastSent.delete(client.thing);
      if (hub.clients === 0) stopPolling();
    },
  });
  let listClients = 0;
  /** The last frame sent to each stream kind (`''` for the list), to send only changes. */
  const lastSent = new Map<string, string>();
  let timer: NodeJS.Timeout | undefined;

  function list(): JobListItem[] {
    const items: JobListItem[] = [];
    let after: number | undefined;
    do {
      const page = jobs.listJobs({ limit: PAGE, after });
      for (const v of page.items) items.push(jobListItem(v));
      after = typeof page.next === 'number' ? page.next : page.next === undefined ? undefined : Number(page.next);
    } while (after !== undefined && Number.isFinite(after) && items.length < MAX_JOBS_LISTED);
    return items.reverse();
  }

  /** A job's page; throws the service's 404 when it does not exist. */
  function detail(jobId: string): JobDetail {
    const view = jobs.describeJob(jobId);
    const executions: ExecutionItem[] = [];
    let after: string | undefined;
    let truncated = false;
    do {
      const limit = Math.min(PAGE, maxExecutions - executions.length);
      const page = jobs.listExecutionsForJob(jobId, { limit, after });
      for (const e of page.items) executions.push(executionItem(e));
      after = page.next === undefined ? undefined : String(page.next);
      if (after !== undefined && executions.length >= maxExecutions) {
        truncated = true;
        break;
      }
    } while (after !== undefined);
    const { job } = view;
    return {
      ...jobListItem(view),
      jobArn: job.jobArn,
      document: job.document,
      description: job.description ?? null,
      targets: job.targets,
      targetSelection: job.targetSelection,
      rollout: job.rollout ?? null,
      abort: job.abort ?? null,
      inProgressTimeoutInMinutes: job.inProgressTimeoutInMinutes ?? null,
      retry: job.retry ?? null,
      reasonCode: job.reasonCode ?? null,
      comment: job.comment ?? null,
      executions,
      executionsTruncated: truncated,
    };
  }

  /** What a stream shows now: the list (key `''`) or one job, or that the job is gone. */
  function current(key: string): { event: string; data: unknown } {
    if (key === '') return { event: 'jobs', data: list() };
    try {
      return { event: 'job', data: detail(key) };
    } catch (err) {
      return { event: 'gone', data: { jobId: key, message: (err as Error).message } };
    }
  }

  /**
   * Sends what `key`'s streams show when it changed since their last frame, to all of them;
   * otherwise only to `newcomer` (a stream that just opened has seen nothing yet).
   */
  function push(key: string, newcomer?: SseClient): void {
    const { event, data } = current(key);
    const frame = JSON.stringify({ event, data });
    const wrapped = event === 'jobs' ? { jobs: data, now: now() } : event === 'job' ? { job: data, now: now() } : data;
    if (lastSent.get(key) !== frame) {
      lastSent.set(key, frame);
      if (key === '') hub.toFleet(event, wrapped);
      else hub.toThing(key, event, wrapped);
    } else newcomer?.send(event, wrapped);
  }

  /** Sends each open stream what changed since its last frame. */
  function refresh(): void {
    try {
      if (listClients > 0) push('');
      for (const jobId of hub.watched()) push(jobId);
    } catch (err) {
      log.warn({ err }, 'jobs not read for the console');
    }
  }

  /**
   * Refreshes every `pollMs`, or later when a refresh is costly: the next one waits at least
   * {@link REFRESH_COST_FACTOR} times what this one took, so an open console costs the core at
   * most ~10 % of a CPU. Measured on this machine: the list of 501 jobs (150 KB) takes ~225 ms
   * (two count queries per job), a 1,000-execution job's page ~64 ms (190 KB).
   */
  function schedule(delay: number): void {
    timer = setTimeout(() => {
      const started = performance.now();
      refresh();
      if (timer !== undefined) schedule(Math.max(pollMs, REFRESH_COST_FACTOR * (performance.now() - started)));
    }, delay);
    timer.unref();
  }

  function startPolling(): void {
    if (timer === undefined) schedule(pollMs);
  }

  function stopPolling(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  }

  function openStream(res: ServerResponse, jobId: string | undefined): void {
    const client: SseClient = hub.open(res, jobId);
    if (jobId === undefined) listClients++;
    startPolling();
    try {
      push(jobId ?? '', client);
    } catch (err) {
      log.warn({ err, jobId }, 'jobs not read for the console');
      client.close();
    }
  }

  const exists = <T>(read: () => T): T | undefined => {
    try {
      return read();
    } catch {
      return undefined;
    }
  };
  const noSuchJob = () => json(404, { message: 'No such job.' });

  const routes: Route[] = [
    ...get(`${CONSOLE_PREFIX}/api/jobs`, 'ConsoleListJobs', () => json(200, { jobs: list(), now: now() })),
    ...get(`${CONSOLE_PREFIX}/api/jobs/{jobId}`, 'ConsoleDescribeJob', (r) => {
      const jobId = r.params.jobId;
      if (jobId === undefined || !JOB_ID.test(jobId)) return noSuchJob();
      return json(200, { job: detail(jobId), now: now() });
    }),
    ...get(`${CONSOLE_PREFIX}/events/jobs`, 'ConsoleJobEvents', (r): RouteResponse => {
      const jobId = r.query.get('job');
      if (jobId !== undefined && !JOB_ID.test(jobId)) return json(400, { message: 'Not a valid job id.' });
      return { stream: (res) => openStream(res, jobId) };
    }),
    {
      method: 'POST',
      path: `${CONSOLE_PREFIX}/api/jobs`,
      operation: 'ConsoleCreateJob',
      async handle(r) {
        const checked = parseCreateJobRequest(r.body, {
          targets: {
            thingArn: (name) => exists(() => registry.describeThing(name).thingArn),
            groupArn: (name) => exists(() => registry.describeThingGroup(name).thingGroupArn),
          },
          accountId: registry.account.accountId,
          now: now(),
          suffix: suffix(),
        });
        if (!checked.ok) return json(400, { message: checked.message, issues: checked.issues });
        const input = checked.value;
        const job = await jobs.createJob({
          jobId: input.jobId,
          targets: input.targets,
          document: input.document,
          description: input.description,
          rollout: input.rollout,
          abort: input.abort,
          presignedUrlConfig: input.presignedUrlConfig,
        });
        log.info(
          { jobId: job.jobId, operation: input.operation, targets: input.targets.length },
          'job created from the console',
        );
        refresh();
        return json(200, { jobId: job.jobId, jobArn: job.jobArn, status: job.status });
      },
    },
    {
      method: 'POST',
      path: `${CONSOLE_PREFIX}/api/jobs/{jobId}/cancel`,
      operation: 'ConsoleCancelJob',
      handle(r) {
        const jobId = r.params.jobId;
        if (jobId === undefined || !JOB_ID.test(jobId)) return noSuchJob();
        const checked = parseCancelJobRequest(r.body);
        if (!checked.ok) return json(400, { message: checked.message, issues: checked.issues });
        const { force, comment } = checked.value;
        const job = jobs.cancelJob(jobId, { force, ...(comment === undefined ? {} : { comment }) });
        log.info({ jobId, force }, 'job canceled from the console');
        refresh();
        return json(200, { jobId: job.jobId, status: job.status, forceCanceled: job.forceCanceled === true });
      },
    },
  ];

  return {
    routes,
    stop() {
      stopPolling();
      hub.closeAll();
      lastSent.clear();
    },
  };
}
