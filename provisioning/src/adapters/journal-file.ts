import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  formatJournalEntry,
  type JournalEntry,
  type JournalOp,
  type JournalReplay,
  replayJournal,
} from '../core/journal.js';
import { cannotWrite, makeOutDirectory } from './out-directory.js';

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
    // No journal yet; a path through a file (ENOTDIR) is refused below, with the CLI's hint.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw err;
  }
  const replay = replayJournal(text, op);
  // Before the first thing is made: a journal it cannot write (--out under /proc, through a file)
  // was exit 1 with Node's bare error.
  await makeOutDirectory(path.dirname(file), 0o777);
  const handle = await open(file, 'a', 0o600).catch((err: unknown) => {
    throw cannotWrite(path.dirname(file), err);
  });
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
