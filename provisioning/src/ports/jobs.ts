import type {
  AbortFailureType,
  JobExecutionCounts,
  JobExecutionStatus,
  JobStatus,
  RetryFailureType,
  TargetSelection,
} from '@pifleet/protocol';

/**
 * The IoT Jobs control-plane operations the CLI uses (create, describe, list, cancel). The AWS SDK
 * adapter implements it for AWS IoT and the local IoT Core alike. "Not found" is a value
 * (`undefined`/`false`), never an exception; other failures throw the SDK's error.
 */

/** The job configurations CreateJob takes, in IoT's own shapes. */
export interface JobConfigurations {
  readonly targetSelection: TargetSelection;
  readonly jobExecutionsRolloutConfig?: { readonly maximumPerMinute: number };
  readonly abortConfig?: {
    readonly criteriaList: readonly {
      readonly failureType: AbortFailureType;
      readonly action: 'CANCEL';
      readonly thresholdPercentage: number;
      readonly minNumberOfExecutedThings: number;
    }[];
  };
  readonly timeoutConfig?: { readonly inProgressTimeoutInMinutes: number };
  readonly jobExecutionsRetryConfig?: {
    readonly criteriaList: readonly { readonly failureType: RetryFailureType; readonly numberOfRetries: number }[];
  };
  readonly presignedUrlConfig?: { readonly roleArn: string; readonly expiresInSec: number };
}

export interface CreateJobInput extends JobConfigurations {
  readonly jobId: string;
  /** Thing and thing-group ARNs. */
  readonly targets: readonly string[];
  /** The job document's JSON text. */
  readonly document: string;
  readonly description?: string;
}

export interface JobRecord {
  readonly jobId: string;
  readonly jobArn?: string;
  readonly status: JobStatus;
  readonly targetSelection?: TargetSelection;
  readonly targets: readonly string[];
  readonly description?: string;
  readonly createdAt?: Date;
  readonly lastUpdatedAt?: Date;
  readonly completedAt?: Date;
  readonly forceCanceled?: boolean;
  /** Why the job was canceled: an operator's code, or IoT's when an abort criterion canceled it. */
  readonly reasonCode?: string;
  readonly comment?: string;
  /** Executions of the job by status (DescribeJob's `jobProcessDetails`). */
  readonly counts: JobExecutionCounts;
}

export interface JobSummaryRecord {
  readonly jobId: string;
  readonly status: JobStatus;
  readonly targetSelection?: TargetSelection;
  readonly createdAt?: Date;
  readonly completedAt?: Date;
}

export interface JobPage {
  readonly jobs: readonly JobSummaryRecord[];
  readonly nextToken?: string;
}

/** One thing's execution of a job (ListJobExecutionsForJob). */
export interface JobExecutionRecord {
  readonly thingName: string;
  readonly status: JobExecutionStatus;
  readonly executionNumber?: number;
  readonly lastUpdatedAt?: Date;
  /** What the device reported (`statusDetails`): its step and, on failure, why. Only from describeExecution. */
  readonly statusDetails?: Readonly<Record<string, string>>;
}

export interface JobsControl {
  createJob(input: CreateJobInput): Promise<{ jobId: string; jobArn?: string }>;
  describeJob(jobId: string): Promise<JobRecord | undefined>;
  listJobs(page: {
    status?: JobStatus;
    thingGroupName?: string;
    maxResults?: number;
    nextToken?: string;
  }): Promise<JobPage>;
  /** Every execution of a job (all pages); undefined when there is no such job. */
  listExecutions(jobId: string): Promise<JobExecutionRecord[] | undefined>;
  /** One thing's execution with its statusDetails (DescribeJobExecution); undefined when there is none. */
  describeExecution(jobId: string, thingName: string): Promise<JobExecutionRecord | undefined>;
  /** Returns false when there is no such job. A job past cancelling throws the service's error. */
  cancelJob(jobId: string, options: { force: boolean; comment?: string; reasonCode?: string }): Promise<boolean>;
}
