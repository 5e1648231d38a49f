import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Broker, createBroker } from '../../src/broker/index.js';
import { silentLogger } from '../../src/logger.js';
import { RuleLoadError } from '../../src/rules/actions/errors.js';
import { RULE_ERROR_LOG_GROUP, RULE_SQL_VERSION, type RuleDefinition } from '../../src/rules/definitions.js';
import { createRulesEngine, type RulesEngine } from '../../src/rules/engine.js';
import { ACCOUNT, createTestPki, MemoryIdentities, within } from '../broker/fixtures.js';
import { removeDir, tempDir } from '../http/harness.js';

/**
 * Rules added to and removed from a running engine (what CreateTopicRule and DeleteTopicRule
 * do), on the real broker bus. The `ingest` and `presence` handler names stand for two
 * recorders, so a test can tell which rule ran.
 */

let broker: Broker;
let dir: string;
let n = 0;
const engines: RulesEngine[] = [];

beforeAll(async () => {
  const pki = await createTestPki();
  broker = createBroker({
    identities: new MemoryIdentities(),
    tls: pki.serverTls,
    host: '127.0.0.1',
    port: 0,
    account: ACCOUNT,
  });
  await broker.start();
  dir = tempDir('dynamic-rules');
});
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.stop()));
});
afterAll(async () => {
  await broker?.stop();
  removeDir(dir);
});

const rule = (name: string, sql: string, handler: 'ingest' | 'presence'): RuleDefinition => ({
  name,
  description: name,
  sql,
  sqlVersion: RULE_SQL_VERSION,
  actions: [{ kind: 'lambda', handler }],
  errorAction: { kind: 'log', logGroup: RULE_ERROR_LOG_GROUP },
});

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
    archiveDir: join(base, 'archive'),
    logDir: join(base, 'logs'),
    clock: { now: () => 1_700_000_000_000 },
    logger: silentLogger(),
  });
  engines.push(engine);
  return { engine, a, b };
}

describe('adding and removing rules', () => {
  it('a rule added before start is subscribed at start; one added after, before addRule resolves', async () => {
    const { engine, a, b } = engineWith([]);
    await engine.addRule(rule('early', "SELECT 'early' AS r FROM 'dyn/early'", 'ingest'));
    await engine.start();
    await engine.addRule(rule('late', "SELECT 'late' AS r FROM 'dyn/late'", 'presence'));
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
    const { engine, a, b } = engineWith([rule('first', "SELECT 1 AS r FROM 'dyn/shared/+'", 'ingest')]);
    await engine.start();
    await engine.addRule(rule('second', "SELECT 2 AS r FROM 'dyn/shared/+'", 'presence'));
    expect(engine.topicFilters).toEqual(['dyn/shared/+']);
    await broker.bus.publish('dyn/shared/x', '{}');
    await Promise.all([a.seen(1), b.seen(1)]);
    expect(b.events).toEqual([{ r: 2 }]);
  });

  it('a rule that does not load throws RuleLoadError and changes nothing', async () => {
    const { engine } = engineWith([rule('kept', "SELECT * FROM 'dyn/k'", 'ingest')]);
    await engine.start();
    await expect(engine.addRule(rule('broken', "SELECT FROM 'dyn/b'", 'ingest'))).rejects.toBeInstanceOf(RuleLoadError);
    await expect(engine.addRule(rule('kept', "SELECT * FROM 'dyn/other'", 'ingest'))).rejects.toThrow(
      /a rule has this name/,
    );
    expect(engine.has('broken')).toBe(false);
    expect(engine.topicFilters).toEqual(['dyn/k']);
    expect(engine.stats().rules.map((r) => r.name)).toEqual(['kept']);
  });

  it('a removed rule no longer runs; the last rule of a filter takes its subscription with it', async () => {
    const { engine, a, b } = engineWith([
      rule('stays', "SELECT 's' AS r FROM 'dyn/rm'", 'ingest'),
      rule('goes', "SELECT 'g' AS r FROM 'dyn/rm'", 'presence'),
      rule('alone', "SELECT 'a' AS r FROM 'dyn/alone'", 'presence'),
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
    await engine.addRule(rule('goes', "SELECT 'again' AS r FROM 'dyn/rm'", 'presence'));
    await broker.bus.publish('dyn/rm', '{}');
    await b.seen(1);
    expect(b.events).toEqual([{ r: 'again' }]);
  });

  it('a disabled rule holds its name and evaluates nothing', async () => {
    const { engine, a, b } = engineWith([rule('on', "SELECT 1 AS r FROM 'dyn/dis'", 'ingest')]);
    await engine.start();
    await engine.addRule(rule('off', "SELECT 2 AS r FROM 'dyn/dis'", 'presence'), { disabled: true });
    expect(engine.has('off')).toBe(true);
    await broker.bus.publish('dyn/dis', '{}');
    await a.seen(1);
    await engine.idle();
    expect(b.events).toEqual([]);
    expect(engine.stats().rules.find((r) => r.name === 'off')?.matched).toBe(0);
  });
});
