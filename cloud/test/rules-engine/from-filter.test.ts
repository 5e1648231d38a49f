import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/index.js';
import { silentLogger } from '../../src/logger.js';
import { createRulesEngine } from '../../src/rules/engine.js';
import { within } from '../broker/fixtures.js';
import { engineDirs, rule, rulesEngineBed } from './fixtures.js';

/**
 * A rule's FROM filter is matched as AWS IoT's rules engine matches it, which differs from MQTT in
 * one place: `#` does not match the parent level (`FROM 'a/#'` is not triggered by a message on
 * `a`, where an MQTT subscription to `a/#` receives it). Run on the real broker bus.
 */

let broker: Broker;
let dir: string;
const engines = rulesEngineBed('rules-from', (bed) => {
  ({ broker, dir } = bed);
});

describe('FROM topic filter', () => {
  it("'a/#' runs for a/b, a/ and a/b/c but not for the parent topic a (an exact FROM 'a' sees it)", async () => {
    const engine = createRulesEngine({
      rules: [
        rule('hash', "SELECT topic() AS t FROM 'a/#'", [{ kind: 'republish', topic: 'seen/hash', qos: 1 }]),
        rule('plus_hash', "SELECT topic() AS t FROM 'a/+/#'", [{ kind: 'republish', topic: 'seen/plus', qos: 1 }]),
        rule('exact', "SELECT topic() AS t FROM 'a'", [{ kind: 'republish', topic: 'seen/exact', qos: 1 }]),
      ],
      bus: broker.bus,
      handlers: {},
      ...engineDirs(join(dir, 'hash')),
      clock: { now: () => 1_700_000_000_000 },
      logger: silentLogger(),
    });
    engines.push(engine);
    await engine.start();

    const seen: { rule: string; topic: string }[] = [];
    let done!: () => void;
    const allSeen = new Promise<void>((resolve) => {
      done = resolve;
    });
    // a → exact; a/ and a/b → hash; a/b/c → hash and plus_hash: 5 republishes in all.
    const unsubscribe = await broker.bus.subscribe('seen/+', (m) => {
      seen.push({ rule: m.topic.slice('seen/'.length), topic: (JSON.parse(m.payload.toString()) as { t: string }).t });
      if (seen.length === 5) done();
    });
    try {
      for (const topic of ['a', 'a/', 'a/b', 'a/b/c']) await broker.bus.publish(topic, '{}', { qos: 1 });
      await within(allSeen, 5_000, 'five republished messages');
      await engine.idle();
    } finally {
      await unsubscribe();
    }

    const by = (name: string) =>
      seen
        .filter((s) => s.rule === name)
        .map((s) => s.topic)
        .sort();
    expect(by('exact')).toEqual(['a']);
    expect(by('hash')).toEqual(['a/', 'a/b', 'a/b/c']);
    // 'a/+/#' does not match its parent level a/b either.
    expect(by('plus')).toEqual(['a/b/c']);
    const matched = Object.fromEntries(engine.stats().rules.map((r) => [r.name, r.matched]));
    expect(matched).toEqual({ hash: 3, plus_hash: 1, exact: 1 });
    // Messages the bus delivers for a parent level (MQTT's reading of the subscription) are not
    // counted as the filter's: a → 'a'; a/ and a/b → 'a/#'; a/b/c → 'a/#' and 'a/+/#'.
    expect(engine.stats().messages).toBe(5);
  });
});
