import { checkTopicFilter, topicMatches } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import { compileRule, compileTopicFilter } from '../../src/core/iotsql/index.js';

/** A small deterministic generator (mulberry32) so the comparison is reproducible. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('compiled FROM filters agree with the protocol topic matcher', () => {
  it('on 20,000 generated filter/topic pairs', () => {
    const next = rng(7);
    const words = ['a', 'b', 'pifleet', '$aws', 'pi-01', '', 'telemetry'];
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
    let compared = 0;
    let matched = 0;
    for (let i = 0; i < 20_000; i++) {
      const levels = 1 + Math.floor(next() * 4);
      const filter = Array.from({ length: levels }, (_, k) => {
        const r = next();
        if (r < 0.2) return '+';
        if (r < 0.3 && k === levels - 1) return '#';
        return pick(words);
      }).join('/');
      if (checkTopicFilter(filter) !== undefined) continue;
      const topic = Array.from({ length: 1 + Math.floor(next() * 4) }, () => pick(words)).join('/');
      const expected = topicMatches(filter, topic);
      expect(compileTopicFilter(filter)(topic), `${filter} vs ${topic}`).toBe(expected);
      compared++;
      if (expected) matched++;
    }
    expect(compared).toBeGreaterThan(10_000);
    expect(matched).toBeGreaterThan(500);
  });
});

describe("a rule's FROM: '#' does not match the parent level (AWS IoT rules, unlike MQTT)", () => {
  it.each([
    ['a/#', 'a', false],
    ['a/#', 'a/', true],
    ['a/#', 'a/b', true],
    ['a/#', 'a/b/c', true],
    ['a/+/#', 'a/b', false],
    ['a/+/#', 'a/b/c', true],
    ['#', 'a', true],
    ['+/#', 'a', false],
    ['+/#', 'a/b', true],
  ] as const)('FROM %s vs topic %s: %s', (filter, topic, expected) => {
    expect(compileRule(`SELECT * FROM '${filter}'`).matchesTopic(topic)).toBe(expected);
    expect(compileRule(`SELECT * FROM '${filter}'`).evaluate({ topic, payload: '{}' }).matched).toBe(expected);
    // The MQTT reading, for subscriptions, still matches the parent.
    expect(compileTopicFilter(filter)(topic)).toBe(topicMatches(filter, topic));
  });
});
