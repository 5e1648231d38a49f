import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFileJobState } from '../../src/jobs/state.js';

/** The job execution state file: its directory is made as it is first saved. */

const dir = mkdtempSync(path.join(os.tmpdir(), 'agent-job-state-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const job = { jobId: 'j1', executionNumber: 1, operation: 'pifleet.config', step: 'apply', versionNumber: 2 };

describe('createFileJobState', () => {
  it('makes the missing directories of its file on the first save', () => {
    const file = path.join(dir, 'a', 'b', 'job-execution.json');
    const store = createFileJobState({ file });
    store.save(job);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({ format: 1, ...job });
    expect(store.load()).toEqual(job);
  });

  // mkdirSync(…, { recursive: true }) never returned for a file under /proc (procfs answers ENOENT
  // below /proc), so the agent hung at full CPU in the middle of a job.
  it.runIf(existsSync('/proc/self'))('throws ENOENT for a file under /proc instead of never returning', () => {
    const store = createFileJobState({ file: `/proc/pifleet-${process.pid}/state/job-execution.json` });
    expect(() => store.save(job)).toThrow(expect.objectContaining({ code: 'ENOENT', syscall: 'mkdir' }));
  });
});
