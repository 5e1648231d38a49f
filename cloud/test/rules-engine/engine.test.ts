import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Broker, BusMessage } from '../../src/broker/index.js';
import { PoisonBatchError, TelemetryStoreError } from '../../src/core/telemetry/errors.js';
import { silentLogger } from '../../src/logger.js';
import type { RuleErrorPayload } from '../../src/rules/actions/error-payload.js';
import { isTransientFailure, RuleActionError, RuleLoadError } from '../../src/rules/actions/errors.js';
import { RULE_ERROR_LOG_GROUP, RULES, type RuleDefinition } from '../../src/rules/definitions.js';
import { createRulesEngine, type RulesEngineDeps } from '../../src/rules/engine.js';
import { batchOf } from '../../src/testing/telemetry-store-suite.js';
import { within } from '../broker/fixtures.js';
import { engineDirs, rule, ruleErrorLines, rulesEngineBed } from './fixtures.js';

/**
 * The rules engine on a real broker bus (aedes behind the local core's broker), with test
 * handlers standing in for the Lambda functions and real files for archive and error sink.
 */

/** A deferred: a promise plus its resolver, for handlers a test releases. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Calls a handler saw, with a way to wait for the n-th one. */
function recorder(behaviour: (event: unknown) => Promise<unknown> = async () => undefined) {
  const events: unknown[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const handler = async (event: unknown) => {
    events.push(event);
    for (const w of waiters.filter((w) => events.length >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
    return behaviour(event);
  };
  const seen = (n: number) =>
    events.length >= n
      ? Promise.resolve()
      : within(new Promise<void>((resolve) => waiters.push({ n, resolve })), 5_000, `${n} handler calls`);
  return { handler, events, seen };
}

let broker: Broker;
let dir: string;
let n = 0;
const engines = rulesEngineBed('rules-engine', (bed) => {
  ({ broker, dir } = bed);
});

async function engineWith(rules: RuleDefinition[], overrides: Partial<RulesEngineDeps> = {}) {
  const base = join(dir, `run-${++n}`);
  const engine = createRulesEngine({
    rules,
    bus: broker.bus,
    handlers: {},
    ...engineDirs(base),
    clock: { now: () => 1_700_000_500_000 },
    logger: silentLogger(),
    newUuid: () => `uuid-${n}`,
    ...overrides,
  });
  engines.push(engine);
  await engine.start();
  const errorLines = () => ruleErrorLines(base);
  return { engine, base, errorLines };
}

/** Subscribes on the bus and resolves with the first message on `topic`. */
async function nextOn(topic: string): Promise<{ message: Promise<BusMessage> }> {
  const got = deferred<BusMessage>();
  const unsubscribe = await broker.bus.subscribe(topic, (m) => got.resolve(m));
  return { message: within(got.promise, 5_000, `message on ${topic}`).finally(() => unsubscribe()) };
}

const thing = () => `pi-${n}`;
const telemetryTopic = (t: string) => `pifleet/${t}/telemetry`;
const batch = (t: string, seq: number, temperature = 21.5) =>
  batchOf(t, seq, [{ sensor: 'bme280', ts: 1_700_000_000_000 + seq, metrics: { temperature, humidity: 40 } }]);

describe('loading rules', () => {
  const good = "SELECT * FROM 'a/b'";
  it.each([
    [
      'a syntax error',
      rule('bad_sql', "SELECT temp FROM 'a/b' WHERE", [{ kind: 'republish', topic: 'x', qos: 0 }]),
      1,
      29,
      'sql',
    ],
    [
      'an error on a later line',
      rule('bad_line', "SELECT a,\n  b +\nFROM 'a/b'", [{ kind: 'republish', topic: 'x', qos: 0 }]),
      3,
      1,
      'sql',
    ],
    [
      'an unknown function',
      rule('bad_fn', "SELECT nosuch(a) FROM 'a/b'", [{ kind: 'republish', topic: 'x', qos: 0 }]),
      1,
      8,
      'sql',
    ],
    [
      'an unclosed substitution',
      rule('bad_template', good, [{ kind: 'republish', topic: 'alerts/${topic(2)', qos: 0 }]),
      1,
      8,
      'actions[0] topic',
    ],
  ])('reports %s with the rule name, line and column', (_what, def, line, column, where) => {
    let caught: unknown;
    try {
      createRulesEngine({
        rules: [def],
        bus: broker.bus,
        handlers: {},
        archiveDir: dir,
        logDir: dir,
        clock: { now: Date.now },
        logger: silentLogger(),
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(RuleLoadError);
    const err = caught as RuleLoadError;
    expect(err.ruleName).toBe(def.name);
    expect({ line: err.line, column: err.column }).toEqual({ line, column });
    expect(err.message).toContain(def.name);
    expect(err.message).toContain(`in ${where}`);
    expect(err.message).toContain(`line ${line}, column ${column}`);
  });

  it.each([
    ['an unknown handler', [rule('r1', good, [{ kind: 'lambda', handler: 'ingest' }])], /no handler named ingest/],
    ['no actions', [rule('r1', good, [])], /at least one action/],
    ['a bad name', [rule('bad-name', good, [{ kind: 'republish', topic: 'x', qos: 0 }])], /letters, digits/],
    [
      'two rules with one name',
      [
        rule('same', good, [{ kind: 'republish', topic: 'x', qos: 0 }]),
        rule('same', good, [{ kind: 'republish', topic: 'x', qos: 0 }]),
      ],
      /two rules/,
    ],
    [
      'another SQL version',
      [{ ...rule('old', good, [{ kind: 'republish', topic: 'x', qos: 0 }]), sqlVersion: '2015-10-08' as never }],
      /2015-10-08 is not supported/,
    ],
  ])('refuses %s', (_what, rules, message) => {
    expect(() =>
      createRulesEngine({
        rules,
        bus: broker.bus,
        handlers: {},
        archiveDir: dir,
        logDir: dir,
        clock: { now: Date.now },
        logger: silentLogger(),
      }),
    ).toThrow(message);
  });

  it('loads the shipped rules and subscribes one filter per distinct FROM', async () => {
    const { engine } = await engineWith([...RULES], {
      handlers: { ingest: async () => undefined, presence: async () => undefined },
    });
    expect(engine.topicFilters).toEqual(['pifleet/+/telemetry', '$aws/events/presence/+/+']);
    expect(engine.stats().rules.map((r) => r.name)).toEqual(RULES.map((r) => r.name));
  });
});

describe('lambda action', () => {
  it('invokes the handler with the SELECT output as the event, once per matching message', async () => {
    const ingest = recorder();
    const { engine } = await engineWith(
      [
        rule('ingest', "SELECT *, topic(2) AS topicThing FROM 'pifleet/+/telemetry'", [
          { kind: 'lambda', handler: 'ingest' },
        ]),
      ],
      { handlers: { ingest: ingest.handler } },
    );
    const t = thing();
    await broker.bus.publish(telemetryTopic(t), JSON.stringify(batch(t, 1)), { qos: 1 });
    await broker.bus.publish(`pifleet/${t}/status`, '{"state":"online"}', { qos: 1 });
    await ingest.seen(1);
    await engine.idle();
    expect(ingest.events).toEqual([{ ...batch(t, 1), topicThing: t }]);
    const stats = engine.stats().rules[0];
    expect(stats).toMatchObject({ matched: 1, actions: { succeeded: 1, failed: 0 }, errorActions: { succeeded: 0 } });
  });

  it('skips messages whose WHERE is not true', async () => {
    const presence = recorder();
    const { engine } = await engineWith(
      [rule('hot', "SELECT * FROM 'sensors/+' WHERE temperature > 30", [{ kind: 'lambda', handler: 'presence' }])],
      { handlers: { presence: presence.handler } },
    );
    for (const temperature of [25, '31', 'hot', 40]) {
      await broker.bus.publish('sensors/a', JSON.stringify({ temperature }));
    }
    await broker.bus.publish('sensors/a', 'not json');
    await presence.seen(2);
    await engine.idle();
    expect(presence.events).toEqual([{ temperature: '31' }, { temperature: 40 }]);
    expect(engine.stats().rules[0]?.matched).toBe(2);
  });

  it('sends a failing handler to the error action with IoT Core failure payload, and keeps going', async () => {
    const ingest = recorder(async (event) => {
      if ((event as { poison?: boolean }).poison) throw new Error('cannot store this');
    });
    const { engine, errorLines } = await engineWith(
      [rule('ingest_e', "SELECT * FROM 'pifleet/+/telemetry'", [{ kind: 'lambda', handler: 'ingest' }])],
      { handlers: { ingest: ingest.handler } },
    );
    const poison = JSON.stringify({ poison: true });
    await broker.bus.publish(telemetryTopic('p1'), poison, { qos: 1 });
    await broker.bus.publish(telemetryTopic('p1'), JSON.stringify({ seq: 2 }), { qos: 1 });
    await ingest.seen(2);
    await engine.idle();
    expect(ingest.events).toEqual([{ poison: true }, { seq: 2 }]);
    const lines = errorLines();
    expect(lines).toHaveLength(1);
    expect(lines[0]?.logGroup).toBe(RULE_ERROR_LOG_GROUP);
    expect(lines[0]?.timestamp).toBe(1_700_000_500_000);
    const payload = lines[0]?.message as RuleErrorPayload;
    expect(payload).toEqual({
      ruleName: 'ingest_e',
      topic: telemetryTopic('p1'),
      cloudwatchTraceId: expect.any(String),
      clientId: 'n/a',
      base64OriginalPayload: Buffer.from(poison).toString('base64'),
      failures: [
        {
          failedAction: 'LambdaAction',
          failedResource: 'ingest',
          errorMessage: 'Function ingest failed. Received error: Error: cannot store this',
        },
      ],
    });
    expect(engine.stats().rules[0]).toMatchObject({
      matched: 2,
      actions: { succeeded: 1, failed: 1 },
      errorActions: { succeeded: 1, failed: 0 },
    });
  });

  it('fails a binary payload, which cannot be a Lambda event', async () => {
    const ingest = recorder();
    const { engine, errorLines } = await engineWith(
      [rule('bin', "SELECT * FROM 'raw/+'", [{ kind: 'lambda', handler: 'ingest' }])],
      { handlers: { ingest: ingest.handler } },
    );
    await broker.bus.publish('raw/a', new Uint8Array([0xff, 0x00, 0x01]));
    await within(
      (async () => {
        while (engine.stats().rules[0]?.errorActions.succeeded !== 1) await engine.idle();
      })(),
      5_000,
      'error action',
    );
    expect(ingest.events).toEqual([]);
    expect(errorLines()[0]?.message.failures[0]?.errorMessage).toMatch(/not JSON/);
  });
});

describe('acknowledging client messages', () => {
  /** The broker's bus, with the engine's before-ack handler caught so the test can call it. */
  function catchingBus() {
    let taken: ((m: BusMessage) => Promise<void> | undefined) | undefined;
    const bus = {
      ...broker.bus,
      acceptBeforeAck(handler: (m: BusMessage) => Promise<void> | undefined) {
        taken = handler;
        return () => {
          taken = undefined;
        };
      },
    };
    const offer = (topic: string, payload: unknown) => {
      if (!taken) throw new Error('no before-ack handler installed');
      return taken({
        topic,
        payload: Buffer.from(JSON.stringify(payload)),
        qos: 1,
        retain: false,
        clientId: 'pi-ack',
        acceptedBeforeAck: true,
        lastWill: false,
        properties: {},
      });
    };
    return { bus, offer };
  }

  const ingestRule = rule('ingest_ack', "SELECT * FROM 'pifleet/+/telemetry'", [{ kind: 'lambda', handler: 'ingest' }]);

  it('resolves only once the actions are done, and not at all for a topic no rule reads', async () => {
    const release = deferred();
    const ingest = recorder(() => release.promise);
    const { bus, offer } = catchingBus();
    await engineWith([ingestRule], { bus, handlers: { ingest: ingest.handler } });

    expect(offer('pifleet/pi-ack/status', { state: 'online' })).toBeUndefined();
    let settled = false;
    const ack = offer(telemetryTopic('pi-ack'), { seq: 1 })?.then(() => {
      settled = true;
    });
    await ingest.seen(1);
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(settled).toBe(false);
    release.resolve();
    await ack;
    expect(settled).toBe(true);
  });

  it('refuses the acknowledgement when the store failed transiently, after running the error action', async () => {
    const ingest = recorder(async () => {
      const full = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      throw new TelemetryStoreError('SQLite putBatch failed', { cause: full });
    });
    const { bus, offer } = catchingBus();
    const { engine, errorLines } = await engineWith([ingestRule], { bus, handlers: { ingest: ingest.handler } });
    await expect(offer(telemetryTopic('pi-ack'), { seq: 1 })).rejects.toThrow(/not acknowledged/);
    expect(errorLines()).toHaveLength(1);
    expect(engine.stats().notAcknowledged).toBe(1);
  });

  it('acknowledges a poison message once its error action has it (sending it again cannot help)', async () => {
    const ingest = recorder(async () => {
      throw new PoisonBatchError([{ path: 'seq', message: 'Required' }]);
    });
    const { bus, offer } = catchingBus();
    const { engine, errorLines } = await engineWith([ingestRule], { bus, handlers: { ingest: ingest.handler } });
    await offer(telemetryTopic('pi-ack'), { seq: 'x' });
    expect(errorLines()).toHaveLength(1);
    expect(engine.stats().notAcknowledged).toBe(0);
  });

  it.each([
    ['a store asking for a retry', new TelemetryStoreError('throttled'), true],
    ['a store that cannot be retried', new TelemetryStoreError('closed', { retryable: false }), false],
    ['a full disk under an action error', new RuleActionError('S3Action', 'k', 'no space', { code: 'ENOSPC' }), true],
    ['an SQLite I/O error', Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR_WRITE' }), true],
    ['a poison batch', new PoisonBatchError([]), false],
    ['a plain error', new Error('bug'), false],
    ['not an error at all', 'nope', false],
  ])('counts %s as transient: %s', (_what, err, transient) => {
    expect(isTransientFailure(err)).toBe(transient);
  });
});

describe('republish action', () => {
  it('publishes the SELECT output to the rendered topic', async () => {
    const { engine } = await engineWith([
      rule('alert', "SELECT topic(2) AS thingName, temperature FROM 'sensors/+' WHERE temperature > 30", [
        { kind: 'republish', topic: 'alerts/${topic(2)}', qos: 1 },
      ]),
    ]);
    const seen = await nextOn('alerts/s9');
    await broker.bus.publish('sensors/s9', JSON.stringify({ temperature: 35, extra: 1 }));
    const m = await seen.message;
    expect(JSON.parse(m.payload.toString())).toEqual({ thingName: 's9', temperature: 35 });
    expect(m.qos).toBe(1);
    await engine.idle();
  });

  it('republishes to a shadow request topic written with $$', async () => {
    const { engine } = await engineWith([
      rule('to_shadow', "SELECT VALUE {'state': {'reported': {'t': t}}} FROM 'sensors/+'", [
        { kind: 'republish', topic: '$$aws/things/${topic(2)}/shadow/update', qos: 0 },
      ]),
    ]);
    const seen = await nextOn('$aws/things/s7/shadow/update');
    await broker.bus.publish('sensors/s7', JSON.stringify({ t: 1 }));
    expect(JSON.parse((await seen.message).payload.toString())).toEqual({ state: { reported: { t: 1 } } });
    await engine.idle();
  });

  it.each([
    ['a single $', '$aws/things/${topic(2)}/shadow/update', /reserved; write \$\$/],
    ['a shadow response topic', '$$aws/things/${topic(2)}/shadow/update/accepted', /only shadow request topics/],
    ['a lifecycle topic', '$$aws/events/presence/connected/${topic(2)}', /not supported/],
    ['a jobs topic', '$$aws/things/${topic(2)}/jobs/get', /not supported/],
    ['a wildcard', 'alerts/${topic(2)}/#', /wildcard/],
  ])('refuses %s as a failed RepublishAction', async (_what, topic, reason) => {
    const { engine, errorLines } = await engineWith([
      rule('bad_topic', "SELECT * FROM 'sensors/+'", [{ kind: 'republish', topic, qos: 0 }]),
    ]);
    await broker.bus.publish('sensors/s1', '{}');
    await within(
      (async () => {
        while (errorLines().length === 0) await engine.idle();
      })(),
      5_000,
      'error line',
    );
    const failure = errorLines()[0]?.message.failures[0];
    expect(failure?.failedAction).toBe('RepublishAction');
    expect(failure?.errorMessage).toMatch(reason);
  });
});

describe('archive action', () => {
  it('writes the output to a file at the rendered key, atomically', async () => {
    const { engine, base } = await engineWith([
      rule('arch', "SELECT * FROM 'pifleet/+/telemetry'", [
        { kind: 'archive', key: 'raw/${topic(2)}/${timestamp()}-${newuuid()}.json' },
      ]),
    ]);
    const payload = JSON.stringify(batch('a1', 3));
    await broker.bus.publish(telemetryTopic('a1'), payload, { qos: 1 });
    await within(
      (async () => {
        while (engine.stats().rules[0]?.actions.succeeded !== 1) await engine.idle();
      })(),
      5_000,
      'archive',
    );
    const folder = join(base, 'archive', 'raw', 'a1');
    expect(readdirSync(folder)).toEqual([`1700000500000-uuid-${n}.json`]);
    expect(JSON.parse(readFileSync(join(folder, `1700000500000-uuid-${n}.json`), 'utf8'))).toEqual(JSON.parse(payload));
  });

  it('makes a directory again when it was removed between messages', async () => {
    const { engine, base } = await engineWith([
      rule('arch', "SELECT * FROM 'pifleet/+/telemetry'", [
        { kind: 'archive', key: 'raw/${topic(2)}/${timestamp()}-${newuuid()}.json' },
      ]),
    ]);
    const folder = join(base, 'archive', 'raw', 'a2');
    const archived = (count: number) =>
      within(
        (async () => {
          while (engine.stats().rules[0]?.actions.succeeded !== count) await engine.idle();
        })(),
        5_000,
        'archive',
      );
    await broker.bus.publish(telemetryTopic('a2'), JSON.stringify(batch('a2', 1)), { qos: 1 });
    await archived(1);
    rmSync(folder, { recursive: true });
    await broker.bus.publish(telemetryTopic('a2'), JSON.stringify(batch('a2', 1)), { qos: 1 });
    await archived(2);
    expect(readdirSync(folder)).toHaveLength(1);
    expect(engine.stats().rules[0]?.actions.failed ?? 0).toBe(0);
  });

  it.each([
    ['a key climbing out', '../${topic(2)}.json'],
    ['an absolute key', '/tmp/${topic(2)}.json'],
    ['an empty segment', 'raw//${topic(2)}.json'],
    ['an empty key', '${nothing}'],
  ])('refuses %s as a failed S3Action', async (_what, key) => {
    const { engine, errorLines, base } = await engineWith([
      rule('arch_bad', "SELECT * FROM 'sensors/+'", [{ kind: 'archive', key }]),
    ]);
    await broker.bus.publish('sensors/k1', '{}');
    await within(
      (async () => {
        while (errorLines().length === 0) await engine.idle();
      })(),
      5_000,
      'error line',
    );
    expect(errorLines()[0]?.message.failures[0]?.failedAction).toBe('S3Action');
    expect(existsSync(join(base, 'k1.json'))).toBe(false);
  });

  it('lists every failed action of one message in one error payload', async () => {
    const { engine, errorLines } = await engineWith(
      [
        rule('two_fail', "SELECT * FROM 'sensors/+'", [
          { kind: 'archive', key: '../x' },
          { kind: 'lambda', handler: 'ingest' },
          { kind: 'republish', topic: 'ok/${topic(2)}', qos: 0 },
        ]),
      ],
      {
        handlers: {
          ingest: async () => {
            throw new Error('nope');
          },
        },
      },
    );
    await broker.bus.publish('sensors/m1', '{"a":1}');
    await within(
      (async () => {
        while (errorLines().length === 0) await engine.idle();
      })(),
      5_000,
      'error line',
    );
    const lines = errorLines();
    expect(lines).toHaveLength(1);
    expect(lines[0]?.message.failures.map((f) => f.failedAction)).toEqual(['S3Action', 'LambdaAction']);
    expect(engine.stats().rules[0]).toMatchObject({ actions: { succeeded: 1, failed: 2 } });
  });
});

describe('flow control', () => {
  it('does not hold publishers up while actions wait, below the high-water mark', async () => {
    const gate = deferred();
    const ingest = recorder(() => gate.promise);
    const { engine } = await engineWith(
      [rule('slow', "SELECT * FROM 'slow/+'", [{ kind: 'lambda', handler: 'ingest' }])],
      { handlers: { ingest: ingest.handler }, concurrency: 1, maxQueued: 100 },
    );
    for (let i = 0; i < 5; i++) await within(broker.bus.publish('slow/a', `{"i":${i}}`, { qos: 1 }), 2_000, 'publish');
    expect(ingest.events).toHaveLength(1);
    expect(engine.stats()).toMatchObject({ queued: 5, running: 1, backpressureWaits: 0 });
    gate.resolve();
    await ingest.seen(5);
    await engine.idle();
    expect(engine.stats().rules[0]?.actions.succeeded).toBe(5);
  });

  it('holds deliveries once the queue is full and releases them as it drains', async () => {
    const gate = deferred();
    const ingest = recorder(() => gate.promise);
    const { engine } = await engineWith(
      [rule('full', "SELECT * FROM 'full/+'", [{ kind: 'lambda', handler: 'ingest' }])],
      { handlers: { ingest: ingest.handler }, concurrency: 1, maxQueued: 4 },
    );
    const publishes: Promise<void>[] = [];
    let settled = 0;
    for (let i = 0; i < 8; i++) {
      publishes.push(broker.bus.publish('full/a', `{"i":${i}}`, { qos: 1 }).then(() => void settled++));
    }
    await within(Promise.all(publishes.slice(0, 3)), 5_000, 'publishes below the high-water mark');
    await within(
      (async () => {
        while (engine.stats().messages < 8) await new Promise((r) => setImmediate(r));
      })(),
      5_000,
      'all deliveries',
    );
    // Deliveries from the fourth on found the queue full: their publishes (PUBACKs) are held.
    expect(engine.stats().backpressureWaits).toBe(5);
    expect(settled).toBe(3);
    gate.resolve();
    await within(Promise.all(publishes), 5_000, 'publishes released');
    await ingest.seen(8);
    await engine.idle();
    expect(ingest.events.map((e) => (e as { i: number }).i).sort()).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('keeps republishing while deliveries are held (no deadlock on the broker)', async () => {
    // More held deliveries than the broker delivers at once (aedes: 100), each rule job republishing.
    const { engine } = await engineWith(
      [rule('echo', "SELECT * FROM 'echo/in'", [{ kind: 'republish', topic: 'echo/out', qos: 1 }])],
      { concurrency: 1, maxQueued: 2 },
    );
    let out = 0;
    const unsubscribe = await broker.bus.subscribe('echo/out', () => {
      out++;
    });
    const publishes = Array.from({ length: 300 }, (_, i) => broker.bus.publish('echo/in', `{"i":${i}}`, { qos: 1 }));
    await within(Promise.all(publishes), 10_000, 'publishes under backpressure');
    await engine.idle();
    await within(
      (async () => {
        while (out < 300) await new Promise((r) => setImmediate(r));
      })(),
      10_000,
      'republished messages',
    );
    await unsubscribe();
    expect(engine.stats().backpressureWaits).toBeGreaterThan(100);
    expect(engine.stats().rules[0]?.actions.succeeded).toBe(300);
  });

  it('stops subscribing on stop() and finishes the actions already queued', async () => {
    const gate = deferred();
    const ingest = recorder(() => gate.promise);
    const { engine } = await engineWith(
      [rule('stopping', "SELECT * FROM 'stop/+'", [{ kind: 'lambda', handler: 'ingest' }])],
      { handlers: { ingest: ingest.handler } },
    );
    await broker.bus.publish('stop/a', '{"i":1}', { qos: 1 });
    await ingest.seen(1);
    const stopped = engine.stop();
    gate.resolve();
    await stopped;
    expect(engine.stats().rules[0]?.actions.succeeded).toBe(1);
    await broker.bus.publish('stop/a', '{"i":2}', { qos: 1 });
    expect(engine.stats().messages).toBe(1);
  });
});

describe('reserved topics', () => {
  it('evaluates presence events for a rule on $aws/events/presence', async () => {
    const presence = recorder();
    const { engine } = await engineWith(
      [
        rule('presence', "SELECT *, topic(4) AS kind FROM '$aws/events/presence/+/+'", [
          { kind: 'lambda', handler: 'presence' },
        ]),
      ],
      { handlers: { presence: presence.handler } },
    );
    await broker.bus.publish(
      '$aws/events/presence/connected/pi-9',
      JSON.stringify({ clientId: 'pi-9', eventType: 'connected' }),
    );
    await presence.seen(1);
    await engine.idle();
    expect(presence.events).toEqual([{ clientId: 'pi-9', eventType: 'connected', kind: 'connected' }]);
  });

  it('keeps $ topics away from a rule whose filter starts with a wildcard', async () => {
    const any = recorder();
    const { engine } = await engineWith([rule('any', "SELECT * FROM '#'", [{ kind: 'lambda', handler: 'ingest' }])], {
      handlers: { ingest: any.handler },
    });
    await broker.bus.publish('$aws/things/x/shadow/update', '{"a":1}');
    await broker.bus.publish('plain/topic', '{"b":2}');
    await any.seen(1);
    await engine.idle();
    expect(any.events).toEqual([{ b: 2 }]);
  });
});
