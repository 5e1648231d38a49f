import { closeSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { makeDirectorySync, parseJson } from '@pifleet/protocol';
import { z } from 'zod';

/**
 * The job execution the agent is working on, kept beside the outbox so that a crash, a restart or
 * a reboot resumes it where it was: the step it reached (each handler names its own), data the
 * handler needs to go on (the changes a config job planned, the boot a reboot job left), the last
 * execution version it knows, and — once the handler has finished — the terminal outcome not yet
 * acknowledged by the service, so that it is reported (once) instead of the job being done again.
 */
export interface PersistedJob {
  readonly jobId: string;
  readonly executionNumber: number;
  readonly operation: string;
  readonly step: string;
  readonly versionNumber: number;
  readonly data?: Readonly<Record<string, string>>;
  readonly outcome?: PersistedOutcome;
}

export interface PersistedOutcome {
  readonly status: 'SUCCEEDED' | 'FAILED' | 'REJECTED';
  readonly statusDetails: Readonly<Record<string, string>>;
}

export interface JobStateStore {
  /** The persisted execution, or undefined (none, or a file that does not parse: moved aside). */
  load(): PersistedJob | undefined;
  /** Replaces it, durably (a power cut leaves the old or the new one, never a mix). */
  save(job: PersistedJob): void;
  clear(): void;
}

const text = z.string().max(4_096);
const details = z.record(z.string().max(128), text).refine((r) => Object.keys(r).length <= 32);
const persistedSchema = z.strictObject({
  format: z.literal(1),
  jobId: z.string().min(1).max(64),
  executionNumber: z.number().int().nonnegative(),
  operation: z.string().max(128),
  step: z.string().max(128),
  versionNumber: z.number().int().nonnegative(),
  data: details.optional(),
  outcome: z.strictObject({ status: z.enum(['SUCCEEDED', 'FAILED', 'REJECTED']), statusDetails: details }).optional(),
});

/** A store in memory: for agents whose outbox is in memory too (a simulated fleet), and tests. */
export function createMemoryJobState(initial?: PersistedJob): JobStateStore & { readonly saves: number } {
  let job = initial;
  let saves = 0;
  return {
    get saves() {
      return saves;
    },
    load: () => job,
    save(next) {
      saves += 1;
      job = structuredClone(next);
    },
    clear() {
      job = undefined;
    },
  };
}

/**
 * Writes a file atomically and durably: a temporary file in the same directory, fsynced, renamed
 * over the target, and the directory fsynced so that the rename itself survives a power cut.
 */
export function writeFileAtomic(file: string, contents: string): void {
  const dir = path.dirname(file);
  // Level by level: Node's recursive mkdirSync never returns for a directory under /proc.
  makeDirectorySync(dir);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, contents);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/**
 * Reads a small JSON file the agent wrote itself; undefined when it does not exist. A file that
 * does not parse (a disk fault) is moved aside as `<file>.corrupt` and reported through
 * `onCorrupt`, so that it is looked at once, not at every start.
 */
export function readOwnJsonFile(file: string, onCorrupt: (reason: string) => void): unknown {
  let raw: string;
  try {
    raw = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    onCorrupt(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    return undefined;
  }
  const parsed = parseJson(raw, { maxDepth: 8 });
  if (parsed.ok) return parsed.value;
  onCorrupt(`${file} does not parse: ${parsed.message}`);
  try {
    renameSync(file, `${file}.corrupt`);
  } catch {
    rmSync(file, { force: true });
  }
  return undefined;
}

/** The execution state file in the agent's state directory (the outbox's directory). */
export function createFileJobState(opts: {
  readonly file: string;
  readonly onCorrupt?: (reason: string) => void;
}): JobStateStore {
  const onCorrupt = opts.onCorrupt ?? (() => undefined);
  return {
    load() {
      const value = readOwnJsonFile(opts.file, onCorrupt);
      if (value === undefined) return undefined;
      const r = persistedSchema.safeParse(value);
      if (!r.success) {
        onCorrupt(`${opts.file} is not a job execution state: ${r.error.issues[0]?.message ?? 'invalid'}`);
        return undefined;
      }
      const { format: _format, data, outcome, ...job } = r.data;
      return { ...job, ...(data ? { data } : {}), ...(outcome ? { outcome } : {}) };
    },
    save(job) {
      writeFileAtomic(opts.file, `${JSON.stringify({ format: 1, ...job })}\n`);
    },
    clear() {
      rmSync(opts.file, { force: true });
    },
  };
}
