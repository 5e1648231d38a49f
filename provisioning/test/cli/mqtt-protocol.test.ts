import fs from 'node:fs';
import path from 'node:path';
import type { RunningCoreProcess } from '@pifleet/testkit';
import { describe, expect, it } from 'vitest';
import { BUNDLE_FILES } from '../../src/core/bundle.js';
import { cli, localCoreForFile } from '../helpers.js';

/**
 * `pifleet things create --local`: bundles speak MQTT 5 by default (the local IoT Core serves 5 and
 * 3.1.1 on one listener, as AWS IoT Core does); `--mqtt-protocol 3.1.1` keeps 3.1.1 available.
 */
let core: RunningCoreProcess;
let n = 0;
const { cwd } = localCoreForFile((started) => {
  core = started;
});

const agentConfigOf = (dir: string, thing: string) =>
  JSON.parse(fs.readFileSync(path.join(dir, '.pifleet', 'bundles', thing, BUNDLE_FILES.agentConfig), 'utf8')) as {
    mqtt?: { protocol?: string };
  };

describe('things create --local: the bundle MQTT version', () => {
  it.each([
    ['by default', [], '5'],
    ['--mqtt-protocol 5', ['--mqtt-protocol', '5'], '5'],
    ['--mqtt-protocol 3.1.1', ['--mqtt-protocol', '3.1.1'], '3.1.1'],
  ])('%s → mqtt.protocol %s', async (_what, flags, protocol) => {
    const dir = cwd();
    const thing = `pi-proto-${++n}`;
    const r = await cli(['--local', core.dataDir, 'things', 'create', thing, ...flags], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(agentConfigOf(dir, thing).mqtt).toEqual({ protocol });
  });

  it('an unknown version is a usage error (64) with a one-line reason, and creates nothing', async () => {
    const dir = cwd();
    const r = await cli(['--local', core.dataDir, 'things', 'create', 'pi-proto-bad', '--mqtt-protocol', '4'], {
      cwd: dir,
    });
    expect(r.code).toBe(64);
    expect(r.stderr).toMatch(/--mqtt-protocol must be 5 or 3\.1\.1, got "4"/);
    expect(fs.existsSync(path.join(dir, '.pifleet'))).toBe(false);
    const described = await cli(['--local', core.dataDir, 'things', 'describe', 'pi-proto-bad'], { cwd: dir });
    expect(described.code).toBe(65);
  });
});
