import path from 'node:path';
import { type DesiredState, type Issue, isJsonObject, setOwn, splitDesired } from '@pifleet/protocol';

/**
 * The config overlay: settings that `pifleet.config` jobs applied, kept in the agent's state
 * directory (the outbox's directory) because the config directory is read-only under systemd
 * (`ReadOnlyPaths=/etc/pifleet`). It has the shape of a desired state (`sampling`, `batch`,
 * `outputs`, `logLevel`) and is merged into the config file's document when the config is loaded,
 * after the file and before the environment and flags: defaults < file < overlay < env < flags.
 */
export const CONFIG_OVERLAY_FILE = 'config-overlay.json';

/** Where the overlay of an agent whose outbox is at `outboxPath` lives; undefined for an in-memory outbox. */
export function configOverlayPath(outboxPath: string): string | undefined {
  return outboxPath === ':memory:' ? undefined : path.join(path.dirname(outboxPath), CONFIG_OVERLAY_FILE);
}

export interface OverlayMerge {
  /** Paths of the overlay that were applied to the document (`sampling.bme280`, `logLevel`). */
  readonly applied: readonly string[];
  /** Paths that were not: invalid by the shadow's rules, or naming a sensor or output the config no longer has. */
  readonly ignored: readonly Issue[];
}

/** The settings of two desired states merged (the second wins), for the overlay file. */
export function mergeSettings(base: DesiredState, next: DesiredState): DesiredState {
  const out: {
    sampling?: Record<string, number>;
    batch?: DesiredState['batch'];
    outputs?: Record<string, boolean>;
    logLevel?: DesiredState['logLevel'];
  } = {};
  const map = <T>(a: Readonly<Record<string, T>> | undefined, b: Readonly<Record<string, T>> | undefined) => {
    if (!a && !b) return undefined;
    const m: Record<string, T> = {};
    for (const src of [a, b]) for (const [k, v] of Object.entries(src ?? {})) setOwn(m, k, v);
    return m;
  };
  const sampling = map(base.sampling, next.sampling);
  if (sampling) out.sampling = sampling;
  const outputs = map(base.outputs, next.outputs);
  if (outputs) out.outputs = outputs;
  if (base.batch || next.batch) out.batch = { ...base.batch, ...next.batch };
  const logLevel = next.logLevel ?? base.logLevel;
  if (logLevel) out.logLevel = logLevel;
  return out;
}

/**
 * Merges an overlay into a config file's document (before validation), in place. The overlay is
 * checked by the shadow's rules (`splitDesired`); a sampling interval goes to the sensor of that
 * id, an output's state becomes its `initial`, `batch` fields and `logLevel` replace the file's.
 * Anything it cannot place is ignored and listed: an overlay never stops an agent from starting.
 */
export function applyConfigOverlay(doc: Record<string, unknown>, overlay: unknown): OverlayMerge {
  const applied: string[] = [];
  const ignored: Issue[] = [];
  const { accepted, rejected } = splitDesired(overlay);
  for (const r of rejected) ignored.push({ path: r.path, message: r.reason });
  const byId = (key: 'sensors' | 'outputs', id: string): Record<string, unknown> | undefined => {
    const list = doc[key];
    if (!Array.isArray(list)) return undefined;
    return list.find((item): item is Record<string, unknown> => isJsonObject(item) && item.id === id);
  };
  for (const [id, intervalMs] of Object.entries(accepted.sampling ?? {})) {
    const sensor = byId('sensors', id);
    if (sensor) {
      sensor.intervalMs = intervalMs;
      applied.push(`sampling.${id}`);
    } else ignored.push({ path: `sampling.${id}`, message: 'no sensor of that id in the config' });
  }
  for (const [id, on] of Object.entries(accepted.outputs ?? {})) {
    const output = byId('outputs', id);
    if (output) {
      output.initial = on;
      applied.push(`outputs.${id}`);
    } else ignored.push({ path: `outputs.${id}`, message: 'no output of that id in the config' });
  }
  if (accepted.batch) {
    const batch = isJsonObject(doc.batch) ? doc.batch : {};
    for (const [k, v] of Object.entries(accepted.batch)) {
      if (v === undefined) continue;
      batch[k] = v;
      applied.push(`batch.${k}`);
    }
    doc.batch = batch;
  }
  if (accepted.logLevel) {
    doc.logLevel = accepted.logLevel;
    applied.push('logLevel');
  }
  return { applied, ignored };
}
