/**
 * The vocabulary of IoT Jobs that the local core, the agent, the CLI and the simulator share:
 * job and job execution statuses, which of them are terminal or settable by a device, the error
 * codes of the device API's rejections, and a job's execution counts. One definition here, so
 * that a status the core sends is one the agent and the CLI know by the same name.
 */

/** A job execution's status (IoT Jobs: "Job and job execution states"). */
export const JOB_EXECUTION_STATUSES = [
  'QUEUED',
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'REMOVED',
  'CANCELED',
] as const;
export type JobExecutionStatus = (typeof JOB_EXECUTION_STATUSES)[number];

const EXECUTION_STATUS_SET: ReadonlySet<string> = new Set(JOB_EXECUTION_STATUSES);

/** A status off the wire: one of the eight, by exact spelling. */
export function isJobExecutionStatus(v: unknown): v is JobExecutionStatus {
  return typeof v === 'string' && EXECUTION_STATUS_SET.has(v);
}

/** An execution still to run: on the thing's pending list (GetPendingJobExecutions). */
export function isPendingExecutionStatus(status: JobExecutionStatus): boolean {
  return status === 'QUEUED' || status === 'IN_PROGRESS';
}

/** The statuses an execution never leaves, every one but the pending two (a retry is a new execution, with its own number). */
export const TERMINAL_EXECUTION_STATUSES: ReadonlySet<JobExecutionStatus> = new Set(
  JOB_EXECUTION_STATUSES.filter((s) => !isPendingExecutionStatus(s)),
);

/** The statuses a device may set with UpdateJobExecution ("Jobs device MQTT API operations"). */
export const DEVICE_SETTABLE_STATUSES = ['IN_PROGRESS', 'SUCCEEDED', 'FAILED', 'REJECTED'] as const;
export type DeviceSettableStatus = (typeof DEVICE_SETTABLE_STATUSES)[number];

/** A job's status (IoT Jobs: "Job states"; IoT's `JobStatus`). */
export const JOB_STATUSES = ['IN_PROGRESS', 'CANCELED', 'COMPLETED', 'DELETION_IN_PROGRESS', 'SCHEDULED'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** How a job's targets are read (IoT's `TargetSelection`): once at creation, or kept up to date as groups change. */
export const TARGET_SELECTIONS = ['SNAPSHOT', 'CONTINUOUS'] as const;
export type TargetSelection = (typeof TARGET_SELECTIONS)[number];

/** What counts as a failed execution for an abort criterion (IoT's `JobExecutionFailureType`). */
export const ABORT_FAILURE_TYPES = ['FAILED', 'REJECTED', 'TIMED_OUT', 'ALL'] as const;
export type AbortFailureType = (typeof ABORT_FAILURE_TYPES)[number];

/** What a retry criterion retries (IoT's `RetryableFailureType`). */
export const RETRY_FAILURE_TYPES = ['FAILED', 'TIMED_OUT', 'ALL'] as const;
export type RetryFailureType = (typeof RETRY_FAILURE_TYPES)[number];

/** The error codes of IoT's jobs `…/rejected` answers ("Jobs device MQTT API": ErrorResponse `code`). */
export const JOBS_ERROR_CODES = [
  'InvalidTopic',
  'InvalidJson',
  'InvalidRequest',
  'InvalidStateTransition',
  'ResourceNotFound',
  'VersionMismatch',
  'InternalError',
  'RequestThrottled',
  'TerminalStateReached',
] as const;
export type JobsErrorCode = (typeof JOBS_ERROR_CODES)[number];

/** A job's executions by status (DescribeJob's `jobProcessDetails`, without the `numberOf…Things` spelling). */
export interface JobExecutionCounts {
  readonly queued: number;
  readonly inProgress: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly rejected: number;
  readonly timedOut: number;
  readonly canceled: number;
  readonly removed: number;
}
