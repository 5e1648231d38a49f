import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** The project of the end-to-end suites: real agent and core processes, minutes of real time. */
const END_TO_END_PROJECT = 'test';

/**
 * Vitest's own order runs the projects one after the other (each by its files' last durations,
 * or by size on a first run), so the end-to-end project, last by name, brought the longest files
 * together at the end of the run: on 2 workers one of them ran on alone while the other worker had
 * nothing left. This order takes first the files with no duration from an earlier run, or that
 * failed in it (as Vitest does; on a fresh clone, as in CI, that is all of them), the end-to-end
 * project's before the others; then the rest, longest first across all projects. Short files fill
 * the workers at the end.
 */
export default class LongestFirstSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const root = this.ctx.config.root;
    const durationOf = (file: TestSpecification) => {
      const result = this.ctx.cache.getFileTestResults(`${file.project.name}:${relative(root, file.moduleId)}`);
      return result === undefined || result.failed ? undefined : result.duration;
    };
    // Unknown end-to-end files (group 0), other unknown files (1), then the known ones (2) by duration.
    const ranked = base.map((file) => {
      const duration = durationOf(file);
      const group = duration !== undefined ? 2 : file.project.name === END_TO_END_PROJECT ? 0 : 1;
      return { file, group, duration: duration ?? 0 };
    });
    // Array.prototype.sort is stable: files of one group with equal durations keep Vitest's order.
    return ranked.sort((a, b) => a.group - b.group || b.duration - a.duration).map((r) => r.file);
  }
}
