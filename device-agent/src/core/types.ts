import type { MetricValue } from '@pifleet/protocol';

/**
 * Time and timers, injected so tests drive time by hand and thousands of agents share one process.
 * (Structurally compatible with the hardware layer's Clock port.)
 */
export interface AgentClock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** A source of readings: one configured sensor behind its driver. */
export interface SensorSource {
  readonly id: string;
  readonly driver: string;
  /** One sample: metric name → value. Rejects when the hardware fails. */
  read(): Promise<Readonly<Record<string, MetricValue>>>;
  close?(): Promise<void> | void;
}

/** An on/off output (relay, LED) behind its driver. */
export interface OutputSink {
  readonly id: string;
  set(on: boolean): Promise<void>;
  close?(): Promise<void> | void;
}

/** The real clock. */
export const systemClock: AgentClock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};
