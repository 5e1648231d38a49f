import { randomUUID } from 'node:crypto';
import { isJobExecutionStatus, isJsonObject, jobsTopics } from '@pifleet/protocol';
import { type Logger, silentLogger } from '../logger.js';
import { type Clock, withTimeout } from '../ports/clock.js';
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

type Doc = Record<string, unknown>;

interface Waiter {
  readonly operation: string;
  resolve(doc: Doc): void;
  reject(err: JobsError): void;
}

/**
 * An answer is read whatever its depth: a job document nested too deeply must still reach the
 * runner, which REJECTS it with the reason (`parseJobDocument` measures depth without recursion
 * before anything walks it); dropped here, its execution would never be answered. Nothing in this
 * adapter recurses into a payload: it reads the envelope's top-level fields and one level of
 * statusDetails. `JSON.parse` itself is iterative in V8, and a payload is bounded by the broker's
 * 128 KB message size.
 */
const decode = (payload: Uint8Array): Doc | undefined => {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  return isJsonObject(value) ? (value as Doc) : undefined;
};

const own = (doc: Doc, key: string): unknown => (Object.hasOwn(doc, key) ? doc[key] : undefined);

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
  const { transport, clock } = opts;
  const log = (opts.logger ?? silentLogger()).child({ component: 'jobs-client' });
  const topics = jobsTopics(opts.thingName);
  const token = opts.token ?? (() => randomUUID());
  const waiting = new Map<string, Waiter>();
  const subscribed = new Map<string, Promise<void>>();
  const nextListeners = new Set<(execution: JobExecution | undefined) => void>();
  let closed = false;

  const failAll = (message: string) => {
    for (const [t, w] of waiting) {
      waiting.delete(t);
      w.reject(new JobsError('JOBS_REQUEST_FAILED', message, { data: { operation: w.operation } }));
    }
  };
  const offInterrupted = transport.on('interrupted', () => failAll('jobs request lost with the connection'));

  const onAnswer = (accepted: boolean) => (_topic: string, payload: Uint8Array) => {
    const doc = decode(payload);
    const t = doc ? own(doc, 'clientToken') : undefined;
    const w = typeof t === 'string' ? waiting.get(t) : undefined;
    if (!w || !doc || typeof t !== 'string') return;
    waiting.delete(t);
    if (accepted) {
      w.resolve(doc);
      return;
    }
    const code = own(doc, 'code');
    const message = own(doc, 'message');
    if (typeof code !== 'string') {
      w.reject(
        new JobsError('JOBS_REQUEST_FAILED', `jobs ${w.operation} answered on /rejected without a code`, {
          data: { operation: w.operation },
        }),
      );
      return;
    }
    const executionState = stateOf(own(doc, 'executionState'));
    w.reject(
      new JobsRejectedError(w.operation, {
        code,
        message: typeof message === 'string' ? message : undefined,
        ...(executionState ? { executionState } : {}),
      }),
    );
  };

  /** Subscribes an answer pair once; a failed subscription is tried again on the next request. */
  const ensure = (accepted: string, rejected: string) => {
    let p = subscribed.get(accepted);
    if (!p) {
      p = Promise.all([
        transport.subscribe(accepted, 1, onAnswer(true)),
        transport.subscribe(rejected, 1, onAnswer(false)),
      ]).then(
        () => undefined,
        (err: unknown) => {
          subscribed.delete(accepted);
          throw new JobsError('JOBS_REQUEST_FAILED', 'cannot subscribe to the jobs answer topics', { cause: err });
        },
      );
      subscribed.set(accepted, p);
    }
    return p;
  };

  const request = async (
    operation: string,
    route: { readonly request: string; readonly accepted: string; readonly rejected: string },
    body: Doc,
  ): Promise<Doc> => {
    if (closed) throw new JobsError('JOBS_CLOSED', `jobs ${operation} after close()`, { data: { operation } });
    await ensure(route.accepted, route.rejected);
    const clientToken = token();
    const answered = new Promise<Doc>((resolve, reject) => {
      waiting.set(clientToken, { operation, resolve, reject });
    });
    transport.publish(route.request, JSON.stringify({ ...body, clientToken }), { qos: 1 }).catch((err: unknown) => {
      const w = waiting.get(clientToken);
      waiting.delete(clientToken);
      w?.reject(new JobsError('JOBS_REQUEST_FAILED', `jobs ${operation} failed`, { cause: err, data: { operation } }));
    });
    try {
      return await withTimeout(
        clock,
        opts.requestTimeoutMs,
        answered,
        () => new JobsTimeoutError(operation, opts.requestTimeoutMs),
      );
    } finally {
      waiting.delete(clientToken);
    }
  };

  return {
    async startNext(req = {}) {
      const doc = await request(
        'start-next',
        { request: topics.startNext, accepted: topics.startNextAccepted, rejected: topics.startNextRejected },
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
          { request: e.get, accepted: e.getAccepted, rejected: e.getRejected },
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
        { request: e.update, accepted: e.updateAccepted, rejected: e.updateRejected },
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
      nextListeners.add(listener);
      if (nextListeners.size === 1) {
        transport
          .subscribe(topics.notifyNext, 1, (_t, payload) => {
            const doc = decode(payload);
            if (!doc) {
              log.warn('undecodable notify-next message');
              return;
            }
            const execution = executionOf(own(doc, 'execution'));
            for (const l of nextListeners) l(execution);
          })
          .catch((err: unknown) => log.warn({ err }, 'notify-next subscription failed'));
      }
      return () => {
        nextListeners.delete(listener);
      };
    },
    close() {
      if (closed) return;
      closed = true;
      offInterrupted();
      failAll('jobs client closed');
      nextListeners.clear();
    },
  };
}
