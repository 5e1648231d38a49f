import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** The project of the end-to-end suites: real agent and core processes, minutes of real time. */
const END_TO_END_PROJECT = 'test';

/**
 * Vitest's own order runs the projects one after the other (each by its files' last durations,
 * or by size on a first run), so the end-to-end project, last by name, brought the longest files
 * together at the end of the run: on 2 workers one of them ran on alone while the other worker
 * had nothing left. This order is the longest file first across all projects when every file has a
 * duration from an earlier run, and otherwise (a fresh clone, as in CI) the end-to-end project
 * first, then the others in Vitest's order; short files fill the workers at the end either way.
 */
export default class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const root = this.ctx.config.root;
    const durations = new Map<TestSpecification, number>();
    for (const file of base) {
      const result = this.ctx.cache.getFileTestResults(`${file.project.name}:${relative(root, file.moduleId)}`);
      if (result !== undefined && !result.failed) durations.set(file, result.duration);
    }
    if (durations.size === base.length) {
      return [...base].sort((a, b) => (durations.get(b) ?? 0) - (durations.get(a) ?? 0));
    }
    return [
      ...base.filter((f) => f.project.name === END_TO_END_PROJECT),
      ...base.filter((f) => f.project.name !== END_TO_END_PROJECT),
    ];
  }
}
