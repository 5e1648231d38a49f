/**
 * The device side of IoT Jobs inside the local IoT Core: what a thing may ask of the jobs service
 * (the four operations IoT Core offers over MQTT `$aws/things/{thing}/jobs/…` and over the HTTP
 * jobs data plane, `iot-jobs-data`) and the notifications the service sends when a thing's pending
 * executions change. The service implements `JobsDeviceApi`; the MQTT and HTTP adapters translate
 * topics, payloads and errors, and stay free of job semantics.
 *
 * Times are milliseconds since the epoch here; each adapter writes them the way its wire does
 * (MQTT payloads and the HTTP data plane: epoch seconds).
 */

import type { DeviceSettableStatus, JobExecutionStatus, JobsErrorCode } from '@pifleet/protocol';

// The statuses and error codes are @pifleet/protocol's (the agent and the CLI read the same names);
// re-exported so this module stays the whole device-side contract.
export type { DeviceSettableStatus, JobExecutionStatus, JobsErrorCode };

/** `statusDetails`: up to 10 name/value pairs of strings (IoT's limit, checked by the service). */
export type StatusDetails = Readonly<Record<string, string>>;

/** One execution of a job on one thing, as the device sees it. */
export interface DeviceJobExecution {
  readonly jobId: string;
  readonly thingName: string;
  readonly status: JobExecutionStatus;
  readonly statusDetails?: StatusDetails;
  readonly queuedAt: number;
  readonly startedAt?: number;
  readonly lastUpdatedAt: number;
  /** Seconds left before the step or in-progress timer times the execution out (absent: no timer). */
  readonly approximateSecondsBeforeTimedOut?: number;
  readonly versionNumber: number;
  readonly executionNumber: number;
  /** The job document, presigned-URL placeholders replaced; present where the operation includes it. */
  readonly jobDocument?: string;
}

/** The summary lists of GetPendingJobExecutions and of `notify`. */
export interface JobExecutionSummary {
  readonly jobId: string;
  readonly queuedAt: number;
  readonly startedAt?: number;
  readonly lastUpdatedAt: number;
  readonly versionNumber: number;
  readonly executionNumber: number;
}

export interface PendingExecutions {
  readonly inProgressJobs: readonly JobExecutionSummary[];
  readonly queuedJobs: readonly JobExecutionSummary[];
}

export interface JobExecutionState {
  readonly status: JobExecutionStatus;
  readonly statusDetails?: StatusDetails;
  readonly versionNumber: number;
}

export interface StartNextRequest {
  readonly statusDetails?: StatusDetails;
  readonly stepTimeoutInMinutes?: number;
}

export interface DescribeRequest {
  readonly executionNumber?: number;
  readonly includeJobDocument?: boolean;
}

export interface UpdateRequest {
  readonly status: DeviceSettableStatus;
  readonly statusDetails?: StatusDetails;
  readonly stepTimeoutInMinutes?: number;
  readonly expectedVersion?: number;
  readonly executionNumber?: number;
  readonly includeJobExecutionState?: boolean;
  readonly includeJobDocument?: boolean;
}

export interface UpdateResult {
  /** Present when the request asked for it (includeJobExecutionState). */
  readonly executionState?: JobExecutionState;
  /** Present when the request asked for it (includeJobDocument). */
  readonly jobDocument?: string;
}

/**
 * A refused device request; `executionState` is the current state where IoT includes it
 * (VersionMismatch, InvalidStateTransition). `code` is IoT's jobs MQTT `…/rejected` code; the HTTP
 * data plane maps it to its exceptions (InvalidRequestException 400, ResourceNotFoundException
 * 404, InvalidStateTransitionException 409, ThrottlingException 429, TerminalStateException 410,
 * ServiceUnavailableException 503; VersionMismatch is a 409 InvalidStateTransitionException there).
 */
export class JobsDeviceError extends Error {
  override readonly name = 'JobsDeviceError';
  constructor(
    readonly code: JobsErrorCode,
    message: string,
    readonly executionState?: JobExecutionState,
  ) {
    super(message);
  }
}

/** What a thing may ask of the jobs service. Every method throws JobsDeviceError when refused. */
export interface JobsDeviceApi {
  /** GetPendingJobExecutions: the thing's IN_PROGRESS and QUEUED executions, oldest first. */
  getPending(thingName: string): Promise<PendingExecutions>;
  /**
   * StartNextPendingJobExecution: the oldest IN_PROGRESS execution, or else the oldest QUEUED one
   * moved to IN_PROGRESS (statusDetails and the step timer set); undefined when there is none.
   * The execution includes its jobDocument.
   */
  startNext(thingName: string, request: StartNextRequest): Promise<DeviceJobExecution | undefined>;
  /**
   * DescribeJobExecution; `jobId` `$next` is the next pending execution (undefined when none).
   * ResourceNotFound for an unknown execution.
   */
  describe(thingName: string, jobId: string, request: DescribeRequest): Promise<DeviceJobExecution | undefined>;
  /** UpdateJobExecution (expectedVersion, step timer, terminal statuses, the job's abort check). */
  update(thingName: string, jobId: string, request: UpdateRequest): Promise<UpdateResult>;
}

/** The two notifications IoT Jobs sends a thing (`…/jobs/notify` and `…/jobs/notify-next`). */
export interface JobsNotifications {
  /**
   * A pending execution of the thing was added or left the pending list: the new lists (only the
   * non-empty statuses are keys, as IoT sends them).
   */
  executionsChanged(
    thingName: string,
    jobs: Partial<Record<'QUEUED' | 'IN_PROGRESS', readonly JobExecutionSummary[]>>,
    at: number,
  ): void;
  /** The thing's next pending execution changed: the new one (with its document), or undefined when none is left. */
  nextChanged(thingName: string, execution: DeviceJobExecution | undefined, at: number): void;
}
