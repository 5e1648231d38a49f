import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { makeDirectory } from '@pifleet/protocol';
import {
  formatJournalEntry,
  type JournalEntry,
  type JournalOp,
  type JournalReplay,
  replayJournal,
} from '../core/journal.js';

/** An append-only journal file (one JSON line per finished thing), synced per line. */
export interface JournalFile {
  readonly path: string;
  readonly replay: JournalReplay;
  append(entry: JournalEntry): Promise<void>;
  close(): Promise<void>;
}

export async function openJournal(file: string, op: JournalOp): Promise<JournalFile> {
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const replay = replayJournal(text, op);
  await makeDirectory(path.dirname(file), 0o777);
  const handle = await open(file, 'a', 0o600);
  // A torn last line would glue onto the next entry; start on a fresh line.
  if (text.length > 0 && !text.endsWith('\n')) await handle.write('\n');
  let chain: Promise<void> = Promise.resolve();
  return {
    path: file,
    replay,
    append(entry) {
      chain = chain.then(async () => {
        await handle.write(formatJournalEntry(entry));
        await handle.datasync();
      });
      return chain;
    },
    async close() {
      await chain.catch(() => undefined);
      await handle.close();
    },
  };
}
