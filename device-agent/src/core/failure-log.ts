/** A connection failure as the transport logged it at warn, or is about to report it. */
export interface FailureReport {
  /** What failed and how (the reason and its variant): the same key is the same failure. */
  readonly key: string;
  /** When it was reported (ms). */
  readonly at: number;
  /** Whether the report names when the next attempt starts (else an attempt is under way). */
  readonly namesRetry: boolean;
}

/**
 * Whether `next` repeats the failure `last` logged, within `intervalMs` of it: then it is counted,
 * not logged again. A report that can name the retry time is news after one that could not; the
 * reverse is not, since whether an attempt happens to be under way when a failure is reported is a
 * race. (Both directions used to count as news: the transport then logged the same refused
 * connection at every other attempt, more often with Node 22 and 24's timing than with 20's.)
 */
export function repeatsLoggedFailure(
  last: FailureReport | undefined,
  next: FailureReport,
  intervalMs: number,
): boolean {
  if (last === undefined || last.key !== next.key || next.at - last.at >= intervalMs) return false;
  return last.namesRetry || !next.namesRetry;
}
