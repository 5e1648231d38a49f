import { isValidJobId, isValidThingName, type JsonObject, NEXT_JOB_ID } from '@pifleet/protocol';
import { ApiError } from '../http/errors.js';
import type { ApiRequest, ApiResponse, Route, RouteGroup } from '../http/server.js';
import { type JobsDeviceApi, JobsDeviceError, type JobsErrorCode } from './device-api.js';
import {
  describeRequest,
  documentBody,
  executionBody,
  parseRequestBody,
  startNextRequest,
  stateBody,
  summaryBody,
  updateRequest,
} from './device-requests.js';

/**
 * The HTTP jobs data plane (`@aws-sdk/client-iot-jobs-data-plane`, restJson1, SigV4 service
 * `iot-jobs-data`): the four device operations of the jobs service, at the paths of the client's
 * operation schemas:
 *
 *   GET  /things/{thingName}/jobs                                   GetPendingJobExecutions
 *   PUT  /things/{thingName}/jobs/$next          body: statusDetails, stepTimeoutInMinutes
 *                                                                   StartNextPendingJobExecution
 *   GET  /things/{thingName}/jobs/{jobId}[?includeJobDocument=&executionNumber=]
 *                                                                   DescribeJobExecution ($next too)
 *   POST /things/{thingName}/jobs/{jobId}        body: status, statusDetails, expectedVersion, …
 *                                                                   UpdateJobExecution
 *
 * Times are whole seconds since the epoch, the job document is its text. A refusal answers the
 * exception the client maps for the jobs error code (below). The control plane's
 * DescribeJobExecution and ListJobExecutionsForThing share two of these paths on AWS's other
 * endpoint; here the signing name tells them apart.
 */

/** The SigV4 signing name of the jobs data plane (the client's `defaultSigningName`). */
export const JOBS_DATA_SIGNING_NAME = 'iot-jobs-data';

/**
 * The exception and status for each jobs error code, as the client package declares them
 * (IoTJobsDataPlane error shapes). VersionMismatch has no exception of its own over HTTP: the API
 * Reference lists InvalidStateTransitionException for an expectedVersion that does not match; an
 * internal error is the ServiceUnavailableException every operation lists.
 */
export const JOBS_DATA_ERRORS: Readonly<Record<JobsErrorCode, { readonly type: string; readonly status: number }>> = {
  InvalidTopic: { type: 'InvalidRequestException', status: 400 },
  InvalidJson: { type: 'InvalidRequestException', status: 400 },
  InvalidRequest: { type: 'InvalidRequestException', status: 400 },
  InvalidStateTransition: { type: 'InvalidStateTransitionException', status: 409 },
  VersionMismatch: { type: 'InvalidStateTransitionException', status: 409 },
  ResourceNotFound: { type: 'ResourceNotFoundException', status: 404 },
  TerminalStateReached: { type: 'TerminalStateException', status: 410 },
  RequestThrottled: { type: 'ThrottlingException', status: 429 },
  InternalError: { type: 'ServiceUnavailableException', status: 503 },
};

export interface JobsDataPlaneDeps {
  /** The running jobs service, or undefined while it is not (then 503 ServiceUnavailableException). */
  readonly api: () => JobsDeviceApi | undefined;
}

function toApiError(err: unknown): unknown {
  if (!(err instanceof JobsDeviceError)) return err;
  const { type, status } = JOBS_DATA_ERRORS[err.code];
  return new ApiError(type, status, err.message, { cause: err });
}

const invalidRequest = (message: string) => new ApiError('InvalidRequestException', 400, message);

function thingOf(request: ApiRequest): string {
  const thingName = request.params.thingName;
  if (!isValidThingName(thingName)) {
    throw invalidRequest('thingName must be 1 to 128 characters of a-z, A-Z, 0-9, ":", "_" and "-".');
  }
  return thingName;
}

function jobOf(request: ApiRequest, allowNext: boolean): string {
  const jobId = request.params.jobId;
  if (isValidJobId(jobId) || (allowNext && jobId === NEXT_JOB_ID)) return jobId as string;
  throw invalidRequest(
    `jobId must be 1 to 64 characters of a-z, A-Z, 0-9, "_" and "-"${allowNext ? ', or $next' : ''}.`,
  );
}

/** DescribeJobExecution's query (`includeJobDocument`, `executionNumber`) as the request object fields. */
function describeQuery(query: ReadonlyMap<string, string>): JsonObject {
  const out: JsonObject = {};
  const include = query.get('includeJobDocument');
  if (include !== undefined) {
    if (include !== 'true' && include !== 'false') throw invalidRequest('includeJobDocument must be true or false.');
    out.includeJobDocument = include === 'true';
  }
  const execution = query.get('executionNumber');
  if (execution !== undefined) {
    if (!/^[0-9]{1,15}$/.test(execution)) throw invalidRequest('executionNumber must be a whole number.');
    out.executionNumber = Number(execution);
  }
  return out;
}

export function jobsDataPlaneRoutes(deps: JobsDataPlaneDeps): RouteGroup {
  function running(): JobsDeviceApi {
    const api = deps.api();
    if (api === undefined) throw new ApiError('ServiceUnavailableException', 503, 'The jobs service is not running.');
    return api;
  }

  /** One operation: the service's refusals become the client's exceptions. */
  const route = (
    method: Route['method'],
    path: string,
    operation: string,
    run: (api: JobsDeviceApi, request: ApiRequest) => Promise<JsonObject>,
  ): Route => ({
    method,
    path,
    operation,
    async handle(request): Promise<ApiResponse> {
      try {
        return { json: await run(running(), request) };
      } catch (err) {
        throw toApiError(err);
      }
    },
  });

  return {
    name: 'iot-jobs-data',
    signingNames: [JOBS_DATA_SIGNING_NAME],
    routes: [
      route('GET', '/things/{thingName}/jobs', 'GetPendingJobExecutions', async (api, request) => {
        const lists = await api.getPending(thingOf(request));
        return { inProgressJobs: lists.inProgressJobs.map(summaryBody), queuedJobs: lists.queuedJobs.map(summaryBody) };
      }),
      route('PUT', `/things/{thingName}/jobs/${NEXT_JOB_ID}`, 'StartNextPendingJobExecution', async (api, request) => {
        const thingName = thingOf(request);
        const execution = await api.startNext(thingName, startNextRequest(parseRequestBody(request.body)));
        return execution === undefined ? {} : { execution: executionBody(execution, 'string') };
      }),
      route('GET', '/things/{thingName}/jobs/{jobId}', 'DescribeJobExecution', async (api, request) => {
        const thingName = thingOf(request);
        const jobId = jobOf(request, true);
        const execution = await api.describe(thingName, jobId, describeRequest(describeQuery(request.query)));
        return execution === undefined ? {} : { execution: executionBody(execution, 'string') };
      }),
      route('POST', '/things/{thingName}/jobs/{jobId}', 'UpdateJobExecution', async (api, request) => {
        const thingName = thingOf(request);
        const jobId = jobOf(request, false);
        const result = await api.update(thingName, jobId, updateRequest(parseRequestBody(request.body)));
        const out: JsonObject = {};
        if (result.executionState !== undefined) out.executionState = stateBody(result.executionState);
        if (result.jobDocument !== undefined) out.jobDocument = documentBody(result.jobDocument, 'string');
        return out;
      }),
    ],
  };
}
