import { type JsonObject, shadowTopics } from '@pifleet/protocol';
import type { StoredShadow } from '../../src/core/shadow/document.js';
import { createShadowService, type ShadowService, type ShadowServiceDeps } from '../../src/shadow/service.js';
import { createMemoryShadowStore, type ShadowStore } from '../../src/shadow/store.js';
import type { ApplyStep, SequenceStep, StepObservation } from './sequences.js';

export interface Published {
  readonly topic: string;
  readonly payload: JsonObject;
}

export interface Harness {
  readonly service: ShadowService;
  readonly published: Published[];
  readonly clock: { now(): number; set(ms: number): void; advance(ms: number): void };
  /** Messages published since index `from`. */
  since(from: number): Published[];
}

export function createHarness(
  options: { store?: ShadowStore; startMs?: number } & Partial<
    Pick<ShadowServiceDeps, 'thingExists' | 'quotas' | 'throttles'>
  > = {},
): Harness {
  let now = options.startMs ?? 1_700_000_000_000;
  const clock = {
    now: () => now,
    set: (ms: number) => {
      now = ms;
    },
    advance: (ms: number) => {
      now += ms;
    },
  };
  const published: Published[] = [];
  const service = createShadowService({
    store: options.store ?? createMemoryShadowStore(),
    clock,
    publish: (topic, payload) => {
      published.push({ topic, payload: JSON.parse(payload) as JsonObject });
    },
    ...(options.thingExists === undefined ? {} : { thingExists: options.thingExists }),
    ...(options.quotas === undefined ? {} : { quotas: options.quotas }),
    ...(options.throttles === undefined ? {} : { throttles: options.throttles }),
  });
  return { service, published, clock, since: (from) => published.slice(from) };
}

const enc = new TextEncoder();

function observe(messages: Published[], topics: ReturnType<typeof shadowTopics>, step: SequenceStep) {
  const delta = messages.find((m) => m.topic === topics.updateDelta);
  const documents = messages.find((m) => m.topic === topics.updateDocuments);
  return step.op === 'update'
    ? { delta: delta?.payload ?? null, ...(documents === undefined ? {} : { documents: documents.payload }) }
    : {};
}

/** Applies a sequence step as an MQTT request through `handleMqtt`, reading the published answer. */
export function mqttApply(h: Harness): ApplyStep {
  return async (thing, step): Promise<StepObservation> => {
    const topics = shadowTopics(thing, step.shadowName);
    const from = h.published.length;
    const payload = step.op === 'update' ? JSON.stringify(step.request) : '';
    await h.service.handleMqtt(topics[step.op], enc.encode(payload), { clientId: `${thing}-client` });
    const messages = h.since(from);
    const accepted = messages.find((m) => m.topic === `${topics[step.op]}/accepted`);
    const rejected = messages.find((m) => m.topic === `${topics[step.op]}/rejected`);
    const answer = accepted ?? rejected;
    if (answer === undefined) throw new Error(`no answer to ${step.op}: ${JSON.stringify(messages)}`);
    return { ok: answer === accepted, body: answer.payload, ...observe(messages, topics, step) };
  };
}

/** Applies a sequence step through the HTTP data-plane functions; events still come from `publish`. */
export function httpApply(h: Harness): ApplyStep {
  return async (thing, step): Promise<StepObservation> => {
    const topics = shadowTopics(thing, step.shadowName);
    const from = h.published.length;
    const result =
      step.op === 'update'
        ? await h.service.updateShadow(thing, step.shadowName, enc.encode(JSON.stringify(step.request)))
        : step.op === 'get'
          ? await h.service.getShadow(thing, step.shadowName)
          : await h.service.deleteShadow(thing, step.shadowName);
    return { ok: result.status === 200, body: result.body, ...observe(h.since(from), topics, step) };
  };
}

/** A store whose writes wait until released, to hold requests in flight. */
export function createHeldStore(inner: ShadowStore = createMemoryShadowStore()) {
  const waiting: Array<() => void> = [];
  const watchers: Array<{ n: number; resolve: () => void }> = [];
  let held = true;
  const notify = () => {
    for (const w of watchers.filter((x) => waiting.length >= x.n)) {
      watchers.splice(watchers.indexOf(w), 1);
      w.resolve();
    }
  };
  const store: ShadowStore = {
    load: (t, s) => inner.load(t, s),
    save: async (shadow: StoredShadow) => {
      if (held) {
        await new Promise<void>((resolve) => {
          waiting.push(resolve);
          notify();
        });
      }
      await inner.save(shadow);
    },
    listNamed: (t, o) => inner.listNamed(t, o),
    close: () => inner.close(),
  };
  return {
    store,
    /** Resolves when at least `n` saves are waiting. */
    whenWaiting: (n: number) =>
      new Promise<void>((resolve) => {
        watchers.push({ n, resolve });
        notify();
      }),
    release: () => {
      held = false;
      for (const w of waiting.splice(0)) w();
    },
  };
}
