import { describe, expect, it } from 'vitest';
import { renderBar, renderLine } from '../../src/core/progress.js';

describe('progress', () => {
  it('draws a bar with counts, rate and ETA', () => {
    const bar = renderBar('create lab', { done: 50, total: 100, failed: 2, elapsedMs: 10_000 }, 10);
    expect(bar).toBe('create lab [#####-----]  50/100  2 failed  5.0/s  ETA 10s');
  });
  it('handles the start and an empty run', () => {
    expect(renderBar('x', { done: 0, total: 5, failed: 0, elapsedMs: 0 }, 5)).toBe('x [-----] 0/5  0.0/s  ETA -');
    expect(renderBar('x', { done: 0, total: 0, failed: 0, elapsedMs: 0 }, 4)).toContain('[####]');
  });
  it('plain line per thing', () => {
    expect(renderLine({ done: 3, total: 10, failed: 0, elapsedMs: 1 }, 'lab-0003', 'created')).toBe(
      '[3/10] lab-0003 created',
    );
  });
});
