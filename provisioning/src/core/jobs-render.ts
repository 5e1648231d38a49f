import type { JobExecutionCounts } from '@pifleet/protocol';
import type { JobExecutionRecord, JobRecord, JobSummaryRecord } from '../ports/jobs.js';

/** How `jobs list|describe` show jobs, and the progress of `describe --watch`. Pure. */

/** A job is done when it will run no more executions (a CONTINUOUS job stays IN_PROGRESS until canceled). */
export function isJobDone(job: Pick<JobRecord, 'status'>): boolean {
  return job.status === 'COMPLETED' || job.status === 'CANCELED' || job.status === 'DELETION_IN_PROGRESS';
}

/**
 * Where `describe --watch` stops: the job is done, or a CONTINUOUS job (which stays IN_PROGRESS
 * for things that join its groups later) has every execution it has so far finished.
 */
export function isWatchDone(job: Pick<JobRecord, 'status' | 'targetSelection' | 'counts'>): boolean {
  if (isJobDone(job)) return true;
  const { total } = executionTotals(job.counts);
  return job.targetSelection === 'CONTINUOUS' && total > 0 && job.counts.queued + job.counts.inProgress === 0;
}

export function executionTotals(c: JobExecutionCounts): { total: number; finished: number; failures: number } {
  const failures = c.failed + c.rejected + c.timedOut;
  const finished = c.succeeded + failures + c.canceled + c.removed;
  return { total: finished + c.queued + c.inProgress, finished, failures };
}

/** `thing/pi-1` → `pi-1`, `thinggroup/lab` → `group lab`; anything else as given. */
export function targetName(arn: string): string {
  const m = /:(thing|thinggroup)\/(.+)$/.exec(arn);
  if (!m) return arn;
  return m[1] === 'thinggroup' ? `group ${m[2]}` : (m[2] as string);
}

/** `succeeded 7, failed 1, rejected 0, …`: every status, in the order an operator reads them. */
export function renderCounts(c: JobExecutionCounts): string {
  return [
    `succeeded ${c.succeeded}`,
    `failed ${c.failed}`,
    `rejected ${c.rejected}`,
    `timed out ${c.timedOut}`,
    `in progress ${c.inProgress}`,
    `queued ${c.queued}`,
    `canceled ${c.canceled}`,
    `removed ${c.removed}`,
  ].join(', ');
}

export function renderJob(job: JobRecord, executions?: readonly JobExecutionRecord[]): string {
  const { total } = executionTotals(job.counts);
  const lines = [
    `job ${job.jobId}: ${job.status}${job.targetSelection ? ` (${job.targetSelection})` : ''}${job.forceCanceled ? ', force-canceled' : ''}`,
    ...(job.description ? [`description: ${job.description}`] : []),
    `targets: ${job.targets.map(targetName).join(', ') || 'none'}`,
    ...(job.createdAt ? [`created: ${job.createdAt.toISOString()}`] : []),
    ...(job.completedAt ? [`completed: ${job.completedAt.toISOString()}`] : []),
    ...(job.reasonCode || job.comment
      ? [`reason: ${[job.reasonCode, job.comment].filter((s) => s !== undefined && s !== '').join(': ')}`]
      : []),
    `executions (${total}): ${renderCounts(job.counts)}`,
  ];
  for (const e of executions ?? []) {
    const attempt = e.executionNumber !== undefined && e.executionNumber > 1 ? ` (attempt ${e.executionNumber})` : '';
    // The device's own account of the execution: its step, and on failure why (the agent's statusDetails).
    const details = Object.entries(e.statusDetails ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    lines.push(`  ${e.thingName}  ${e.status}${attempt}${details ? `  ${details}` : ''}`);
  }
  return lines.join('\n');
}

export function renderJobList(jobs: readonly JobSummaryRecord[]): string {
  if (jobs.length === 0) return 'no jobs';
  const width = Math.max(...jobs.map((j) => j.jobId.length));
  return jobs
    .map((j) =>
      [
        j.jobId.padEnd(width),
        j.status.padEnd(11),
        (j.targetSelection ?? '').padEnd(10),
        j.createdAt?.toISOString() ?? '',
      ]
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * A redrawable progress line for a terminal:
 * `job-1 [##########----------]  52/104  succeeded 50  failed 2  in progress 3  queued 49`.
 */
export function renderJobBar(job: JobRecord, width = 24): string {
  const c = job.counts;
  const { total, finished, failures } = executionTotals(c);
  const fraction = total > 0 ? finished / total : isJobDone(job) ? 1 : 0;
  const filled = Math.round(Math.min(1, fraction) * width);
  const parts = [
    `succeeded ${c.succeeded}`,
    ...(failures > 0 ? [`failed ${failures}`] : []),
    `in progress ${c.inProgress}`,
    `queued ${c.queued}`,
    ...(c.canceled + c.removed > 0 ? [`canceled ${c.canceled + c.removed}`] : []),
  ];
  return `${job.jobId} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(finished).padStart(String(total).length)}/${total}  ${parts.join('  ')}${isJobDone(job) ? `  ${job.status}` : ''}`;
}

/** One plain line of progress (logs, pipes): written only when it changes. */
export function renderJobLine(job: JobRecord): string {
  return `${job.jobId} ${job.status}: ${renderCounts(job.counts)}`;
}
