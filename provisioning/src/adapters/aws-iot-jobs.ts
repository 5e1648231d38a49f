import {
  CancelJobCommand,
  CreateJobCommand,
  DescribeJobCommand,
  DescribeJobExecutionCommand,
  type IoTClient,
  ListJobExecutionsForJobCommand,
  ListJobsCommand,
} from '@aws-sdk/client-iot';
import type { JobExecutionStatus, JobStatus, TargetSelection } from '@pifleet/protocol';
import { isThrottling } from '../core/retry.js';
import type { JobExecutionRecord, JobRecord, JobsControl } from '../ports/jobs.js';
import { type AwsCallDeps, awsCaller, isNotFound } from './aws-call.js';

export interface AwsIotJobsDeps extends AwsCallDeps {
  readonly client: IoTClient;
}

/** {@link JobsControl} over `@aws-sdk/client-iot`: every call rate limited and retried on throttling. */
export function createAwsIotJobs(deps: AwsIotJobsDeps): JobsControl {
  const { client } = deps;
  const { call, requestOptions: opts } = awsCaller(deps);

  return {
    async createJob(input) {
      // Only a throttled CreateJob is sent again: after a 5xx or a dropped connection the job may
      // exist, and a second CreateJob would fail with ResourceAlreadyExistsException on our own job.
      const r = await call(
        'CreateJob',
        () =>
          client.send(
            new CreateJobCommand({
              jobId: input.jobId,
              targets: [...input.targets],
              document: input.document,
              targetSelection: input.targetSelection,
              ...(input.description !== undefined ? { description: input.description } : {}),
              ...(input.jobExecutionsRolloutConfig
                ? { jobExecutionsRolloutConfig: input.jobExecutionsRolloutConfig }
                : {}),
              ...(input.abortConfig ? { abortConfig: { criteriaList: [...input.abortConfig.criteriaList] } } : {}),
              ...(input.timeoutConfig ? { timeoutConfig: input.timeoutConfig } : {}),
              ...(input.jobExecutionsRetryConfig
                ? { jobExecutionsRetryConfig: { criteriaList: [...input.jobExecutionsRetryConfig.criteriaList] } }
                : {}),
              ...(input.presignedUrlConfig ? { presignedUrlConfig: input.presignedUrlConfig } : {}),
            }),
            opts,
          ),
        isThrottling,
      );
      return { jobId: r.jobId ?? input.jobId, ...(r.jobArn ? { jobArn: r.jobArn } : {}) };
    },

    async describeJob(jobId) {
      try {
        const r = await call('DescribeJob', () => client.send(new DescribeJobCommand({ jobId }), opts));
        const j = r.job;
        if (!j) return undefined;
        const d = j.jobProcessDetails ?? {};
        const record: JobRecord = {
          jobId: j.jobId ?? jobId,
          ...(j.jobArn ? { jobArn: j.jobArn } : {}),
          status: (j.status ?? 'IN_PROGRESS') as JobStatus,
          ...(j.targetSelection ? { targetSelection: j.targetSelection as TargetSelection } : {}),
          targets: j.targets ?? [],
          ...(j.description ? { description: j.description } : {}),
          ...(j.createdAt ? { createdAt: j.createdAt } : {}),
          ...(j.lastUpdatedAt ? { lastUpdatedAt: j.lastUpdatedAt } : {}),
          ...(j.completedAt ? { completedAt: j.completedAt } : {}),
          ...(j.forceCanceled !== undefined ? { forceCanceled: j.forceCanceled } : {}),
          ...(j.reasonCode ? { reasonCode: j.reasonCode } : {}),
          ...(j.comment ? { comment: j.comment } : {}),
          counts: {
            queued: d.numberOfQueuedThings ?? 0,
            inProgress: d.numberOfInProgressThings ?? 0,
            succeeded: d.numberOfSucceededThings ?? 0,
            failed: d.numberOfFailedThings ?? 0,
            rejected: d.numberOfRejectedThings ?? 0,
            timedOut: d.numberOfTimedOutThings ?? 0,
            canceled: d.numberOfCanceledThings ?? 0,
            removed: d.numberOfRemovedThings ?? 0,
          },
        };
        return record;
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },

    async listJobs(page) {
      const r = await call('ListJobs', () =>
        client.send(
          new ListJobsCommand({
            ...(page.status ? { status: page.status } : {}),
            ...(page.thingGroupName ? { thingGroupName: page.thingGroupName } : {}),
            ...(page.maxResults ? { maxResults: page.maxResults } : {}),
            ...(page.nextToken ? { nextToken: page.nextToken } : {}),
          }),
          opts,
        ),
      );
      return {
        jobs: (r.jobs ?? []).map((j) => ({
          jobId: j.jobId ?? '',
          status: (j.status ?? 'IN_PROGRESS') as JobStatus,
          ...(j.targetSelection ? { targetSelection: j.targetSelection as TargetSelection } : {}),
          ...(j.createdAt ? { createdAt: j.createdAt } : {}),
          ...(j.completedAt ? { completedAt: j.completedAt } : {}),
        })),
        ...(r.nextToken ? { nextToken: r.nextToken } : {}),
      };
    },

    async listExecutions(jobId) {
      const out: JobExecutionRecord[] = [];
      let nextToken: string | undefined;
      try {
        do {
          const token = nextToken;
          const r = await call('ListJobExecutionsForJob', () =>
            client.send(
              new ListJobExecutionsForJobCommand({ jobId, maxResults: 250, ...(token ? { nextToken: token } : {}) }),
              opts,
            ),
          );
          for (const e of r.executionSummaries ?? []) {
            const s = e.jobExecutionSummary ?? {};
            out.push({
              // A thing ARN ends in `thing/NAME`; thing names have no `/`.
              thingName: (e.thingArn ?? '').slice((e.thingArn ?? '').lastIndexOf('/') + 1),
              status: (s.status ?? 'QUEUED') as JobExecutionStatus,
              ...(s.executionNumber !== undefined ? { executionNumber: s.executionNumber } : {}),
              ...(s.lastUpdatedAt ? { lastUpdatedAt: s.lastUpdatedAt } : {}),
            });
          }
          nextToken = r.nextToken ?? undefined;
        } while (nextToken);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      return out;
    },

    async describeExecution(jobId, thingName) {
      try {
        const r = await call('DescribeJobExecution', () =>
          client.send(new DescribeJobExecutionCommand({ jobId, thingName }), opts),
        );
        const e = r.execution;
        if (!e) return undefined;
        const details = e.statusDetails?.detailsMap;
        return {
          thingName,
          status: (e.status ?? 'QUEUED') as JobExecutionStatus,
          ...(e.executionNumber !== undefined ? { executionNumber: e.executionNumber } : {}),
          ...(e.lastUpdatedAt ? { lastUpdatedAt: e.lastUpdatedAt } : {}),
          ...(details && Object.keys(details).length > 0 ? { statusDetails: details } : {}),
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },

    async cancelJob(jobId, options) {
      try {
        await call('CancelJob', () =>
          client.send(
            new CancelJobCommand({
              jobId,
              force: options.force,
              ...(options.comment !== undefined ? { comment: options.comment } : {}),
              ...(options.reasonCode !== undefined ? { reasonCode: options.reasonCode } : {}),
            }),
            opts,
          ),
        );
        return true;
      } catch (err) {
        if (isNotFound(err)) return false;
        throw err;
      }
    },
  };
}
