import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Broker } from '../../src/broker/index.js';
import { silentLogger } from '../../src/logger.js';
import { RuleLoadError } from '../../src/rules/actions/errors.js';
import type { RuleDefinition } from '../../src/rules/definitions.js';
import { createRulesEngine } from '../../src/rules/engine.js';
import { within } from '../broker/fixtures.js';
import { engineDirs, rule, rulesEngineBed } from './fixtures.js';

/**
 * Rules added to and removed from a running engine (what CreateTopicRule and DeleteTopicRule
 * do), on the real broker bus. The `ingest` and `presence` handler names stand for two
 * recorders, so a test can tell which rule ran.
 */

let broker: Broker;
let dir: string;
let n = 0;
const engines = rulesEngineBed('dynamic-rules', (bed) => {
  ({ broker, dir } = bed);
});

const lambdaRule = (name: string, sql: string, handler: 'ingest' | 'presence'): RuleDefinition =>
  rule(name, sql, [{ kind: 'lambda', handler }]);

function recorder() {
  const events: unknown[] = [];
  let wake: (() => void) | undefined;
  return {
    events,
    handler: async (event: unknown) => {
      events.push(event);
      wake?.();
    },
    /** Resolves once `count` events arrived. */
    seen(count: number) {
      return within(
        new Promise<void>((resolve) => {
          const check = () => {
            if (events.length >= count) resolve();
          };
          wake = check;
          check();
        }),
        5_000,
        `${count} events`,
      );
    },
  };
}

function engineWith(rules: RuleDefinition[]) {
  const a = recorder();
  const b = recorder();
  const base = join(dir, `run-${++n}`);
  const engine = createRulesEngine({
    rules,
    bus: broker.bus,
    handlers: { ingest: a.handler, presence: b.handler },
    ...engineDirs(base),
    clock: { now: () => 1_700_000_000_000 },
    logger: silentLogger(),
  });
  engines.push(engine);
  return { engine, a, b };
}

describe('adding and removing rules', () => {
  it('a rule added before start is subscribed at start; one added after, before addRule resolves', async () => {
    const { engine, a, b } = engineWith([]);
    await engine.addRule(lambdaRule('early', "SELECT 'early' AS r FROM 'dyn/early'", 'ingest'));
    await engine.start();
    await engine.addRule(lambdaRule('late', "SELECT 'late' AS r FROM 'dyn/late'", 'presence'));
    expect(engine.topicFilters).toEqual(['dyn/early', 'dyn/late']);
    await broker.bus.publish('dyn/early', '{}');
    await broker.bus.publish('dyn/late', '{}');
    await a.seen(1);
    await b.seen(1);
    expect(a.events).toEqual([{ r: 'early' }]);
    expect(b.events).toEqual([{ r: 'late' }]);
    expect(engine.has('early') && engine.has('late')).toBe(true);
  });

  it('a rule added to a filter already subscribed sees the next message', async () => {
    const { engine, a, b } = engineWith([lambdaRule('first', "SELECT 1 AS r FROM 'dyn/shared/+'", 'ingest')]);
    await engine.start();
    await engine.addRule(lambdaRule('second', "SELECT 2 AS r FROM 'dyn/shared/+'", 'presence'));
    expect(engine.topicFilters).toEqual(['dyn/shared/+']);
    await broker.bus.publish('dyn/shared/x', '{}');
    await Promise.all([a.seen(1), b.seen(1)]);
    expect(b.events).toEqual([{ r: 2 }]);
  });

  it('a rule that does not load throws RuleLoadError and changes nothing', async () => {
    const { engine } = engineWith([lambdaRule('kept', "SELECT * FROM 'dyn/k'", 'ingest')]);
    await engine.start();
    await expect(engine.addRule(lambdaRule('broken', "SELECT FROM 'dyn/b'", 'ingest'))).rejects.toBeInstanceOf(
      RuleLoadError,
    );
    await expect(engine.addRule(lambdaRule('kept', "SELECT * FROM 'dyn/other'", 'ingest'))).rejects.toThrow(
      /a rule has this name/,
    );
    expect(engine.has('broken')).toBe(false);
    expect(engine.topicFilters).toEqual(['dyn/k']);
    expect(engine.stats().rules.map((r) => r.name)).toEqual(['kept']);
  });

  it('a removed rule no longer runs; the last rule of a filter takes its subscription with it', async () => {
    const { engine, a, b } = engineWith([
      lambdaRule('stays', "SELECT 's' AS r FROM 'dyn/rm'", 'ingest'),
      lambdaRule('goes', "SELECT 'g' AS r FROM 'dyn/rm'", 'presence'),
      lambdaRule('alone', "SELECT 'a' AS r FROM 'dyn/alone'", 'presence'),
    ]);
    await engine.start();
    expect(await engine.removeRule('goes')).toBe(true);
    expect(await engine.removeRule('alone')).toBe(true);
    expect(await engine.removeRule('never')).toBe(false);
    expect(engine.topicFilters).toEqual(['dyn/rm']);
    await broker.bus.publish('dyn/alone', '{}');
    await broker.bus.publish('dyn/rm', '{}');
    await a.seen(1);
    await engine.idle();
    expect(b.events).toEqual([]);
    expect(engine.stats().rules.map((r) => r.name)).toEqual(['stays']);
    // the name is free again
    await engine.addRule(lambdaRule('goes', "SELECT 'again' AS r FROM 'dyn/rm'", 'presence'));
    await broker.bus.publish('dyn/rm', '{}');
    await b.seen(1);
    expect(b.events).toEqual([{ r: 'again' }]);
  });

  it('a disabled rule holds its name and evaluates nothing', async () => {
    const { engine, a, b } = engineWith([lambdaRule('on', "SELECT 1 AS r FROM 'dyn/dis'", 'ingest')]);
    await engine.start();
    await engine.addRule(lambdaRule('off', "SELECT 2 AS r FROM 'dyn/dis'", 'presence'), { disabled: true });
    expect(engine.has('off')).toBe(true);
    await broker.bus.publish('dyn/dis', '{}');
    await a.seen(1);
    await engine.idle();
    expect(b.events).toEqual([]);
    expect(engine.stats().rules.find((r) => r.name === 'off')?.matched).toBe(0);
  });
});
