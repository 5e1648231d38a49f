import { isDeepStrictEqual } from 'node:util';
import { type LogLevel, type RejectedDesired, setOwn, splitDesired } from '@pifleet/protocol';
import type { BatchLimits } from './batcher.js';

/** The state the agent has actually reached (what it reports). */
export interface ActualState {
  readonly sampling: Readonly<Record<string, number>>;
  readonly batch: BatchLimits;
  readonly outputs: Readonly<Record<string, boolean>>;
  readonly logLevel: LogLevel;
}

/** One thing to change, produced by reconciling desired against actual. `path` is the desired key. */
export type Change =
  | { readonly kind: 'sampling'; readonly path: string; readonly sensorId: string; readonly intervalMs: number }
  | { readonly kind: 'batch'; readonly path: string; readonly limits: BatchLimits }
  | { readonly kind: 'output'; readonly path: string; readonly outputId: string; readonly on: boolean }
  | { readonly kind: 'logLevel'; readonly path: string; readonly level: LogLevel };

export interface ReconcilePlan {
  readonly version: number;
  /** True for a whole desired document (shadow get), false for a delta. */
  readonly full: boolean;
  readonly changes: readonly Change[];
  /** Desired paths that are valid and known (applied or already in place). */
  readonly acceptedPaths: readonly string[];
  readonly rejected: readonly RejectedDesired[];
}

/** What to write under `reported.rejected`: a path → entry patch (null clears a path), or null for none at all. */
export type RejectedPatch = Record<string, { value: unknown; reason: string } | null> | null;

/**
 * Decides what a desired document or a delta asks the agent to change, and keeps the set of
 * rejected desired keys. Pure: the caller applies the changes and reports the result.
 *
 * Versions: a delta whose version is not newer than the last one handled is stale and ignored; a
 * full document (from a get on (re)connect) is reconciled when it is not older, because applying it
 * is idempotent against the actual state.
 */
export class Reconciler {
  #version = -1;
  #rejected = new Map<string, { value: unknown; reason: string }>();
  /** Rejected paths that the shadow may still show and that must be cleared on the next report. */
  #toClear = new Set<string>();

  get version(): number {
    return this.#version;
  }

  /** Rejections currently standing. */
  get rejected(): ReadonlyMap<string, { value: unknown; reason: string }> {
    return this.#rejected;
  }

  /** Seeds the rejected paths the shadow currently shows (from a get), so stale ones get cleared. */
  seedReportedRejections(reported: unknown): void {
    if (typeof reported === 'object' && reported !== null && !Array.isArray(reported)) {
      for (const path of Object.keys(reported)) if (!this.#rejected.has(path)) this.#toClear.add(path);
    }
  }

  plan(
    desired: unknown,
    version: number,
    actual: ActualState,
    known: { sensors: ReadonlySet<string>; outputs: ReadonlySet<string> },
    full: boolean,
  ): ReconcilePlan | undefined {
    if (full ? version < this.#version : version <= this.#version) return undefined;
    const { accepted, rejected: invalid } = splitDesired(desired ?? {});
    const rejected: RejectedDesired[] = [...invalid];
    const changes: Change[] = [];
    const acceptedPaths: string[] = [];

    for (const [sensorId, intervalMs] of Object.entries(accepted.sampling ?? {})) {
      const path = `sampling.${sensorId}`;
      if (!known.sensors.has(sensorId)) {
        rejected.push({ path, value: intervalMs, reason: `no sensor ${JSON.stringify(sensorId)} on this device` });
        continue;
      }
      acceptedPaths.push(path);
      if (actual.sampling[sensorId] !== intervalMs) changes.push({ kind: 'sampling', path, sensorId, intervalMs });
    }
    if (accepted.batch) {
      const b = accepted.batch;
      const limits: BatchLimits = {
        maxReadings: b.maxReadings ?? actual.batch.maxReadings,
        maxBytes: b.maxBytes ?? actual.batch.maxBytes,
        maxAgeMs: b.maxAgeMs ?? actual.batch.maxAgeMs,
      };
      for (const key of Object.keys(accepted.batch)) acceptedPaths.push(`batch.${key}`);
      if (
        limits.maxReadings !== actual.batch.maxReadings ||
        limits.maxBytes !== actual.batch.maxBytes ||
        limits.maxAgeMs !== actual.batch.maxAgeMs
      ) {
        changes.push({ kind: 'batch', path: 'batch', limits });
      }
    }
    for (const [outputId, on] of Object.entries(accepted.outputs ?? {})) {
      const path = `outputs.${outputId}`;
      if (!known.outputs.has(outputId)) {
        rejected.push({ path, value: on, reason: `no output ${JSON.stringify(outputId)} on this device` });
        continue;
      }
      acceptedPaths.push(path);
      if (actual.outputs[outputId] !== on) changes.push({ kind: 'output', path, outputId, on });
    }
    if (accepted.logLevel !== undefined) {
      acceptedPaths.push('logLevel');
      if (actual.logLevel !== accepted.logLevel) {
        changes.push({ kind: 'logLevel', path: 'logLevel', level: accepted.logLevel });
      }
    }
    return { version, full, changes, acceptedPaths, rejected };
  }

  /**
   * Records a plan's outcome: its version becomes the last handled, and the rejections are
   * updated (`failed` are changes whose applier refused or threw). Returns the patch for
   * `reported.rejected`, or undefined when nothing there changes.
   */
  commit(plan: ReconcilePlan, failed: readonly RejectedDesired[] = []): RejectedPatch | undefined {
    this.#version = Math.max(this.#version, plan.version);
    const before = new Map(this.#rejected);
    if (plan.full) this.#rejected.clear();
    for (const path of plan.acceptedPaths) this.#rejected.delete(path);
    if (plan.changes.some((c) => c.kind === 'batch')) {
      for (const path of [...this.#rejected.keys()]) if (path.startsWith('batch.')) this.#rejected.delete(path);
    }
    for (const r of [...plan.rejected, ...failed]) this.#rejected.set(r.path, { value: r.value, reason: r.reason });

    const cleared = new Set(this.#toClear);
    for (const path of before.keys()) if (!this.#rejected.has(path)) cleared.add(path);
    this.#toClear.clear();

    const changed =
      cleared.size > 0 ||
      [...this.#rejected].some(([p, v]) => JSON.stringify(before.get(p)) !== JSON.stringify(v)) ||
      before.size !== this.#rejected.size;
    if (!changed) return undefined;
    if (this.#rejected.size === 0) return null;
    const patch: Record<string, { value: unknown; reason: string } | null> = {};
    // setOwn: a rejected top-level `__proto__` is a key like any other, not the patch's prototype.
    for (const path of cleared) setOwn(patch, path, null);
    for (const [path, entry] of this.#rejected) setOwn(patch, path, entry);
    return patch;
  }
}

/** A shadow update that changed the desired state, read from an `/update/documents` message. */
export interface DesiredChange {
  /** The shadow's version after the update. */
  readonly version: number;
  /** The whole desired state after it (`{}` when there is none). */
  readonly desired: unknown;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The desired state an `/update/documents` message leaves behind, when that update changed it;
 * undefined when it did not (a reported-only update, such as the agent's own reports) or when the
 * message is not a documents message.
 *
 * Why the agent needs this: a delta lists only desired keys that differ from reported, so removing
 * a desired key (`null`), or setting it to the value already reported, publishes no delta for it —
 * often no delta at all. A key rejected earlier would stand in `reported.rejected` until the next
 * full get. The documents message carries the whole desired state after every accepted update.
 */
export function desiredChangeOf(documents: unknown): DesiredChange | undefined {
  if (!isRecord(documents) || !isRecord(documents.current)) return undefined;
  const current = documents.current;
  const version = current.version;
  if (typeof version !== 'number' || !Number.isInteger(version)) return undefined;
  const desiredOf = (snapshot: unknown): unknown =>
    isRecord(snapshot) && isRecord(snapshot.state) ? (snapshot.state.desired ?? {}) : {};
  const before = desiredOf(documents.previous);
  const after = desiredOf(current);
  return isDeepStrictEqual(before, after) ? undefined : { version, desired: after };
}
