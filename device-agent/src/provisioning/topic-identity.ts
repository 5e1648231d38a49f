import { certificateTopics, provisionTopics } from '@pifleet/protocol';
import { type AnswerDoc, decodeAnswer } from '../adapters/topic-request-response.js';
import { type Clock, withTimeout } from '../ports/clock.js';
import type { Transport } from '../ports/transport.js';
import { type IdentityOperation, ProvisioningError, ProvisioningRejectedError } from './errors.js';
import { type IdentityPort, readCsrAnswer, readKeysAnswer, readRegisterAnswer, readRejection } from './port.js';

export interface TopicIdentityOptions {
  readonly transport: Transport;
  readonly requestTimeoutMs: number;
  readonly clock: Clock;
}

interface Topics {
  readonly request: string;
  readonly accepted: string;
  readonly rejected: string;
}

interface Waiter {
  readonly operation: IdentityOperation;
  resolve(doc: AnswerDoc): void;
  reject(err: Error): void;
}

/**
 * Fleet provisioning over its reserved topics on any `Transport` (the simulator's mqtt.js fleets).
 * Unlike the shadow's and jobs' answers, these carry no client token (AWS documents none; the local
 * core, like IoT Core, sends a connection's answers to that connection only), so a request is
 * matched to its answer by topic: one request per topic pair in flight, its accepted and rejected
 * topics subscribed before the first publish. A request fails at once when the connection is lost
 * (a clean session loses the subscription and with it the answer) and after the request timeout.
 */
export function createTopicIdentity(opts: TopicIdentityOptions): IdentityPort {
  const { transport, clock } = opts;
  const waiting = new Map<string, Waiter>();
  const subscribed = new Map<string, Promise<void>>();
  /** The tail of each topic pair's queue: a request waits for the one before it. */
  const queues = new Map<string, Promise<unknown>>();
  let closed = false;

  const failAll = (message: string, code: string) => {
    for (const [key, w] of waiting) {
      waiting.delete(key);
      w.reject(new ProvisioningError(code, `${w.operation}: ${message}`, { data: { operation: w.operation } }));
    }
  };
  const offInterrupted = transport.on('interrupted', () =>
    failAll('connection lost before the answer', 'PROVISIONING_REQUEST_FAILED'),
  );

  const answer = (topics: Topics, accepted: boolean) => (_topic: string, payload: Uint8Array) => {
    const w = waiting.get(topics.request);
    if (!w) return;
    waiting.delete(topics.request);
    const doc = decodeAnswer(payload);
    if (accepted) {
      if (doc) w.resolve(doc);
      else w.reject(new ProvisioningError('PROVISIONING_BAD_ANSWER', `${w.operation} accepted with no JSON object`));
      return;
    }
    const rejection = readRejection(doc);
    w.reject(
      rejection
        ? new ProvisioningRejectedError(w.operation, rejection)
        : new ProvisioningError('PROVISIONING_BAD_ANSWER', `${w.operation} rejected without a statusCode`, {
            data: { operation: w.operation },
          }),
    );
  };

  /** Subscribes a pair's answers once; a failed subscription is tried again on the next request. */
  const ensure = (topics: Topics) => {
    let p = subscribed.get(topics.request);
    if (!p) {
      p = Promise.all([
        transport.subscribe(topics.accepted, 1, answer(topics, true)),
        transport.subscribe(topics.rejected, 1, answer(topics, false)),
      ]).then(
        () => undefined,
        (err: unknown) => {
          subscribed.delete(topics.request);
          throw new ProvisioningError('PROVISIONING_REQUEST_FAILED', 'cannot subscribe to the provisioning answers', {
            cause: err,
          });
        },
      );
      subscribed.set(topics.request, p);
    }
    return p;
  };

  const once = async (operation: IdentityOperation, topics: Topics, body: Record<string, unknown>) => {
    if (closed) throw new ProvisioningError('PROVISIONING_CLOSED', `${operation} after close()`);
    await ensure(topics);
    const answered = new Promise<AnswerDoc>((resolve, reject) => {
      waiting.set(topics.request, { operation, resolve, reject });
    });
    transport.publish(topics.request, JSON.stringify(body), { qos: 1 }).catch((err: unknown) => {
      const w = waiting.get(topics.request);
      waiting.delete(topics.request);
      w?.reject(new ProvisioningError('PROVISIONING_REQUEST_FAILED', `${operation} not sent`, { cause: err }));
    });
    try {
      return await withTimeout(
        clock,
        opts.requestTimeoutMs,
        answered,
        () =>
          new ProvisioningError(
            'PROVISIONING_REQUEST_TIMEOUT',
            `${operation}: no answer within ${opts.requestTimeoutMs} ms`,
            { data: { operation, timeoutMs: opts.requestTimeoutMs } },
          ),
      );
    } finally {
      waiting.delete(topics.request);
    }
  };

  const request = (operation: IdentityOperation, topics: Topics, body: Record<string, unknown>) => {
    const before = queues.get(topics.request) ?? Promise.resolve();
    const run = before.then(
      () => once(operation, topics, body),
      () => once(operation, topics, body),
    );
    queues.set(
      topics.request,
      run.catch(() => undefined),
    );
    return run;
  };

  return {
    async createCertificateFromCsr(certificateSigningRequest) {
      return readCsrAnswer(
        await request('CreateCertificateFromCsr', certificateTopics.createFromCsr, { certificateSigningRequest }),
      );
    },
    async createKeysAndCertificate() {
      return readKeysAnswer(await request('CreateKeysAndCertificate', certificateTopics.create, {}));
    },
    async registerThing(templateName, body) {
      return readRegisterAnswer(
        await request('RegisterThing', provisionTopics(templateName), {
          certificateOwnershipToken: body.certificateOwnershipToken,
          ...(body.parameters ? { parameters: { ...body.parameters } } : {}),
        }),
      );
    },
    close() {
      if (closed) return;
      closed = true;
      offInterrupted();
      failAll('client closed', 'PROVISIONING_CLOSED');
    },
  };
}
