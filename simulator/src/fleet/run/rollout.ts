import type { JobsControl } from '@pifleet/provisioning';
import type { SimJob } from '../../jobs/job-document.js';
import { round } from '../metrics.js';
import type { FleetJobOptions } from '../options.js';
import type { RolloutCounts, RolloutPoint, RolloutResult } from '../result.js';
import { sleep } from './wait.js';

/** What a phase needs to roll a job out: the job, the control plane, and the target group. */
export interface RolloutTarget {
  readonly job: SimJob;
  readonly options: FleetJobOptions;
  readonly control: JobsControl;
  /** The thing group holding the run's things. */
  readonly groupArn: string;
  readonly jobId: string;
}

/** The rollout as the control plane saw it; the devices' side is added after they stop. */
export type RolloutFollowed = Omit<RolloutResult, 'devices' | 'plannedFaults'>;

/** How often the job's counts are read (DescribeJob; IoT allows 10 per second per account). */
const POLL_MS = 1_000;

const ZERO: RolloutCounts = {
  queued: 0,
  inProgress: 0,
  succeeded: 0,
  failed: 0,
  rejected: 0,
  timedOut: 0,
  canceled: 0,
  removed: 0,
};

const executedOf = (c: RolloutCounts) => c.succeeded + c.failed + c.rejected + c.timedOut;

/**
 * The job's CreateJob input: the group as the target (SNAPSHOT: the fleet as it is now), the
 * rollout rate, and the abort criterion: `ALL` failure types (FAILED, REJECTED, TIMED_OUT) at the
 * percentage, evaluated once `minNumberOfExecutedThings` have executed — by default one rollout
 * minute's worth, so the first wave decides whether the rest of the fleet gets the job.
 */
export function createJobInput(t: Pick<RolloutTarget, 'job' | 'options' | 'groupArn' | 'jobId'>, devices: number) {
  const o = t.options;
  const minExecuted = abortMinExecuted(o, devices);
  return {
    jobId: t.jobId,
    targets: [t.groupArn],
    document: t.job.document,
    description: `pifleet-sim fleet rollout (${t.job.kind})`,
    targetSelection: 'SNAPSHOT' as const,
    ...(o.rolloutPerMinute === undefined
      ? {}
      : { jobExecutionsRolloutConfig: { maximumPerMinute: o.rolloutPerMinute } }),
    ...(o.abortFailurePercent === undefined || minExecuted === undefined
      ? {}
      : {
          abortConfig: {
            criteriaList: [
              {
                failureType: 'ALL' as const,
                action: 'CANCEL' as const,
                thresholdPercentage: o.abortFailurePercent,
                minNumberOfExecutedThings: minExecuted,
              },
            ],
          },
        }),
  };
}

export function abortMinExecuted(o: FleetJobOptions, devices: number): number | undefined {
  if (o.abortFailurePercent === undefined) return undefined;
  return o.abortMinExecuted ?? Math.max(1, Math.min(devices, o.rolloutPerMinute ?? 1_000));
}

/**
 * Creates the job and follows it (DescribeJob about once a second) until it has ended with nothing
 * left in progress: COMPLETED, or CANCELED (by its abort criterion) once the executions that were
 * already running have finished too. Bounded by the options' timeout and the run's signal; then
 * reads each thing's latest execution (ListJobExecutionsForJob).
 */
export async function followRollout(opts: {
  readonly target: RolloutTarget;
  readonly devices: number;
  readonly signal: AbortSignal | undefined;
  readonly say: (line: string, final: boolean) => void;
  readonly name: string;
}): Promise<RolloutFollowed> {
  const { target, say, signal } = opts;
  const { control } = target;
  const o = target.options;
  const created = Date.now();
  await control.createJob(createJobInput(target, opts.devices));
  say(`[${opts.name}] job ${target.jobId} created (${target.job.kind})`, true);
  const series: RolloutPoint[] = [];
  const deadline = created + o.timeoutS * 1000;
  let counts = ZERO;
  let status = 'IN_PROGRESS';
  let reasonCode: string | undefined;
  let comment: string | undefined;
  let ended: RolloutResult['ended'] = 'timeout';
  let lastExecutedAt = created;
  for (;;) {
    const job = await control.describeJob(target.jobId);
    const now = Date.now();
    if (job) {
      if (executedOf(job.counts) > executedOf(counts)) lastExecutedAt = now;
      counts = job.counts;
      status = job.status;
      reasonCode = job.reasonCode;
      comment = job.comment;
      series.push({ t: round((now - created) / 1000), ...counts });
      say(
        `[${opts.name}] job ${status.toLowerCase()}  queued ${counts.queued}  in progress ${counts.inProgress}  succeeded ${counts.succeeded}  failed ${counts.failed}  rejected ${counts.rejected}  canceled ${counts.canceled}`,
        false,
      );
      const settled = counts.inProgress === 0 && counts.queued === 0;
      if (status === 'COMPLETED' && settled) {
        ended = 'completed';
        break;
      }
      if (status === 'CANCELED' && settled) {
        ended = 'canceled';
        break;
      }
    }
    if (signal?.aborted) {
      ended = 'interrupted';
      break;
    }
    if (now >= deadline) break;
    await sleep(POLL_MS);
  }
  const executions = await control.listExecutions(target.jobId).catch(() => undefined);
  let executionStatuses: Record<string, number> | undefined;
  if (executions) {
    executionStatuses = {};
    for (const e of executions) executionStatuses[e.status] = (executionStatuses[e.status] ?? 0) + 1;
  }
  const executed = executedOf(counts);
  const activeS = (lastExecutedAt - created) / 1000;
  const result: RolloutFollowed = {
    jobId: target.jobId,
    kind: target.job.kind,
    rolloutPerMinute: o.rolloutPerMinute,
    abort:
      o.abortFailurePercent === undefined
        ? undefined
        : { failurePercent: o.abortFailurePercent, minExecuted: abortMinExecuted(o, opts.devices) ?? 1 },
    status,
    ended,
    ...(reasonCode === undefined ? {} : { reasonCode }),
    ...(comment === undefined ? {} : { comment }),
    seconds: round((Date.now() - created) / 1000),
    executed,
    executionsPerS: activeS > 0 ? round(executed / activeS) : 0,
    counts,
    executionStatuses,
    series,
  };
  say(
    `[${opts.name}] job ${target.jobId} ${ended} after ${result.seconds} s: ${executed} executed (${result.executionsPerS}/s), succeeded ${counts.succeeded}, failed ${counts.failed}, rejected ${counts.rejected}, canceled ${counts.canceled}`,
    true,
  );
  return result;
}
