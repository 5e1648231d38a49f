import { randomUUID } from 'node:crypto';
import { isJobExecutionStatus } from '@pifleet/protocol';
import { iotjobs } from 'aws-iot-device-sdk-v2';
import type { NativeMqttClient } from '../adapters/aws-iot-sdk.js';
import { modeledErrorOf, newServiceClient, serviceCaller, serviceStreams } from '../adapters/sdk-request-response.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Clock, createSystemClock } from '../ports/clock.js';
import {
  type ExecutionState,
  type JobExecution,
  JobsError,
  JobsRejectedError,
  type JobsService,
  JobsTimeoutError,
  statusDetailsOf,
} from './port.js';

export interface IotJobsServiceOptions {
  readonly native: NativeMqttClient;
  readonly thingName: string;
  readonly requestTimeoutMs: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/** The state an SDK answer or rejection carries, when it is a complete one. */
function stateOf(s: iotjobs.model.JobExecutionState | undefined): ExecutionState | undefined {
  if (!s || !isJobExecutionStatus(s.status) || typeof s.versionNumber !== 'number') return undefined;
  const statusDetails = statusDetailsOf(s.statusDetails);
  return { status: s.status, versionNumber: s.versionNumber, ...(statusDetails ? { statusDetails } : {}) };
}

function executionOf(e: iotjobs.model.JobExecutionData | undefined): JobExecution | undefined {
  if (!e || typeof e.jobId !== 'string' || !isJobExecutionStatus(e.status)) return undefined;
  const statusDetails = statusDetailsOf(e.statusDetails);
  return {
    jobId: e.jobId,
    status: e.status,
    versionNumber: e.versionNumber ?? 0,
    executionNumber: e.executionNumber ?? 0,
    ...(statusDetails ? { statusDetails } : {}),
    ...(e.jobDocument === undefined ? {} : { jobDocument: e.jobDocument }),
  };
}

/** A rejection when the service answered with a code; a plain `JobsError` when it never answered. */
function wrap(operation: string, err: unknown): JobsError {
  if (err instanceof JobsError) return err;
  const modeled = modeledErrorOf<iotjobs.model.V2ErrorResponse>(err);
  if (typeof modeled?.code !== 'string') {
    return new JobsError('JOBS_REQUEST_FAILED', `jobs ${operation} failed`, { cause: err, data: { operation } });
  }
  const executionState = stateOf(modeled.executionState);
  return new JobsRejectedError(
    operation,
    { code: modeled.code, message: modeled.message, ...(executionState ? { executionState } : {}) },
    { cause: err },
  );
}

/**
 * The jobs service over the device SDK's `iotjobs.IotJobsClientv2`, sharing the transport's MQTT
 * connection (MQTT 5 client or 3.1.1 connection) as the shadow client does. The SDK correlates
 * answers by clientToken and re-subscribes its streams after reconnects; this adds a timeout on the
 * injected clock to every request and maps the SDK's errors to the port's.
 */
export function createIotJobsService(opts: IotJobsServiceOptions): JobsService {
  const clock = opts.clock ?? createSystemClock();
  const log = (opts.logger ?? silentLogger()).child({ component: 'jobs-client' });
  const client = newServiceClient(iotjobs.IotJobsClientv2, opts.native, opts.requestTimeoutMs);
  const streams = serviceStreams(log);
  const { thingName } = opts;
  let closed = false;

  const call = serviceCaller({
    clock,
    requestTimeoutMs: opts.requestTimeoutMs,
    isClosed: () => closed,
    errors: {
      closed: (operation) => new JobsError('JOBS_CLOSED', `jobs ${operation} after close()`, { data: { operation } }),
      timedOut: (operation) => new JobsTimeoutError(operation, opts.requestTimeoutMs),
      wrap,
    },
  });

  return {
    async startNext(request = {}) {
      const r = await call('start-next', () =>
        client.startNextPendingJobExecution({
          thingName,
          clientToken: randomUUID(),
          ...(request.statusDetails ? { statusDetails: { ...request.statusDetails } } : {}),
          ...(request.stepTimeoutInMinutes === undefined ? {} : { stepTimeoutInMinutes: request.stepTimeoutInMinutes }),
        }),
      );
      return executionOf(r.execution);
    },
    async describe(jobId, executionNumber) {
      try {
        const r = await call('describe', () =>
          client.describeJobExecution({
            thingName,
            jobId,
            clientToken: randomUUID(),
            includeJobDocument: true,
            ...(executionNumber === undefined ? {} : { executionNumber }),
          }),
        );
        return executionOf(r.execution);
      } catch (err) {
        if (err instanceof JobsRejectedError && err.serviceCode === 'ResourceNotFound') return undefined;
        throw err;
      }
    },
    async update(jobId, request) {
      const r = await call('update', () =>
        client.updateJobExecution({
          thingName,
          jobId,
          clientToken: randomUUID(),
          status: request.status as iotjobs.model.JobStatus,
          includeJobExecutionState: true,
          ...(request.statusDetails ? { statusDetails: { ...request.statusDetails } } : {}),
          ...(request.expectedVersion === undefined ? {} : { expectedVersion: request.expectedVersion }),
          ...(request.executionNumber === undefined ? {} : { executionNumber: request.executionNumber }),
          ...(request.stepTimeoutInMinutes === undefined ? {} : { stepTimeoutInMinutes: request.stepTimeoutInMinutes }),
        }),
      );
      return stateOf(r.executionState);
    },
    onNextChanged(listener) {
      if (closed) throw new JobsError('JOBS_CLOSED', 'jobs notify-next after close()');
      return streams.open(
        client.createNextJobExecutionChangedStream({ thingName }),
        (message) => listener(executionOf(message.execution)),
        { undecodable: 'undecodable notify-next message', status: 'notify-next subscription status' },
      );
    },
    onStreamRestored(listener) {
      return streams.onRestored(listener);
    },
    /**
     * Streams first, then the request-response client, both before the MQTT client underneath stops.
     * Neither is quiet at once: each stream's UNSUBSCRIBE goes out a moment later, and `client.close()`
     * (aws-crt 1.33) only drops the JS references, the native client living on until its wrapper is
     * collected, so a request still subscribing publishes once its SUBACK comes. A DISCONNECT sent
     * before the broker has acknowledged those packets can cost the agent its offline status: the
     * acknowledgements reach the socket the SDK closed right after the DISCONNECT, and a broker that
     * has not read the DISCONNECT yet when its write fails (aedes) publishes the last will.
     */
    close() {
      if (closed) return;
      closed = true;
      streams.closeAll();
      client.close();
    },
  };
}
