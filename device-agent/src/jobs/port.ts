import type { DeviceSettableStatus, JobExecutionStatus } from '@pifleet/protocol';
import { AgentError } from '../errors.js';

/**
 * What the agent needs from IoT Jobs for its own thing (the jobs MQTT API: "Jobs device MQTT API
 * operations"): the next-execution stream, StartNextPendingJobExecution, DescribeJobExecution and
 * UpdateJobExecution with `expectedVersion`. Adapters: the device SDK's `IotJobsClientv2` on the
 * device SDK transport (`iot-jobs-v2.ts`), and the reserved topics on any other transport
 * (`topic-jobs.ts`, the fleet's mqtt.js devices).
 */

export type StatusDetails = Readonly<Record<string, string>>;

export interface JobExecution {
  readonly jobId: string;
  readonly status: JobExecutionStatus;
  readonly statusDetails?: StatusDetails;
  readonly versionNumber: number;
  readonly executionNumber: number;
  /** The job document as the service sent it (an object over MQTT); parsed by `parseJobDocument`. */
  readonly jobDocument?: unknown;
}

export interface ExecutionState {
  readonly status: JobExecutionStatus;
  readonly statusDetails?: StatusDetails;
  readonly versionNumber: number;
}

export interface UpdateExecution {
  readonly status: DeviceSettableStatus;
  readonly statusDetails?: StatusDetails;
  readonly expectedVersion?: number;
  readonly executionNumber?: number;
  readonly stepTimeoutInMinutes?: number;
}

export interface JobsService {
  /**
   * StartNextPendingJobExecution: the thing's oldest IN_PROGRESS execution, or else its oldest
   * QUEUED one moved to IN_PROGRESS; undefined when it has none. Includes the job document.
   */
  startNext(request?: {
    readonly statusDetails?: StatusDetails;
    readonly stepTimeoutInMinutes?: number;
  }): Promise<JobExecution | undefined>;
  /** DescribeJobExecution with the job document; undefined when the service has no such execution. */
  describe(jobId: string, executionNumber?: number): Promise<JobExecution | undefined>;
  /** UpdateJobExecution (asks for the execution state back): the state after the update, when returned. */
  update(jobId: string, request: UpdateExecution): Promise<ExecutionState | undefined>;
  /**
   * Follows `notify-next` (NextJobExecutionChanged): called with the new next execution, or
   * undefined when none is left. Returns the function that stops following.
   */
  onNextChanged(listener: (execution: JobExecution | undefined) => void): () => void;
  /**
   * Calls `listener` when the notify-next subscription is established again (granted after the
   * broker refused or throttled it, or restored after the client lost it): a job queued while it
   * was missing sends no notification that arrives, so the runner asks start-next. Returns the
   * function that stops following.
   */
  onStreamRestored(listener: () => void): () => void;
  /** Releases the service client (and its native resources). */
  close(): void;
}

/**
 * A jobs request failed. The base of {@link JobsRejectedError} (the service answered no) and
 * {@link JobsTimeoutError} (no answer in time); thrown as itself when the request got no answer
 * for another reason (the connection was lost, the client was closed).
 */
export class JobsError extends AgentError {
  override name = 'JobsError';
}

/** The jobs service refused a request: IoT's `code`, and the execution's state where IoT includes it (VersionMismatch). */
export class JobsRejectedError extends JobsError {
  override name = 'JobsRejectedError';
  readonly serviceCode: string;
  readonly executionState: ExecutionState | undefined;

  constructor(
    operation: string,
    rejection: {
      readonly code: string;
      readonly message?: string | undefined;
      readonly executionState?: ExecutionState;
    },
    options: { cause?: unknown } = {},
  ) {
    super(
      'JOBS_REJECTED',
      `jobs ${operation} rejected: ${rejection.code}${rejection.message ? ` (${rejection.message})` : ''}`,
      {
        ...options,
        data: { operation, code: rejection.code },
      },
    );
    this.serviceCode = rejection.code;
    this.executionState = rejection.executionState;
  }
}

/** A jobs request got no answer within its timeout (on the injected clock). */
export class JobsTimeoutError extends JobsError {
  override name = 'JobsTimeoutError';
  constructor(operation: string, timeoutMs: number) {
    super('JOBS_TIMEOUT', `jobs ${operation} timed out`, { data: { operation, timeoutMs } });
  }
}

/** statusDetails from the wire: string values only, own keys only. */
export function statusDetailsOf(v: unknown): StatusDetails | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const out: Record<string, string> = {};
  for (const key of Object.keys(v)) {
    const value = (v as Record<string, unknown>)[key];
    if (typeof value === 'string' && key !== '__proto__') out[key] = value;
  }
  return out;
}
