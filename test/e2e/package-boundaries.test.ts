import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The lint rule that keeps a relative import inside its package (biome.json: noRestrictedImports,
 * one override per directory depth, so that `../` climbing past the package root is refused at
 * any depth). Runs the workspace's Biome with the workspace's biome.json on sample files in a
 * scratch tree shaped like the workspace.
 */

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);
const scratch = mkdtempSync(path.join(os.tmpdir(), 'pifleet-boundaries-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const samples: Record<string, string> = {
  // Crossing a package root: each line is refused.
  'simulator/src/fleet/cross.ts': [
    "import { a } from '../../../device-agent/src/index.js';",
    "export { b } from '../../../cloud/src/index.js';",
    "export * from '../../../../elsewhere/c.js';",
    "const d = await import('../../../provisioning/src/cli.js');",
    'export const all = [a, d];',
  ].join('\n'),
  'simulator/test/fleet/cross.test.ts': "import '../../../device-agent/test/transport/contract.js';",
  'test/e2e/cross.test.ts': "import type { X } from '../../simulator/src/index.js';\nexport type Y = X;",
  'protocol/cross.ts': "export * from '../cloud/src/index.js';",
  'cloud/src/a/b/c/d/cross.ts': "export * from '../../../../../../protocol/src/index.js';",
  // Inside the package, or by name: allowed.
  'simulator/src/fleet/inside.ts': [
    "import { a } from '../metrics.js';",
    "import { b } from '../../test/fleet/helpers.js';",
    "import { c } from '@pifleet/device-agent/testing';",
    "import { d } from './pool.js';",
    'export const all = [a, b, c, d];',
  ].join('\n'),
  'device-agent/src/inside.ts': "export * from '../test/app/fixtures.js';",
  // bench/ is not a package: it measures the packages' internals by path.
  'bench/inside.bench.ts': "export * from '../cloud/src/index.js';",
};

interface Diagnostic {
  readonly category: string;
  readonly location: { readonly path: string; readonly start: { readonly line: number } };
}

describe('relative imports stay inside their package', () => {
  it('refuses every import that climbs out of a package root, and nothing else', async () => {
    copyFileSync(path.join(REPO, 'biome.json'), path.join(scratch, 'biome.json'));
    for (const [file, text] of Object.entries(samples)) {
      mkdirSync(path.dirname(path.join(scratch, file)), { recursive: true });
      writeFileSync(path.join(scratch, file), `${text}\n`);
    }
    const biome = path.join(REPO, 'node_modules/@biomejs/biome/bin/biome');
    // Exit 1 when there are errors: the report is on stdout either way.
    const out = await run(
      process.execPath,
      [biome, 'lint', '--vcs-enabled=false', '--only=style/noRestrictedImports', '--reporter=json', '.'],
      { cwd: scratch, timeout: 60_000 },
    ).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
    const report = JSON.parse(out.stdout) as { diagnostics: Diagnostic[] };
    const refused = report.diagnostics
      .filter((d) => d.category === 'lint/style/noRestrictedImports')
      .map((d) => `${d.location.path}:${d.location.start.line}`)
      .sort();
    expect(refused).toEqual([
      'cloud/src/a/b/c/d/cross.ts:1',
      'protocol/cross.ts:1',
      'simulator/src/fleet/cross.ts:1',
      'simulator/src/fleet/cross.ts:2',
      'simulator/src/fleet/cross.ts:3',
      'simulator/src/fleet/cross.ts:4',
      'simulator/test/fleet/cross.test.ts:1',
      'test/e2e/cross.test.ts:1',
    ]);
  });
});
