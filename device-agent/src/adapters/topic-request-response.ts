import { isJsonObject } from '@pifleet/protocol';
import type { Logger } from '../logger.js';
import { type Clock, withTimeout } from '../ports/clock.js';
import type { Transport } from '../ports/transport.js';

/**
 * Request and response over IoT's reserved topics on any `Transport` (the fleet's mqtt.js
 * devices), the way the device SDK's request-response client does it, shared by the shadow and
 * jobs adapters: a request carries a `clientToken` and is answered on its topic's `/accepted` or
 * `/rejected` with the same token; every request has a timeout on the injected clock; a request
 * in flight fails at once when the connection is lost (a clean session may lose the answer with
 * it, and the agent asks again on the next connect); answer topics are subscribed on first use
 * and the transport restores them after a reconnect. The service's errors come from `errors`.
 */

export type AnswerDoc = Record<string, unknown>;

/**
 * A payload as a JSON object, or undefined. It is read whatever its depth: a job document nested
 * too deeply must still reach the runner, which REJECTS it with the reason (`parseJobDocument`
 * measures depth without recursion before anything walks it); dropped here, its execution would
 * never be answered. Nothing here recurses into a payload, `JSON.parse` itself is iterative in
 * V8, and a payload is bounded by the broker's 128 KB message size.
 */
export function decodeAnswer(payload: Uint8Array): AnswerDoc | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    return undefined;
  }
  return isJsonObject(value) ? (value as AnswerDoc) : undefined;
}

/** `doc[key]` when the document has the key itself (a `__proto__` key is data). */
export const ownField = (doc: AnswerDoc, key: string): unknown => (Object.hasOwn(doc, key) ? doc[key] : undefined);

/** A request topic's two answer topics. */
export interface AnswerTopics {
  readonly accepted: string;
  readonly rejected: string;
  /**
   * One filter subscribed for both answers (`…/get/+`), where nothing else is published under it;
   * it may cover the answers of many requests (every job's `…/jobs/+/update/+`). Absent: the two
   * topics are subscribed (`…/shadow/update/+` would also take every delta and document).
   */
  readonly filter?: string;
}

export interface TopicRequestErrors {
  /** The request got no answer (lost with the connection, not published, client closed, no subscription). */
  failed(message: string, options: { readonly cause?: unknown; readonly data?: Record<string, unknown> }): Error;
  /** A request after `close()`. */
  closed(operation: string): Error;
  /** No answer within the request timeout. */
  timedOut(operation: string): Error;
  /** The service's rejection from a `/rejected` answer; undefined when the answer has no code of the service's kind. */
  rejected(operation: string, answer: AnswerDoc, clientToken: string): Error | undefined;
}

export interface TopicRequestsOptions {
  readonly transport: Transport;
  readonly clock: Clock;
  readonly requestTimeoutMs: number;
  readonly token: () => string;
  /** The service as named in messages (`shadow`, `jobs`). */
  readonly service: string;
  readonly errors: TopicRequestErrors;
}

interface Waiter {
  readonly operation: string;
  resolve(doc: AnswerDoc): void;
  reject(err: Error): void;
}

export function createTopicRequests(opts: TopicRequestsOptions) {
  const { transport, clock, errors, service } = opts;
  const waiting = new Map<string, Waiter>();
  const subscribed = new Map<string, Promise<void>>();
  let closed = false;

  const failAll = (message: string) => {
    for (const [t, w] of waiting) {
      waiting.delete(t);
      w.reject(errors.failed(message, { data: { operation: w.operation } }));
    }
  };
  // A clean session loses its answer subscriptions with the connection, so an answer to a request
  // in flight may never come: fail it now instead of holding the caller for the whole timeout.
  const offInterrupted = transport.on('interrupted', () => failAll(`${service} request lost with the connection`));

  const onAnswer = (accepted: boolean) => (_topic: string, payload: Uint8Array) => {
    const doc = decodeAnswer(payload);
    const t = doc ? ownField(doc, 'clientToken') : undefined;
    const w = typeof t === 'string' ? waiting.get(t) : undefined;
    if (!w || !doc || typeof t !== 'string') return;
    waiting.delete(t);
    if (accepted) {
      w.resolve(doc);
      return;
    }
    w.reject(
      errors.rejected(w.operation, doc, t) ??
        errors.failed(`${service} ${w.operation} answered on /rejected without a code`, {
          data: { operation: w.operation, clientToken: t },
        }),
    );
  };

  const accepted = onAnswer(true);
  const rejected = onAnswer(false);
  /** A filter's messages by their last level: only `/accepted` and `/rejected` are answers. */
  const onEither = (topic: string, payload: Uint8Array) => {
    if (topic.endsWith('/accepted')) accepted(topic, payload);
    else if (topic.endsWith('/rejected')) rejected(topic, payload);
  };

  /** Subscribes an answer pair once; a failed subscription is tried again on the next request. */
  const ensure = (pair: AnswerTopics) => {
    const key = pair.filter ?? pair.accepted;
    let p = subscribed.get(key);
    if (!p) {
      const subscribing = pair.filter
        ? [transport.subscribe(pair.filter, 1, onEither)]
        : [transport.subscribe(pair.accepted, 1, accepted), transport.subscribe(pair.rejected, 1, rejected)];
      p = Promise.all(subscribing).then(
        () => undefined,
        (err: unknown) => {
          subscribed.delete(key);
          throw errors.failed(`cannot subscribe to the ${service} response topics`, { cause: err });
        },
      );
      subscribed.set(key, p);
    }
    return p;
  };

  return {
    /**
     * Publishes `body` with a fresh clientToken on `topic` once every pair of `answers` is
     * subscribed, and resolves with the `/accepted` answer that carries the token.
     */
    async request(operation: string, topic: string, answers: readonly AnswerTopics[], body: AnswerDoc) {
      if (closed) throw errors.closed(operation);
      await Promise.all(answers.map(ensure));
      const clientToken = opts.token();
      const answered = new Promise<AnswerDoc>((resolve, reject) => {
        waiting.set(clientToken, { operation, resolve, reject });
      });
      transport.publish(topic, JSON.stringify({ ...body, clientToken }), { qos: 1 }).catch((err: unknown) => {
        const w = waiting.get(clientToken);
        waiting.delete(clientToken);
        w?.reject(errors.failed(`${service} ${operation} failed`, { cause: err, data: { operation } }));
      });
      try {
        return await withTimeout(clock, opts.requestTimeoutMs, answered, () => errors.timedOut(operation));
      } finally {
        waiting.delete(clientToken);
      }
    },
    /** Fails every request in flight; later requests are refused. */
    close(): void {
      if (closed) return;
      closed = true;
      offInterrupted();
      failAll(`${service} client closed`);
    },
  };
}

/** The log lines of one topic stream (constant messages). */
export interface TopicStreamMessages {
  readonly undecodable: string;
  readonly subscribeFailed: string;
}

/**
 * A notification topic (shadow `update/delta`, jobs `notify-next`) followed by any number of
 * listeners: subscribed when the first one is added, each message decoded once and passed to all.
 */
export function createTopicStream<T>(opts: {
  readonly transport: Transport;
  readonly topic: string;
  readonly log: Logger;
  readonly messages: TopicStreamMessages;
  readonly read: (doc: AnswerDoc) => T;
}) {
  const listeners = new Set<(value: T) => void>();
  const restored = new Set<() => void>();
  let offSubscribed: (() => void) | undefined;
  return {
    /** Adds a listener; returns the function that removes it. */
    add(listener: (value: T) => void): () => void {
      listeners.add(listener);
      if (listeners.size === 1) {
        opts.transport
          .subscribe(opts.topic, 1, (_t, payload) => {
            const doc = decodeAnswer(payload);
            if (!doc) {
              opts.log.warn(opts.messages.undecodable);
              return;
            }
            const value = opts.read(doc);
            for (const l of listeners) l(value);
          })
          .catch((err: unknown) => opts.log.warn({ err }, opts.messages.subscribeFailed));
      }
      return () => {
        listeners.delete(listener);
      };
    },
    /**
     * Calls `listener` when the topic's subscription, refused by the broker before (throttled), is
     * granted: messages published on it in between were missed. Returns the function that removes it.
     */
    onRestored(listener: () => void): () => void {
      restored.add(listener);
      offSubscribed ??= opts.transport.on('subscribed', ({ filter }) => {
        if (filter !== opts.topic) return;
        for (const l of [...restored]) l();
      });
      return () => {
        restored.delete(listener);
      };
    },
    clear(): void {
      listeners.clear();
      restored.clear();
      offSubscribed?.();
      offSubscribed = undefined;
    },
  };
}
