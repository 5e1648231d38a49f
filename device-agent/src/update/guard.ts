import {
  isRunnable,
  nodeFs,
  readLinkTarget,
  switchLink,
  type UpdateFs,
  type UpdateLayout,
  updateLayout,
} from './layout.js';
import { readUpdateState, type UpdateReason, type UpdateState, writeUpdateState } from './state.js';

/**
 * The boot guard: runs before every start of the service (`ExecStartPre=`), from the factory
 * install, which updates never change. It never loads a release's code, so a release that crashes
 * at start, or one whose files are gone, cannot stop it from putting things right:
 *
 * - `switching` (cut short between recording the switch and the next record): the switch is done
 *   again (it is idempotent) and the release goes on to `verifying`;
 * - `verifying`: one more start of the new release is counted; past `maxStarts` (it crashes before
 *   it could roll itself back), past its health deadline (it hung, or was killed by the watchdog),
 *   or with its files gone, `current` goes back to `previous` and the state records why;
 * - `rolling-back`: the switch back is done again;
 * - and always: a missing `current`, or one pointing at nothing runnable, is pointed at the last
 *   good release, else the factory install. A device always has an agent to start.
 */

export interface GuardDeps {
  readonly stateDir: string;
  readonly factoryDir: string;
  readonly fs?: UpdateFs;
  readonly now?: () => number;
  /** One line per action, for the journal. */
  readonly log?: (message: string, data?: Readonly<Record<string, unknown>>) => void;
  /** Called at each step boundary (tests kill the process there, as a power cut would). */
  readonly at?: (point: string) => void;
}

export interface GuardResult {
  /** What `current` points to when the guard is done. */
  readonly current: string;
  /** What the guard did: `none`, `completed-switch`, `counted-start`, `rolled-back`, `repaired-link`. */
  readonly actions: readonly string[];
}

export async function runBootGuard(deps: GuardDeps): Promise<GuardResult> {
  const fs = deps.fs ?? nodeFs;
  const now = deps.now ?? Date.now;
  const log = deps.log ?? (() => {});
  const at = deps.at ?? (() => {});
  const layout = updateLayout(deps.stateDir, deps.factoryDir);
  const actions: string[] = [];
  let state = await readUpdateState(fs, layout.stateFile);

  if (state?.phase === 'switching') {
    if (await isRunnable(fs, state.target)) {
      await switchLink(fs, layout.currentLink, state.target);
      state = await record(
        fs,
        layout,
        state,
        { phase: 'verifying', deadline: now() + state.healthDeadlineMs, attempts: 0 },
        now,
      );
      at('guard:switched');
      actions.push('completed-switch');
      log('update switch completed', { version: state.version, target: state.target });
    } else {
      state = await rollBackState(
        fs,
        layout,
        state,
        { code: 'missing-release', message: `release ${state.version} is not runnable` },
        now,
        at,
      );
      actions.push('rolled-back');
    }
  }
  if (state?.phase === 'verifying') {
    const attempts = state.attempts + 1;
    const deadline = state.deadline ?? 0;
    let reason: UpdateReason | undefined;
    if (!(await isRunnable(fs, state.target))) {
      reason = { code: 'missing-release', message: `release ${state.version} is not runnable` };
    } else if (attempts > state.maxStarts) {
      reason = {
        code: 'crashed-at-start',
        message: `release ${state.version} was started ${state.maxStarts} times without confirming health`,
      };
    } else if (now() > deadline) {
      reason = {
        code: 'health-deadline',
        message: `release ${state.version} did not confirm health within ${Math.round(state.healthDeadlineMs / 1000)} s`,
      };
    }
    if (reason) {
      log('update rolled back by the boot guard', { version: state.version, reason: reason.message });
      state = await rollBackState(fs, layout, state, reason, now, at);
      actions.push('rolled-back');
    } else {
      state = await record(fs, layout, state, { attempts }, now);
      at('guard:counted');
      actions.push('counted-start');
      log('update verifying: start counted', { version: state.version, attempts, maxStarts: state.maxStarts });
    }
  }
  if (state?.phase === 'rolling-back') {
    state = await completeRollback(fs, layout, state, now, at);
    actions.push('rolled-back');
  }

  const current = await readLinkTarget(fs, layout.currentLink);
  if (await isRunnable(fs, current))
    return { current: current as string, actions: actions.length ? actions : ['none'] };
  const fallback = (await isRunnable(fs, state?.lastGood)) ? (state?.lastGood as string) : layout.factoryDir;
  await switchLink(fs, layout.currentLink, fallback);
  log('current release link repaired', { was: current ?? null, now: fallback });
  actions.push('repaired-link');
  return { current: fallback, actions };
}

async function record(
  fs: UpdateFs,
  layout: UpdateLayout,
  state: UpdateState,
  change: Partial<UpdateState>,
  now: () => number,
): Promise<UpdateState> {
  const next: UpdateState = { ...state, ...change, updatedAt: now() };
  await writeUpdateState(fs, layout.stateFile, next);
  return next;
}

/** Where a rollback goes: the previous release if it can still run, else the last good one, else the factory install. */
async function rollbackTarget(fs: UpdateFs, layout: UpdateLayout, state: UpdateState): Promise<string> {
  for (const dir of [state.previous, state.lastGood]) {
    if (dir !== undefined && dir !== state.target && (await isRunnable(fs, dir))) return dir;
  }
  return layout.factoryDir;
}

/** Records `rolling-back` with the reason (before touching the link), then switches back. */
export async function rollBackState(
  fs: UpdateFs,
  layout: UpdateLayout,
  state: UpdateState,
  reason: UpdateReason,
  now: () => number,
  at: (point: string) => void,
): Promise<UpdateState> {
  const rolling = await record(fs, layout, state, { phase: 'rolling-back', reason, step: 'rollback' }, now);
  at('rolling-back');
  return completeRollback(fs, layout, rolling, now, at);
}

export async function completeRollback(
  fs: UpdateFs,
  layout: UpdateLayout,
  state: UpdateState,
  now: () => number,
  at: (point: string) => void,
): Promise<UpdateState> {
  const target = await rollbackTarget(fs, layout, state);
  await switchLink(fs, layout.currentLink, target);
  at('rolled-back-link');
  return record(fs, layout, state, { phase: 'rolled-back' }, now);
}
