import { isJsonObject, type JsonObject, parseJson } from '@pifleet/protocol';
import type { Logger } from '../logger.js';

/**
 * The request/answer loop both halves of fleet provisioning's MQTT API share: a request on a
 * reserved topic is performed and answered on that request's `/accepted` topic with the result, or
 * on `/rejected` with a {@link ProvisioningRejection}'s body, to the one connection that asked. A
 * failure that is not a rejection is logged and answered as 500 InternalFailure; an answer that
 * cannot be published (the broker is stopping) is logged, and the device asks again when it times
 * out. Requests run concurrently: one device's slow request never holds another's behind it.
 */

/** A rejection as the device SDK's `ErrorResponse` / `V2ErrorResponse` reads it. */
export class ProvisioningRejection extends Error {
  override name = 'ProvisioningRejection';
  constructor(
    readonly statusCode: number,
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
  body(): JsonObject {
    return { statusCode: this.statusCode, errorCode: this.errorCode, errorMessage: this.message };
  }
}

/** One PUBLISH handed in from the broker bus. */
export interface ProvisioningRequestMessage {
  readonly topic: string;
  readonly payload: Uint8Array;
  readonly clientId: string | undefined;
  readonly lastWill?: boolean;
}

export interface AnsweringDeps<K> {
  readonly log: Logger;
  /** What a request is called in the logs (e.g. 'RegisterThing'). */
  readonly what: string;
  /** The request a topic is (its kind, its template, …); undefined for every other topic. */
  readonly route: (topic: string) => K | undefined;
  readonly answerTopics: (request: K) => { readonly accepted: string; readonly rejected: string };
  /** Performs the request; throws a {@link ProvisioningRejection} to refuse it. */
  readonly perform: (request: K, payload: Uint8Array, clientId: string) => Promise<object>;
  /** Publishes an answer to the one client that asked. */
  readonly reply: (clientId: string, topic: string, payload: string) => Promise<void>;
}

export interface Answering {
  /** Answers a request; ignores every other message. Never rejects. */
  handle(message: ProvisioningRequestMessage): Promise<void>;
  /** Resolves once every request handed in so far is answered. */
  idle(): Promise<void>;
}

export function createAnswering<K>(deps: AnsweringDeps<K>): Answering {
  const { log, what } = deps;
  const pending = new Set<Promise<void>>();

  async function answer(request: K, payload: Uint8Array, clientId: string): Promise<void> {
    const topics = deps.answerTopics(request);
    let topic: string;
    let body: object;
    try {
      body = await deps.perform(request, payload, clientId);
      topic = topics.accepted;
    } catch (err) {
      let rejection: ProvisioningRejection;
      if (err instanceof ProvisioningRejection) rejection = err;
      else {
        log.error({ err, request, clientId }, `${what} failed`);
        rejection = new ProvisioningRejection(500, 'InternalFailure', 'An internal error occurred.');
      }
      log.debug({ request, clientId, errorCode: rejection.errorCode }, `${what} rejected`);
      body = rejection.body();
      topic = topics.rejected;
    }
    try {
      await deps.reply(clientId, topic, JSON.stringify(body));
    } catch (err) {
      log.warn({ err, request, clientId }, `${what} answer not published`);
    }
  }

  return {
    handle(message) {
      const request = deps.route(message.topic);
      // A last will is the broker's message, not the device's request; an in-process publish has
      // no connection to answer through.
      if (request === undefined || message.lastWill || message.clientId === undefined) return Promise.resolve();
      const tracked: Promise<void> = answer(request, message.payload, message.clientId).finally(() =>
        pending.delete(tracked),
      );
      pending.add(tracked);
      return tracked;
    },
    async idle() {
      while (pending.size > 0) await Promise.all([...pending]);
    },
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A request's payload read as hostile input: UTF-8, JSON nested at most `maxDepth` levels (deeper is
 * refused unwalked), an object. Every refusal is 400 InvalidPayload with the reason.
 */
export function parseRequestObject(payload: Uint8Array, maxDepth: number): JsonObject {
  const invalid = (message: string) => new ProvisioningRejection(400, 'InvalidPayload', message);
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    throw invalid('The request payload is not valid UTF-8.');
  }
  const parsed = parseJson(text, { maxDepth });
  if (!parsed.ok) {
    throw invalid(
      parsed.reason === 'depth'
        ? 'The request payload is nested too deeply.'
        : 'The request payload is not valid JSON.',
    );
  }
  if (!isJsonObject(parsed.value)) throw invalid('The request payload must be a JSON object.');
  return parsed.value;
}
