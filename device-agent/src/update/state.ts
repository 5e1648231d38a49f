import { type UpdateFs, writeFileAtomic } from './layout.js';

/**
 * The update state persisted in `<stateDir>/update.json`. Each phase is written (atomically) before
 * the work it names starts, so after a power cut the next start knows exactly what may be half
 * done: a download or unpack is redone, a switch is completed, a release being verified counts one
 * more start, a rollback is completed.
 *
 * Only `node:` modules and no schema library: the boot guard reads this file on every start.
 */

/** Before the switch: the running agent does the work (and redoes it after a crash). */
export const INSTALL_PHASES = ['downloading', 'checking', 'unpacking'] as const;
/** The boot guard completes these before any agent runs. */
export const BOOT_PHASES = ['switching', 'verifying', 'rolling-back'] as const;
/** Nothing left to do: what the job reports. */
export const FINAL_PHASES = ['succeeded', 'rolled-back', 'rejected', 'failed'] as const;

export type UpdatePhase =
  | (typeof INSTALL_PHASES)[number]
  | (typeof BOOT_PHASES)[number]
  | (typeof FINAL_PHASES)[number];

const PHASES: readonly string[] = [...INSTALL_PHASES, ...BOOT_PHASES, ...FINAL_PHASES];

export interface UpdateReason {
  /** Stable: a release rejection's code, or `download`, `disk-full`, `crashed-at-start`, `health-deadline`, … */
  readonly code: string;
  readonly message: string;
}

export interface PersistedRelease {
  readonly url: string;
  readonly manifest: string;
  readonly signature: string;
}

export interface UpdateState {
  readonly format: 1;
  readonly phase: UpdatePhase;
  readonly jobId: string;
  readonly version: string;
  /** The job's release (URL, manifest, signature), so an install cut short is resumed as it was asked. */
  readonly release: PersistedRelease;
  /** `releases/<version>`: where the release is (being) unpacked. */
  readonly target: string;
  /** What `current` pointed to before the switch: where a rollback goes. Set from `switching` on. */
  readonly previous?: string;
  /** The last release confirmed healthy (or the factory install): the guard's fallback for a broken link. */
  readonly lastGood?: string;
  /** Epoch ms by which the new agent must confirm health (`verifying`). */
  readonly deadline?: number;
  /** Starts of the new release counted by the boot guard while `verifying`. */
  readonly attempts: number;
  readonly healthDeadlineMs: number;
  /** More starts than this while `verifying` and the guard rolls back (the release crashes at start). */
  readonly maxStarts: number;
  readonly reason?: UpdateReason;
  /** The step the update ended on (`verify`, `download`, `unpack`, `health`, `rollback`), for the job's report. */
  readonly step?: string;
  readonly updatedAt: number;
}

/** The state file is ours, but a disk can hand back anything: a file that is not this shape is no state. */
const MAX_STATE_BYTES = 64 * 1024;

export async function readUpdateState(fs: UpdateFs, file: string): Promise<UpdateState | undefined> {
  let text: string;
  try {
    const st = await fs.stat(file);
    if (st.size > MAX_STATE_BYTES) return undefined;
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    return checkState(JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkState(v: unknown): UpdateState | undefined {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const release = o.release as Record<string, unknown> | undefined;
  const reason = o.reason as Record<string, unknown> | undefined;
  const ok =
    o.format === 1 &&
    isString(o.phase) &&
    PHASES.includes(o.phase) &&
    isString(o.jobId) &&
    isString(o.version) &&
    isString(o.target) &&
    typeof release === 'object' &&
    release !== null &&
    isString(release.url) &&
    isString(release.manifest) &&
    isString(release.signature) &&
    (o.previous === undefined || isString(o.previous)) &&
    (o.lastGood === undefined || isString(o.lastGood)) &&
    (o.deadline === undefined || isCount(o.deadline)) &&
    isCount(o.attempts) &&
    isCount(o.healthDeadlineMs) &&
    isCount(o.maxStarts) &&
    isCount(o.updatedAt) &&
    (o.step === undefined || isString(o.step)) &&
    (reason === undefined ||
      (typeof reason === 'object' && reason !== null && isString(reason.code) && isString(reason.message)));
  return ok ? (o as unknown as UpdateState) : undefined;
}

export async function writeUpdateState(fs: UpdateFs, file: string, state: UpdateState): Promise<void> {
  await writeFileAtomic(fs, file, `${JSON.stringify(state, null, 2)}\n`);
}

export function isFinal(phase: UpdatePhase): boolean {
  return (FINAL_PHASES as readonly string[]).includes(phase);
}

export function isInstallPhase(phase: UpdatePhase): boolean {
  return (INSTALL_PHASES as readonly string[]).includes(phase);
}
