import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readBundle, removeBundle, writeBundleFile } from '../../src/adapters/bundle-files.js';
import { openJournal } from '../../src/adapters/journal-file.js';
import { BUNDLE_FILES, BUNDLE_MODES } from '../../src/core/bundle.js';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-files-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe('bundle files', () => {
  it('writes the key 0600 and other files 0644 in a 0700 directory, and reads them back', async () => {
    const dir = path.join(root, 'b1');
    const old = process.umask(0);
    try {
      await writeBundleFile(dir, BUNDLE_FILES.privateKey, 'KEY', BUNDLE_MODES.privateKey);
      await writeBundleFile(dir, BUNDLE_FILES.agentConfig, '{"thingName":"pi-1"}', BUNDLE_MODES.other);
    } finally {
      process.umask(old);
    }
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    expect(fs.statSync(path.join(dir, BUNDLE_FILES.privateKey)).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, BUNDLE_FILES.agentConfig)).mode & 0o777).toBe(0o644);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const b = await readBundle(dir);
    expect(b).toMatchObject({ nonEmpty: true, hasPrivateKey: true, thingName: 'pi-1' });
    expect(b.certificatePem).toBeUndefined();
  });

  it.each([
    ['{"thingName":"pi-2","port":8883}', 'pi-2'],
    ['{"thingName":5}', undefined],
    ['["pi-3"]', undefined],
    ['{"thingName":', undefined],
    ['{"__proto__":{"thingName":"inherited"}}', undefined],
    [`{"thingName":"pi-4","x":${'['.repeat(10_000)}${']'.repeat(10_000)}}`, undefined],
  ])('reads the thing name of agent config %s as %s', async (text, thingName) => {
    const dir = path.join(root, `cfg-${thingName ?? 'none'}-${text.length}`);
    await writeBundleFile(dir, BUNDLE_FILES.agentConfig, text, BUNDLE_MODES.other);
    const b = await readBundle(dir);
    expect(b.thingName).toBe(thingName);
    expect(b.agentConfigText).toBe(text);
  });

  it('reads a missing directory as empty and removes bundles', async () => {
    const b = await readBundle(path.join(root, 'nope'));
    expect(b.nonEmpty).toBe(false);
    expect(await removeBundle(path.join(root, 'b1'))).toBe(true);
    expect(await removeBundle(path.join(root, 'b1'))).toBe(false);
  });
});

describe('journal file', () => {
  it('appends entries that a later open replays, after a torn line', async () => {
    const file = path.join(root, 'j', 'run.journal');
    const j1 = await openJournal(file, 'create');
    expect(j1.replay.last.size).toBe(0);
    await j1.append({ v: 1, op: 'create', name: 'a', result: 'created', ts: 1 });
    await j1.close();
    fs.appendFileSync(file, '{"v":1,"op":"create","na');
    const j2 = await openJournal(file, 'create');
    expect(j2.replay.skippedLines).toBe(1);
    await j2.append({ v: 1, op: 'create', name: 'b', result: 'failed', ts: 2 });
    await j2.close();
    const j3 = await openJournal(file, 'create');
    expect([...j3.replay.last.keys()]).toEqual(['a', 'b']);
    await j3.close();
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
  });
});
