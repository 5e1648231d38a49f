/**
 * The journal of a bulk run: one JSON line per thing as it finishes, appended as the run goes.
 * A re-run of the same command replays it and skips the things already done, so an interrupted
 * `fleet create` or `fleet delete` resumes where it stopped. A torn last line (the process died
 * while writing it) is ignored: that thing is simply done again, which is safe because every
 * per-thing step is idempotent.
 */

export type JournalOp = 'create' | 'delete';
/** `created`/`completed`/`unchanged` for create, `deleted`/`absent` for delete, `failed` for either. */
export type JournalResult = 'created' | 'completed' | 'unchanged' | 'deleted' | 'absent' | 'failed';

export interface JournalEntry {
  readonly v: 1;
  readonly op: JournalOp;
  readonly name: string;
  readonly result: JournalResult;
  /** ms since the epoch. */
  readonly ts: number;
  readonly certificateId?: string;
  readonly error?: string;
}

const RESULTS: ReadonlySet<string> = new Set(['created', 'completed', 'unchanged', 'deleted', 'absent', 'failed']);

export function formatJournalEntry(entry: JournalEntry): string {
  return `${JSON.stringify(entry)}\n`;
}

function isEntry(v: unknown): v is JournalEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return (
    e.v === 1 &&
    (e.op === 'create' || e.op === 'delete') &&
    typeof e.name === 'string' &&
    typeof e.result === 'string' &&
    RESULTS.has(e.result) &&
    typeof e.ts === 'number'
  );
}

export interface JournalReplay {
  /** Last entry per thing name for the op replayed. */
  readonly last: ReadonlyMap<string, JournalEntry>;
  /** Lines that were not valid entries (a torn last line, for instance). */
  readonly skippedLines: number;
}

/** Replays a journal's text for one operation. */
export function replayJournal(text: string, op: JournalOp): JournalReplay {
  const last = new Map<string, JournalEntry>();
  let skippedLines = 0;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      skippedLines++;
      continue;
    }
    if (!isEntry(parsed)) {
      skippedLines++;
      continue;
    }
    if (parsed.op === op) last.set(parsed.name, parsed);
  }
  return { last, skippedLines };
}

/** Whether a thing needs no more work on a resumed run. */
export function isDone(entry: JournalEntry | undefined): boolean {
  return entry !== undefined && entry.result !== 'failed';
}
