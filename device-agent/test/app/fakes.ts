/** In-memory implementations of the agent's ports for composition tests (not mocks of project modules). */
import { EventEmitter } from 'node:events';
import { topicMatches } from '@pifleet/protocol';
import { brokerRefusal } from '../../src/adapters/transport-kit.js';
import { loadConfig } from '../../src/config/load.js';
import type { AgentConfig } from '../../src/config/schema.js';
import type { Output, Sensor } from '../../src/drivers/types.js';
import type { MessageHandler, PublishOptions, Transport, TransportEvents } from '../../src/ports/transport.js';
import type { ShadowDelta, ShadowService, ShadowView } from '../../src/shadow/port.js';

export interface Sent {
  topic: string;
  payload: string;
  options: PublishOptions;
  ack: () => void;
  fail: (err: Error) => void;
}

export class MemoryTransport implements Transport {
  readonly protocol = 'memory';
  readonly clientId = 'memory';
  readonly sent: Sent[] = [];
  autoAck = true;
  startConnected = true;
  /**
   * When set, the "broker" answers telemetry publishes with this MQTT 5 PUBACK reason code (≥ 0x80),
   * as the adapters report it: a `PUBLISH_REFUSED` TransportError; the connection stays up. A
   * function decides per payload (undefined: accepted).
   */
  refuseTelemetry: number | ((payload: string) => number | undefined) | undefined;
  #connected = false;
  #started = false;
  #everConnected = false;
  readonly #events = new EventEmitter();
  /** Most telemetry publishes outstanding at once. */
  inFlightPeak = 0;
  #inFlight = 0;

  get isConnected() {
    return this.#connected;
  }
  get inFlight() {
    return this.#inFlight;
  }
  start() {
    this.#started = true;
    if (this.startConnected) queueMicrotask(() => this.connect());
  }
  connect() {
    if (!this.#started || this.#connected) return;
    this.#connected = true;
    const first = !this.#everConnected;
    this.#everConnected = true;
    this.#events.emit('connected', { sessionPresent: false, first });
  }
  /** Loses the connection; `error` is what the adapter would report (default: a plain drop). */
  drop(error: Error = new Error('dropped')) {
    if (!this.#connected) return;
    this.#connected = false;
    this.#events.emit('interrupted', { error });
  }
  publish(topic: string, payload: string | Uint8Array, options: PublishOptions): Promise<void> {
    if (!this.#started) return Promise.reject(new Error('not started'));
    return new Promise<void>((resolve, reject) => {
      const counted = topic.endsWith('/telemetry');
      if (counted) this.#inFlight += 1;
      this.inFlightPeak = Math.max(this.inFlightPeak, this.#inFlight);
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        if (counted) this.#inFlight -= 1;
        fn();
      };
      const s: Sent = {
        topic,
        payload: typeof payload === 'string' ? payload : Buffer.from(payload).toString(),
        options,
        ack: () => settle(resolve),
        fail: (err) => settle(() => reject(err)),
      };
      this.sent.push(s);
      const rule = counted ? this.refuseTelemetry : undefined;
      const refuse = typeof rule === 'function' ? rule(s.payload) : rule;
      if (refuse !== undefined && this.#connected) {
        queueMicrotask(() => s.fail(brokerRefusal('publish', topic, refuse)));
      } else if (this.autoAck && this.#connected) queueMicrotask(s.ack);
    });
  }
  /** Subscribed filters (exact topics here) and their handlers. */
  readonly subscriptions = new Map<string, MessageHandler>();
  async subscribe(filter: string, _qos: 0 | 1, handler: MessageHandler) {
    this.subscriptions.set(filter, handler);
  }
  async unsubscribe(filter: string) {
    this.subscriptions.delete(filter);
  }
  /** Delivers a message to every subscription whose filter matches `topic`, as the broker would; false when none. */
  deliver(topic: string, payload: string): boolean {
    if (!this.#connected) return false;
    const handlers = [...this.subscriptions].filter(([filter]) => topicMatches(filter, topic)).map(([, h]) => h);
    for (const h of handlers) h(topic, new TextEncoder().encode(payload));
    return handlers.length > 0;
  }
  on<E extends keyof TransportEvents>(event: E, listener: (d: TransportEvents[E]) => void) {
    this.#events.on(event, listener);
    return () => {
      this.#events.off(event, listener);
    };
  }
  async stop() {
    this.#connected = false;
    this.#started = false;
  }
  telemetry() {
    return this.sent.filter((s) => s.topic.endsWith('/telemetry'));
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
function merge(target: Record<string, unknown>, patch: Record<string, unknown>) {
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete target[k];
    else if (isObj(v)) {
      const t = isObj(target[k]) ? (target[k] as Record<string, unknown>) : {};
      merge(t, v);
      target[k] = t;
    } else target[k] = v;
  }
}
function delta(desired: unknown, reported: unknown): Record<string, unknown> | undefined {
  if (!isObj(desired)) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(desired)) {
    const r = isObj(reported) ? reported[k] : undefined;
    if (isObj(v)) {
      const d = delta(v, r);
      if (d) out[k] = d;
    } else if (JSON.stringify(v) !== JSON.stringify(r)) out[k] = v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

interface ShadowSnapshot {
  state: { desired: Record<string, unknown>; reported: Record<string, unknown> };
  version: number;
}

/** A classic shadow with AWS merge and delta semantics, enough for the agent's use. */
export class MemoryShadow implements ShadowService {
  version = 0;
  desired: Record<string, unknown> = {};
  reported: Record<string, unknown> = {};
  exists = false;
  updates: Record<string, unknown>[] = [];
  readonly #listeners = new Set<(d: ShadowDelta) => void>();
  readonly #updateWaiters: (() => void)[] = [];

  /** How many of the next gets fail, as a request whose answer topics could not be subscribed. */
  failGets = 0;
  gets = 0;
  async get(): Promise<ShadowView | undefined> {
    this.gets += 1;
    if (this.failGets > 0) {
      this.failGets -= 1;
      throw new Error('cannot subscribe to the shadow response topics');
    }
    if (!this.exists) return undefined;
    return { version: this.version, desired: structuredClone(this.desired), reported: structuredClone(this.reported) };
  }
  /**
   * As AWS IoT does, publish `/update/delta` after every accepted update (reported ones too)
   * while desired and reported still differ. Bounded so a device that loops cannot hang a test.
   */
  deltaOnEveryUpdate = false;
  #echoedDeltas = 0;
  async updateReported(reported: object) {
    const previous = this.#snapshot();
    this.exists = true;
    this.version += 1;
    this.updates.push(structuredClone(reported) as Record<string, unknown>);
    merge(this.reported, structuredClone(reported) as Record<string, unknown>);
    for (const w of this.#updateWaiters.splice(0)) w();
    const d = this.deltaOnEveryUpdate ? delta(this.desired, this.reported) : undefined;
    if (d && this.#echoedDeltas < 50) {
      this.#echoedDeltas += 1;
      for (const l of this.#listeners) l({ version: this.version, state: d });
    }
    this.#documents(previous);
    return { version: this.version };
  }
  /** Sets desired keys as an operator would; emits the delta unless `silent` (missed while offline). */
  setDesired(patch: Record<string, unknown>, silent = false) {
    const previous = this.#snapshot();
    this.exists = true;
    this.version += 1;
    merge(this.desired, patch);
    const d = delta(this.desired, this.reported);
    if (d && !silent) for (const l of this.#listeners) l({ version: this.version, state: d });
    if (!silent) this.#documents(previous);
  }
  /** Where `/update/documents` goes (AWS publishes it after every accepted update), when set. */
  documentsTo: { transport: MemoryTransport; topic: string } | undefined;
  #snapshot(): ShadowSnapshot | null {
    return this.exists
      ? {
          state: { desired: structuredClone(this.desired), reported: structuredClone(this.reported) },
          version: this.version,
        }
      : null;
  }
  #documents(previous: ShadowSnapshot | null) {
    if (!this.documentsTo) return;
    const { transport, topic } = this.documentsTo;
    transport.deliver(topic, JSON.stringify({ previous, current: this.#snapshot(), timestamp: this.version }));
  }
  emitDelta(version: number, state: unknown) {
    for (const l of this.#listeners) l({ version, state });
  }
  nextUpdate(): Promise<void> {
    return new Promise((resolve) => this.#updateWaiters.push(resolve));
  }
  onDelta(listener: (d: ShadowDelta) => void) {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
  readonly #restored = new Set<() => void>();
  onStreamRestored(listener: () => void) {
    this.#restored.add(listener);
    return () => {
      this.#restored.delete(listener);
    };
  }
  /** The delta subscription was granted late: deltas published before it were missed. */
  restoreStream() {
    for (const l of this.#restored) l();
  }
  close() {}
}

/** A sensor whose readings count up; `failNext` makes reads reject. */
export function countingSensor(id: string, driver = 'bme280') {
  let n = 0;
  let failing = false;
  const sensor: Sensor & { setFailing(v: boolean): void } = {
    id,
    driver,
    init: async () => {},
    read: async () => {
      if (failing) throw Object.assign(new Error('chip did not answer'), { code: 'I2C_NACK' });
      n += 1;
      return { value: n };
    },
    close: async () => {},
    setFailing: (v) => {
      failing = v;
    },
  };
  return sensor;
}

export function memoryOutput(id: string, failWith?: Error): Output & { history: boolean[] } {
  let on = false;
  const history: boolean[] = [];
  return {
    id,
    driver: 'digital-output',
    history,
    init: async () => {},
    set: async (v) => {
      if (failWith) throw failWith;
      on = v;
      history.push(v);
    },
    get: () => on,
    close: async () => {},
  };
}

/**
 * A loaded agent config for pi-01 on the simulated hardware (endpoint, certificate and key are
 * never opened by these tests) with `fields` on top; a config the loader refuses fails the test.
 */
export function agentConfig(fields: Record<string, unknown>): AgentConfig {
  const r = loadConfig({
    fileText: JSON.stringify({
      thingName: 'pi-01',
      endpoint: 'localhost',
      certFile: 'c',
      keyFile: 'k',
      hardware: 'simulated',
      ...fields,
    }),
  });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.value;
}
