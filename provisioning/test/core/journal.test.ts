import { describe, expect, it } from 'vitest';
import { formatJournalEntry, isDone, type JournalEntry, replayJournal } from '../../src/core/journal.js';

const e = (name: string, result: JournalEntry['result'], op: JournalEntry['op'] = 'create'): JournalEntry => ({
  v: 1,
  op,
  name,
  result,
  ts: 1,
});

describe('journal replay', () => {
  it('keeps the last entry per thing and only of the asked operation', () => {
    const text = [e('a', 'failed'), e('b', 'created'), e('a', 'completed'), e('c', 'deleted', 'delete')]
      .map(formatJournalEntry)
      .join('');
    const r = replayJournal(text, 'create');
    expect([...r.last.keys()].sort()).toEqual(['a', 'b']);
    expect(r.last.get('a')?.result).toBe('completed');
    expect(r.skippedLines).toBe(0);
  });

  it('ignores a torn last line and foreign lines', () => {
    const text = `${formatJournalEntry(e('a', 'created'))}{"v":1,"op":"create","name":"b","res`;
    const r = replayJournal(`${text}\n{"v":2}\n`, 'create');
    expect(r.last.size).toBe(1);
    expect(r.skippedLines).toBe(2);
  });

  it.each([
    [undefined, false],
    [e('a', 'failed'), false],
    [e('a', 'created'), true],
    [e('a', 'unchanged'), true],
    [e('a', 'absent', 'delete'), true],
  ])('isDone(%j) = %s', (entry, done) => {
    expect(isDone(entry)).toBe(done);
  });
});
