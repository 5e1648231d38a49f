import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { openSqliteShadowStore } from '../../src/shadow/sqlite-store.js';
import { createHarness, httpApply, mqttApply } from './harness.js';
import { bindThing, runSequence, SEQUENCES } from './sequences.js';

const cases = SEQUENCES.map((s, i) => ({ name: s.name, sequence: s, thing: `seq-thing-${i}` }));

describe('AWS documentation sequences, against the shadow service', () => {
  it.each(cases)('over MQTT requests: $name', async ({ sequence, thing }) => {
    const h = createHarness();
    await runSequence(bindThing(sequence, thing), thing, mqttApply(h));
  });

  it.each(cases)('over the HTTP data plane: $name', async ({ sequence, thing }) => {
    const h = createHarness();
    await runSequence(bindThing(sequence, thing), thing, httpApply(h));
  });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pifleet-shadow-seq-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it.each(cases)('over MQTT with the SQLite store: $name', async ({ sequence, thing }) => {
    const store = openSqliteShadowStore({ path: path.join(dir, `${thing}.db`) });
    try {
      const h = createHarness({ store });
      await runSequence(bindThing(sequence, thing), thing, mqttApply(h));
    } finally {
      await store.close();
    }
  });
});
