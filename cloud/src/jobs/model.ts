import type {
  AbortFailureType,
  JobStatus as IotJobStatus,
  JobExecutionStatus,
  RetryFailureType,
  TargetSelection,
} from '@pifleet/protocol';
import type { StatusDetails } from './device-api.js';

/**
 * The records of the local core's IoT Jobs service: a job (what CreateJob was given, its status
 * and its rollout progress) and a job execution (one run of a job on one thing). Times are
 * milliseconds since the epoch. Field names follow the IoT service model where a field has one.
 */

/** A job's status (IoT Jobs: "Job states"; the local core has no scheduling, so never SCHEDULED). */
export type JobStatus = Exclude<IotJobStatus, 'SCHEDULED'>;

export interface RateIncreaseCriteria {
  readonly numberOfNotifiedThings?: number;
  readonly numberOfSucceededThings?: number;
}

export interface ExponentialRolloutRate {
  readonly baseRatePerMinute: number;
  readonly incrementFactor: number;
  readonly rateIncreaseCriteria: RateIncreaseCriteria;
}

export interface RolloutConfig {
  readonly maximumPerMinute?: number;
  readonly exponentialRate?: ExponentialRolloutRate;
}

export interface AbortCriterion {
  readonly failureType: AbortFailureType;
  readonly action: 'CANCEL';
  readonly thresholdPercentage: number;
  readonly minNumberOfExecutedThings: number;
}

export interface RetryCriterion {
  readonly failureType: RetryFailureType;
  readonly numberOfRetries: number;
}

export interface PresignedUrlConfig {
  readonly roleArn?: string;
  readonly expiresInSec?: number;
}

export interface JobRecord {
  readonly jobId: string;
  readonly jobArn: string;
  readonly status: JobStatus;
  readonly targetSelection: TargetSelection;
  /** Thing and thing-group ARNs, as given. */
  readonly targets: readonly string[];
  readonly description?: string;
  /** The job document as given (or as read from documentSource), placeholders not replaced. */
  readonly document: string;
  readonly documentSource?: string;
  readonly presignedUrlConfig?: PresignedUrlConfig;
  readonly rollout?: RolloutConfig;
  readonly abort?: readonly AbortCriterion[];
  readonly inProgressTimeoutInMinutes?: number;
  readonly retry?: readonly RetryCriterion[];
  readonly createdAt: number;
  readonly lastUpdatedAt: number;
  readonly completedAt?: number;
  readonly forceCanceled?: boolean;
  readonly reasonCode?: string;
  readonly comment?: string;
  /** Executions the rollout has admitted (made visible to their things) so far, retries not counted. */
  readonly notified: number;
  /** Start of the current rollout minute, and how many executions it has admitted. */
  readonly windowStart: number;
  readonly windowAdmitted: number;
}

export interface ExecutionRecord {
  readonly jobId: string;
  readonly thingName: string;
  readonly executionNumber: number;
  readonly status: JobExecutionStatus;
  readonly statusDetails?: StatusDetails;
  readonly queuedAt: number;
  readonly startedAt?: number;
  readonly lastUpdatedAt: number;
  readonly versionNumber: number;
  /**
   * Admitted by the rollout: the thing sees it (pending lists, notifications, StartNext). An
   * execution that is not is QUEUED in the store and in the control plane's counts only.
   */
  readonly notified: boolean;
  /** When the step timer (from the device's stepTimeoutInMinutes) times the execution out. */
  readonly stepDeadline?: number;
  /** When the job's in-progress timer (timeoutConfig) times the execution out. */
  readonly inProgressDeadline?: number;
  readonly forceCanceled?: boolean;
  /** Retries so far of this thing's execution of the job, in total and by failure type. */
  readonly retryAttempt: number;
  readonly failedRetries: number;
  readonly timedOutRetries: number;
}

/** AWS IoT Jobs' documented limits and defaults the service applies (CreateJob, UpdateJobExecution API references). */
export const JOB_LIMITS = {
  /** CreateJob `document`: "Maximum length of 32768". */
  maxDocumentLength: 32_768,
  /** "If you don't set the value, it uses 1000 as the default value" (rollout configuration). */
  defaultMaximumPerMinute: 1000,
  maxMaximumPerMinute: 1000,
  maxStatusDetails: 10,
  maxStatusDetailKeyLength: 128,
  maxStatusDetailValueLength: 1024,
  /** stepTimeoutInMinutes and inProgressTimeoutInMinutes: 1 minute to 7 days. */
  maxTimeoutMinutes: 10_080,
  maxRetries: 10,
  /** GetPendingJobExecutions and the `notify` list: "up to a maximum of 10 pending job executions". */
  maxPendingListed: 10,
  maxDescriptionLength: 2028,
  maxCommentLength: 2028,
  maxReasonCodeLength: 128,
  maxResults: 250,
  rolloutWindowMs: 60_000,
} as const;
