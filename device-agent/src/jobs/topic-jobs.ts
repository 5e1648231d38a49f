import { randomUUID } from 'node:crypto';
import { isJobExecutionStatus, isJsonObject, jobsTopics } from '@pifleet/protocol';
import {
  type AnswerDoc,
  type AnswerTopics,
  createTopicRequests,
  createTopicStream,
  ownField as own,
} from '../adapters/topic-request-response.js';
import { type Logger, silentLogger } from '../logger.js';
import type { Clock } from '../ports/clock.js';
import type { Transport } from '../ports/transport.js';
import {
  type ExecutionState,
  type JobExecution,
  JobsError,
  JobsRejectedError,
  type JobsService,
  JobsTimeoutError,
  statusDetailsOf,
} from './port.js';

export interface TopicJobsOptions {
  readonly transport: Transport;
  readonly thingName: string;
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly token?: () => string;
}

function stateOf(v: unknown): ExecutionState | undefined {
  if (!isJsonObject(v)) return undefined;
  const status = own(v, 'status');
  const versionNumber = own(v, 'versionNumber');
  if (!isJobExecutionStatus(status) || typeof versionNumber !== 'number') return undefined;
  const statusDetails = statusDetailsOf(own(v, 'statusDetails'));
  return { status, versionNumber, ...(statusDetails ? { statusDetails } : {}) };
}

function executionOf(v: unknown): JobExecution | undefined {
  if (!isJsonObject(v)) return undefined;
  const jobId = own(v, 'jobId');
  const status = own(v, 'status');
  if (typeof jobId !== 'string' || !isJobExecutionStatus(status)) return undefined;
  const num = (k: string) => {
    const n = own(v, k);
    return typeof n === 'number' ? n : 0;
  };
  const statusDetails = statusDetailsOf(own(v, 'statusDetails'));
  const jobDocument = own(v, 'jobDocument');
  return {
    jobId,
    status,
    versionNumber: num('versionNumber'),
    executionNumber: num('executionNumber'),
    ...(statusDetails ? { statusDetails } : {}),
    ...(jobDocument === undefined ? {} : { jobDocument }),
  };
}

/**
 * IoT Jobs over its reserved MQTT topics on any `Transport` (the fleet's mqtt.js devices), the way
 * the device SDK's jobs client uses them: a request carries a `clientToken` and is answered on its
 * topic's `/accepted` or `/rejected` with the same token; every request has a timeout on the
 * injected clock; a request in flight fails at once when the connection is lost (a clean session
 * may lose the answer with it), and the runner asks again on the next connect. Answer topics are
 * subscribed on first use (a job's own topics when it first comes up), and the transport restores
 * subscriptions after a reconnect.
 */
export function createTopicJobsService(opts: TopicJobsOptions): JobsService {
  const { transport } = opts;
  const log = (opts.logger ?? silentLogger()).child({ component: 'jobs-client' });
  const topics = jobsTopics(opts.thingName);
  const requests = createTopicRequests({
    transport,
    clock: opts.clock,
    requestTimeoutMs: opts.requestTimeoutMs,
    token: opts.token ?? (() => randomUUID()),
    service: 'jobs',
    errors: {
      failed: (message, options) => new JobsError('JOBS_REQUEST_FAILED', message, options),
      closed: (operation) => new JobsError('JOBS_CLOSED', `jobs ${operation} after close()`, { data: { operation } }),
      timedOut: (operation) => new JobsTimeoutError(operation, opts.requestTimeoutMs),
      rejected(operation, doc) {
        const code = own(doc, 'code');
        if (typeof code !== 'string') return undefined;
        const message = own(doc, 'message');
        const executionState = stateOf(own(doc, 'executionState'));
        return new JobsRejectedError(operation, {
          code,
          message: typeof message === 'string' ? message : undefined,
          ...(executionState ? { executionState } : {}),
        });
      },
    },
  });
  const request = (operation: string, route: AnswerTopics & { readonly request: string }, body: AnswerDoc) =>
    requests.request(operation, route.request, [route], body);
  const next = createTopicStream({
    transport,
    topic: topics.notifyNext,
    log,
    messages: { undecodable: 'undecodable notify-next message', subscribeFailed: 'notify-next subscription failed' },
    read: (doc) => executionOf(own(doc, 'execution')),
  });

  return {
    async startNext(req = {}) {
      const doc = await request(
        'start-next',
        {
          request: topics.startNext,
          accepted: topics.startNextAccepted,
          rejected: topics.startNextRejected,
          filter: topics.startNextAnswers,
        },
        {
          ...(req.statusDetails ? { statusDetails: req.statusDetails } : {}),
          ...(req.stepTimeoutInMinutes === undefined ? {} : { stepTimeoutInMinutes: req.stepTimeoutInMinutes }),
        },
      );
      return executionOf(own(doc, 'execution'));
    },
    async describe(jobId, executionNumber) {
      const e = topics.execution(jobId);
      try {
        const doc = await request(
          'describe',
          { request: e.get, accepted: e.getAccepted, rejected: e.getRejected, filter: topics.executionGetAnswers },
          { includeJobDocument: true, ...(executionNumber === undefined ? {} : { executionNumber }) },
        );
        return executionOf(own(doc, 'execution'));
      } catch (err) {
        if (err instanceof JobsRejectedError && err.serviceCode === 'ResourceNotFound') return undefined;
        throw err;
      }
    },
    async update(jobId, req) {
      const e = topics.execution(jobId);
      const doc = await request(
        'update',
        {
          request: e.update,
          accepted: e.updateAccepted,
          rejected: e.updateRejected,
          filter: topics.executionUpdateAnswers,
        },
        {
          status: req.status,
          includeJobExecutionState: true,
          ...(req.statusDetails ? { statusDetails: req.statusDetails } : {}),
          ...(req.expectedVersion === undefined ? {} : { expectedVersion: req.expectedVersion }),
          ...(req.executionNumber === undefined ? {} : { executionNumber: req.executionNumber }),
          ...(req.stepTimeoutInMinutes === undefined ? {} : { stepTimeoutInMinutes: req.stepTimeoutInMinutes }),
        },
      );
      return stateOf(own(doc, 'executionState'));
    },
    onNextChanged(listener) {
      return next.add(listener);
    },
    onStreamRestored(listener) {
      return next.onRestored(listener);
    },
    close() {
      requests.close();
      next.clear();
    },
  };
}
