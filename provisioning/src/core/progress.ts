/** Progress display of a bulk run: a bar redrawn in place on a terminal, plain lines otherwise. */

export interface ProgressState {
  readonly done: number;
  readonly total: number;
  readonly failed: number;
  readonly elapsedMs: number;
}

function rate(state: ProgressState): number {
  return state.elapsedMs > 0 ? (state.done * 1000) / state.elapsedMs : 0;
}

/** One redrawable line: `[#########-----------]  450/1000  3 failed  87.5/s  ETA 6s`. */
export function renderBar(label: string, state: ProgressState, width = 30): string {
  const fraction = state.total > 0 ? Math.min(1, state.done / state.total) : 1;
  const filled = Math.round(fraction * width);
  const perSecond = rate(state);
  const remaining = state.total - state.done;
  const eta = perSecond > 0 ? `ETA ${Math.ceil(remaining / perSecond)}s` : 'ETA -';
  const failed = state.failed > 0 ? `  ${state.failed} failed` : '';
  return `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(state.done).padStart(String(state.total).length)}/${state.total}${failed}  ${perSecond.toFixed(1)}/s  ${eta}`;
}

/** One line per finished thing, for logs and pipes. */
export function renderLine(state: ProgressState, name: string, result: string): string {
  return `[${state.done}/${state.total}] ${name} ${result}`;
}
