import {
  ABORT_FAILURE_TYPES,
  JOB_STATUSES as IOT_JOB_STATUSES,
  isJsonObject,
  JOB_EXECUTION_STATUSES,
  RETRY_FAILURE_TYPES,
  TARGET_SELECTIONS,
} from '@pifleet/protocol';
import { type Body, field, list, num, obj, oneOf, str } from '../http/body-fields.js';
import { invalidRequest } from '../http/errors.js';
import { queryBoolean } from '../http/iot-control-plane.js';
import { decodePageToken as decodeToken, nextTokenOf as nextToken } from '../http/page-token.js';
import type { ApiRequest, ApiResponse, Route, RouteGroup } from '../http/server.js';
import {
  type AbortCriterion,
  type ExecutionRecord,
  JOB_LIMITS,
  type JobStatus,
  type PresignedUrlConfig,
  type RetryCriterion,
  type RolloutConfig,
} from './model.js';
import type { CreateJobInput, JobsService, JobView } from './service.js';
import { hasAtMostDecimals, reasonCodeProblem, textProblem } from './validation.js';

/**
 * The IoT Jobs operations of the IoT control plane (signing name `iot`), wire-compatible with
 * `@aws-sdk/client-iot`: CreateJob, DescribeJob, ListJobs, CancelJob, DeleteJob,
 * DescribeJobExecution, ListJobExecutionsForJob, ListJobExecutionsForThing, CancelJobExecution
 * and GetJobDocument, with the paths, query bindings and field names of the IoT service model.
 * Timestamps are epoch seconds (REST-JSON's default). Bodies are read field by field from the
 * parsed JSON (the server's `json()` has already refused one that is not UTF-8 or too deep) with
 * own-key reads, every value checked against the API reference's types and ranges; a field the local core does not implement (scheduling, templates, namespaces, document
 * parameters, package versions) is refused rather than ignored.
 */

export interface JobsControlPlaneDeps {
  readonly jobs: JobsService;
}

const UNSUPPORTED_CREATE_FIELDS = [
  'schedulingConfig',
  'jobTemplateArn',
  'documentParameters',
  'destinationPackageVersions',
  'namespaceId',
] as const;

function rolloutConfig(body: Body): RolloutConfig | undefined {
  const r = obj(body, 'jobExecutionsRolloutConfig');
  if (r === undefined) return undefined;
  const maximumPerMinute = num(r, 'maximumPerMinute', 1, JOB_LIMITS.maxMaximumPerMinute, true);
  const e = obj(r, 'exponentialRate');
  if (e === undefined) return maximumPerMinute === undefined ? {} : { maximumPerMinute };
  const baseRatePerMinute = num(e, 'baseRatePerMinute', 1, 1000, true);
  const incrementFactor = num(e, 'incrementFactor', 1, 5, false);
  const c = obj(e, 'rateIncreaseCriteria');
  if (baseRatePerMinute === undefined || incrementFactor === undefined || c === undefined) {
    throw invalidRequest('exponentialRate needs baseRatePerMinute, incrementFactor and rateIncreaseCriteria.');
  }
  // "AWS IoT supports up to one digit after the decimal (for example, 1.5, but not 1.55)."
  if (!hasAtMostDecimals(incrementFactor, 1)) {
    throw invalidRequest("'incrementFactor' supports one digit after the decimal point.");
  }
  const notified = num(c, 'numberOfNotifiedThings', 1, Number.MAX_SAFE_INTEGER, true);
  const succeeded = num(c, 'numberOfSucceededThings', 1, Number.MAX_SAFE_INTEGER, true);
  if ((notified === undefined) === (succeeded === undefined)) {
    throw invalidRequest(
      'rateIncreaseCriteria needs exactly one of numberOfNotifiedThings and numberOfSucceededThings.',
    );
  }
  return {
    ...(maximumPerMinute === undefined ? {} : { maximumPerMinute }),
    exponentialRate: {
      baseRatePerMinute,
      incrementFactor,
      rateIncreaseCriteria:
        notified === undefined
          ? { numberOfSucceededThings: succeeded as number }
          : { numberOfNotifiedThings: notified },
    },
  };
}

function criteriaList(body: Body, name: string): readonly Body[] | undefined {
  const o = obj(body, name);
  if (o === undefined) return undefined;
  const items = list(o, 'criteriaList');
  if (items === undefined || items.length === 0)
    throw invalidRequest(`'${name}.criteriaList' needs at least one criterion.`);
  return items.map((item) => {
    if (!isJsonObject(item)) throw invalidRequest(`'${name}.criteriaList' items must be objects.`);
    return item;
  });
}

function abortConfig(body: Body): readonly AbortCriterion[] | undefined {
  return criteriaList(body, 'abortConfig')?.map((c) => {
    const failureType = oneOf(str(c, 'failureType'), 'failureType', ABORT_FAILURE_TYPES);
    const action = oneOf(str(c, 'action'), 'action', ['CANCEL']);
    const thresholdPercentage = num(c, 'thresholdPercentage', 0, 100, false);
    const minNumberOfExecutedThings = num(c, 'minNumberOfExecutedThings', 1, Number.MAX_SAFE_INTEGER, true);
    if (
      failureType === undefined ||
      action === undefined ||
      thresholdPercentage === undefined ||
      minNumberOfExecutedThings === undefined
    ) {
      throw invalidRequest(
        'An abort criterion needs failureType, action, thresholdPercentage and minNumberOfExecutedThings.',
      );
    }
    // "AWS IoT Core supports up to two digits after the decimal (for example, 10.9 and 10.99, but not 10.999)."
    if (!hasAtMostDecimals(thresholdPercentage, 2)) {
      throw invalidRequest("'thresholdPercentage' supports two digits after the decimal point.");
    }
    return { failureType, action, thresholdPercentage, minNumberOfExecutedThings };
  });
}

function retryConfig(body: Body): readonly RetryCriterion[] | undefined {
  const criteria = criteriaList(body, 'jobExecutionsRetryConfig');
  if (criteria === undefined) return undefined;
  if (criteria.length > 2) throw invalidRequest("'jobExecutionsRetryConfig.criteriaList' has at most 2 criteria.");
  const parsed = criteria.map((c) => {
    const failureType = oneOf(str(c, 'failureType'), 'failureType', RETRY_FAILURE_TYPES);
    const numberOfRetries = num(c, 'numberOfRetries', 0, JOB_LIMITS.maxRetries, true);
    if (failureType === undefined || numberOfRetries === undefined) {
      throw invalidRequest('A retry criterion needs failureType and numberOfRetries.');
    }
    return { failureType, numberOfRetries };
  });
  if (new Set(parsed.map((c) => c.failureType)).size !== parsed.length) {
    throw invalidRequest('Each retry failureType may appear once.');
  }
  return parsed;
}

function presignedUrlConfig(body: Body): PresignedUrlConfig | undefined {
  const p = obj(body, 'presignedUrlConfig');
  if (p === undefined) return undefined;
  const roleArn = str(p, 'roleArn');
  if (roleArn !== undefined && (roleArn.length < 20 || roleArn.length > 2048)) {
    throw invalidRequest("'roleArn' must be 20 to 2048 characters.");
  }
  const expiresInSec = num(p, 'expiresInSec', 60, 3600, true);
  return {
    ...(roleArn === undefined ? {} : { roleArn }),
    ...(expiresInSec === undefined ? {} : { expiresInSec }),
  };
}

/** CreateJob's body, read and checked (the service checks ids, targets and the document). */
export function createJobInput(jobId: string, body: Body): CreateJobInput {
  for (const name of UNSUPPORTED_CREATE_FIELDS) {
    if (field(body, name) !== undefined) throw invalidRequest(`'${name}' is not supported by the local IoT Core.`);
  }
  const targets = list(body, 'targets');
  if (targets === undefined || targets.length === 0) throw invalidRequest("'targets' needs at least one ARN.");
  if (!targets.every((t): t is string => typeof t === 'string')) throw invalidRequest("'targets' must be strings.");
  const description = str(body, 'description');
  const descriptionProblem =
    description === undefined ? undefined : textProblem('description', description, JOB_LIMITS.maxDescriptionLength);
  if (descriptionProblem) throw invalidRequest(descriptionProblem);
  const documentSource = str(body, 'documentSource');
  if (documentSource !== undefined && (documentSource.length < 1 || documentSource.length > 1350)) {
    throw invalidRequest("'documentSource' must be 1 to 1350 characters.");
  }
  const timeout = obj(body, 'timeoutConfig');
  const inProgressTimeoutInMinutes =
    timeout === undefined
      ? undefined
      : num(timeout, 'inProgressTimeoutInMinutes', 1, JOB_LIMITS.maxTimeoutMinutes, true);
  // `tags` are accepted and not kept: the local core has no tagging API to read them back.
  list(body, 'tags');
  return {
    jobId,
    targets,
    document: str(body, 'document'),
    documentSource,
    description,
    targetSelection: oneOf(str(body, 'targetSelection'), 'targetSelection', TARGET_SELECTIONS),
    presignedUrlConfig: presignedUrlConfig(body),
    rollout: rolloutConfig(body),
    abort: abortConfig(body),
    inProgressTimeoutInMinutes,
    retry: retryConfig(body),
  };
}

// ---- responses ---------------------------------------------------------------------------------

const epoch = (ms: number) => ms / 1000;
const ok = (json: unknown = {}): ApiResponse => ({ json });

function jobJson(view: JobView) {
  const { job, details, isConcurrent } = view;
  return {
    jobArn: job.jobArn,
    jobId: job.jobId,
    targetSelection: job.targetSelection,
    status: job.status,
    forceCanceled: job.forceCanceled === true,
    ...(job.reasonCode === undefined ? {} : { reasonCode: job.reasonCode }),
    ...(job.comment === undefined ? {} : { comment: job.comment }),
    targets: job.targets,
    ...(job.description === undefined ? {} : { description: job.description }),
    ...(job.presignedUrlConfig === undefined ? {} : { presignedUrlConfig: job.presignedUrlConfig }),
    ...(job.rollout === undefined ? {} : { jobExecutionsRolloutConfig: job.rollout }),
    ...(job.abort === undefined ? {} : { abortConfig: { criteriaList: job.abort } }),
    createdAt: epoch(job.createdAt),
    lastUpdatedAt: epoch(job.lastUpdatedAt),
    ...(job.completedAt === undefined ? {} : { completedAt: epoch(job.completedAt) }),
    jobProcessDetails: details,
    ...(job.inProgressTimeoutInMinutes === undefined
      ? {}
      : { timeoutConfig: { inProgressTimeoutInMinutes: job.inProgressTimeoutInMinutes } }),
    ...(job.retry === undefined ? {} : { jobExecutionsRetryConfig: { criteriaList: job.retry } }),
    isConcurrent,
  };
}

const jobSummaryJson = ({ job, isConcurrent }: JobView) => ({
  jobArn: job.jobArn,
  jobId: job.jobId,
  targetSelection: job.targetSelection,
  status: job.status,
  createdAt: epoch(job.createdAt),
  lastUpdatedAt: epoch(job.lastUpdatedAt),
  ...(job.completedAt === undefined ? {} : { completedAt: epoch(job.completedAt) }),
  isConcurrent,
});

const executionSummaryJson = (e: ExecutionRecord) => ({
  status: e.status,
  queuedAt: epoch(e.queuedAt),
  ...(e.startedAt === undefined ? {} : { startedAt: epoch(e.startedAt) }),
  lastUpdatedAt: epoch(e.lastUpdatedAt),
  executionNumber: e.executionNumber,
  retryAttempt: e.retryAttempt,
});

// ---- query parameters and page tokens ----------------------------------------------------------

function queryInt(request: ApiRequest, name: string, min: number, max: number): number | undefined {
  const raw = request.query.get(name);
  if (raw === undefined) return undefined;
  const n = /^-?\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw invalidRequest(`Query parameter '${name}' must be an integer from ${min} to ${max}.`);
  }
  return n;
}

const DEFAULT_PAGE = 50;
const pageSize = (request: ApiRequest) => queryInt(request, 'maxResults', 1, JOB_LIMITS.maxResults) ?? DEFAULT_PAGE;

// The local core schedules nothing, so a ListJobs filter on SCHEDULED is refused as before.
const JOB_STATUSES: readonly JobStatus[] = IOT_JOB_STATUSES.filter((s): s is JobStatus => s !== 'SCHEDULED');

function refuseNamespace(request: ApiRequest): void {
  if (request.query.get('namespaceId') !== undefined) {
    throw invalidRequest("'namespaceId' is not supported by the local IoT Core.");
  }
}

export function jobsControlPlaneRoutes(deps: JobsControlPlaneDeps): RouteGroup {
  const { jobs } = deps;
  const param = (request: ApiRequest, name: string) => request.params[name] as string;

  const routes: Route[] = [
    {
      method: 'PUT',
      path: '/jobs/{jobId}',
      operation: 'CreateJob',
      async handle(request) {
        const input = createJobInput(param(request, 'jobId'), request.json());
        const job = await jobs.createJob(input);
        return ok({
          jobArn: job.jobArn,
          jobId: job.jobId,
          ...(job.description === undefined ? {} : { description: job.description }),
        });
      },
    },
    {
      method: 'GET',
      path: '/jobs/{jobId}',
      operation: 'DescribeJob',
      handle(request) {
        const view = jobs.describeJob(param(request, 'jobId'));
        return ok({
          ...(view.job.documentSource === undefined ? {} : { documentSource: view.job.documentSource }),
          job: jobJson(view),
        });
      },
    },
    {
      method: 'GET',
      path: '/jobs',
      operation: 'ListJobs',
      handle(request) {
        refuseNamespace(request);
        if (request.query.get('thingGroupId') !== undefined) {
          throw invalidRequest("'thingGroupId' is not supported by the local IoT Core: filter by thingGroupName.");
        }
        const page = jobs.listJobs({
          status: oneOf(request.query.get('status'), 'status', JOB_STATUSES),
          targetSelection: oneOf(request.query.get('targetSelection'), 'targetSelection', TARGET_SELECTIONS),
          thingGroupName: request.query.get('thingGroupName'),
          after: decodeToken(request, 'number'),
          limit: pageSize(request),
        });
        return ok({ jobs: page.items.map(jobSummaryJson), ...nextToken(page.next) });
      },
    },
    {
      method: 'PUT',
      path: '/jobs/{jobId}/cancel',
      operation: 'CancelJob',
      handle(request) {
        const body = request.json();
        const reasonCode = str(body, 'reasonCode');
        const comment = str(body, 'comment');
        const problem =
          (reasonCode === undefined ? undefined : reasonCodeProblem(reasonCode)) ??
          (comment === undefined ? undefined : textProblem('comment', comment, JOB_LIMITS.maxCommentLength));
        if (problem) throw invalidRequest(problem);
        const job = jobs.cancelJob(param(request, 'jobId'), {
          force: queryBoolean(request, 'force') === true,
          ...(reasonCode === undefined ? {} : { reasonCode }),
          ...(comment === undefined ? {} : { comment }),
        });
        return ok({
          jobArn: job.jobArn,
          jobId: job.jobId,
          ...(job.description === undefined ? {} : { description: job.description }),
        });
      },
    },
    {
      method: 'DELETE',
      path: '/jobs/{jobId}',
      operation: 'DeleteJob',
      handle(request) {
        refuseNamespace(request);
        jobs.deleteJob(param(request, 'jobId'), { force: queryBoolean(request, 'force') === true });
        return ok();
      },
    },
    {
      method: 'GET',
      path: '/jobs/{jobId}/job-document',
      operation: 'GetJobDocument',
      handle(request) {
        // beforeSubstitution concerns documentParameters (job templates), which the local core has
        // not: the document is the same either way. Checked so a malformed value is still refused.
        queryBoolean(request, 'beforeSubstitution');
        return ok({ document: jobs.getJobDocument(param(request, 'jobId')) });
      },
    },
    {
      method: 'GET',
      path: '/things/{thingName}/jobs/{jobId}',
      operation: 'DescribeJobExecution',
      handle(request) {
        const { execution: e, approximateSecondsBeforeTimedOut } = jobs.describeExecution(
          param(request, 'jobId'),
          param(request, 'thingName'),
          queryInt(request, 'executionNumber', 0, Number.MAX_SAFE_INTEGER),
        );
        return ok({
          execution: {
            jobId: e.jobId,
            status: e.status,
            forceCanceled: e.forceCanceled === true,
            ...(e.statusDetails === undefined ? {} : { statusDetails: { detailsMap: e.statusDetails } }),
            thingArn: jobs.thingArn(e.thingName),
            queuedAt: epoch(e.queuedAt),
            ...(e.startedAt === undefined ? {} : { startedAt: epoch(e.startedAt) }),
            lastUpdatedAt: epoch(e.lastUpdatedAt),
            executionNumber: e.executionNumber,
            versionNumber: e.versionNumber,
            ...(approximateSecondsBeforeTimedOut === undefined ? {} : { approximateSecondsBeforeTimedOut }),
          },
        });
      },
    },
    {
      method: 'GET',
      path: '/jobs/{jobId}/things',
      operation: 'ListJobExecutionsForJob',
      handle(request) {
        const page = jobs.listExecutionsForJob(param(request, 'jobId'), {
          status: oneOf(request.query.get('status'), 'status', JOB_EXECUTION_STATUSES),
          after: decodeToken(request, 'string'),
          limit: pageSize(request),
        });
        return ok({
          executionSummaries: page.items.map((e) => ({
            thingArn: jobs.thingArn(e.thingName),
            jobExecutionSummary: executionSummaryJson(e),
          })),
          ...nextToken(page.next),
        });
      },
    },
    {
      method: 'GET',
      path: '/things/{thingName}/jobs',
      operation: 'ListJobExecutionsForThing',
      handle(request) {
        refuseNamespace(request);
        const page = jobs.listExecutionsForThing(param(request, 'thingName'), {
          status: oneOf(request.query.get('status'), 'status', JOB_EXECUTION_STATUSES),
          jobId: request.query.get('jobId'),
          after: decodeToken(request, 'number'),
          limit: pageSize(request),
        });
        return ok({
          executionSummaries: page.items.map((e) => ({ jobId: e.jobId, jobExecutionSummary: executionSummaryJson(e) })),
          ...nextToken(page.next),
        });
      },
    },
    {
      method: 'PUT',
      path: '/things/{thingName}/jobs/{jobId}/cancel',
      operation: 'CancelJobExecution',
      handle(request) {
        const body = request.json();
        const expectedVersion = num(body, 'expectedVersion', 0, Number.MAX_SAFE_INTEGER, true);
        const statusDetails = field(body, 'statusDetails');
        jobs.cancelExecution(param(request, 'jobId'), param(request, 'thingName'), {
          force: queryBoolean(request, 'force') === true,
          ...(expectedVersion === undefined ? {} : { expectedVersion }),
          ...(statusDetails === undefined ? {} : { statusDetails }),
        });
        return ok();
      },
    },
  ];
  return { name: 'iot-jobs', signingNames: ['iot'], routes };
}
