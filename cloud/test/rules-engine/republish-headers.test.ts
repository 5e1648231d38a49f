import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Broker, BusMessage } from '../../src/broker/index.js';
import type { MessageProperties } from '../../src/broker/properties.js';
import { silentLogger } from '../../src/logger.js';
import { RuleLoadError } from '../../src/rules/actions/errors.js';
import type { RepublishHeaders, RuleDefinition } from '../../src/rules/definitions.js';
import { createRulesEngine } from '../../src/rules/engine.js';
import { within } from '../broker/fixtures.js';
import { engineDirs, rule, ruleErrorLines, rulesEngineBed } from './fixtures.js';

/**
 * The republish action's MQTT 5 headers (IoT's RepublishAction.headers), on the real broker bus:
 * each value a substitution template over the incoming message, its properties included.
 */

let broker: Broker;
let dir: string;
let n = 0;
const engines = rulesEngineBed('republish-headers', (bed) => {
  ({ broker, dir } = bed);
});

const republishRule = (headers: RepublishHeaders, sql = "SELECT * FROM 'in/+'"): RuleDefinition =>
  rule(
    `headers_${++n}`,
    sql,
    [{ kind: 'republish', topic: 'out/${topic(2)}', qos: 1, headers }],
    'republish with headers',
  );

function engineFor(rule: RuleDefinition) {
  const base = join(dir, `run-${n}`);
  const engine = createRulesEngine({
    rules: [rule],
    bus: broker.bus,
    handlers: {},
    ...engineDirs(base),
    clock: { now: () => 1_700_000_500_000 },
    logger: silentLogger(),
  });
  engines.push(engine);
  const errorLines = () => ruleErrorLines(base).map((l) => l.message);
  return { engine, errorLines };
}

/** Starts the rule, publishes one message on in/{id} and returns what arrives on out/{id}. */
async function republished(
  headers: RepublishHeaders,
  properties: MessageProperties | undefined,
  payload: object = { t: 21 },
): Promise<BusMessage> {
  const { engine } = engineFor(republishRule(headers));
  await engine.start();
  const id = `d${n}`;
  let resolve!: (m: BusMessage) => void;
  const got = new Promise<BusMessage>((r) => {
    resolve = r;
  });
  const unsubscribe = await broker.bus.subscribe(`out/${id}`, (m) => resolve(m));
  try {
    await broker.bus.publish(`in/${id}`, JSON.stringify(payload), properties === undefined ? {} : { properties });
    return await within(got, 5_000, `republished message on out/${id}`);
  } finally {
    await unsubscribe();
  }
}

const V5: MessageProperties = {
  payloadFormatIndicator: true,
  contentType: 'application/json',
  responseTopic: 'replies/d',
  correlationData: Buffer.from([1, 2, 250]),
  userProperties: { site: 'north', batch: ['b-1', 'b-2'] },
};

describe('republish headers', () => {
  it('sets every header from literals', async () => {
    const m = await republished(
      {
        payloadFormatIndicator: 'UTF8_DATA',
        contentType: 'application/json',
        responseTopic: 'replies/here',
        correlationData: Buffer.from('req-7').toString('base64'),
        messageExpiry: '120',
        userProperties: [
          { key: 'origin', value: 'rule' },
          { key: 'origin', value: 'again' },
          { key: 'kind', value: '' },
        ],
      },
      undefined,
    );
    expect(JSON.parse(m.payload.toString())).toEqual({ t: 21 });
    expect(m.properties.payloadFormatIndicator).toBe(true);
    expect(m.properties.contentType).toBe('application/json');
    expect(m.properties.responseTopic).toBe('replies/here');
    expect(Buffer.from(m.properties.correlationData ?? []).toString()).toBe('req-7');
    expect(m.properties.messageExpiryInterval).toBe(120);
    expect({ ...m.properties.userProperties }).toEqual({ origin: ['rule', 'again'], kind: '' });
  });

  it("passes the incoming message's properties through templates", async () => {
    const m = await republished(
      {
        payloadFormatIndicator: "${get_mqtt_property('format_indicator')}",
        contentType: "${get_mqtt_property('content_type')}",
        responseTopic: "${get_mqtt_property('response_topic')}",
        correlationData: "${get_mqtt_property('correlation_data')}",
        messageExpiry: '${t * 10}',
        userProperties: [
          { key: 'site', value: "${get(get_user_properties('site'), 0)}" },
          { key: 'batches', value: "${get_user_properties('batch')}" },
          { key: '${topic(1)}', value: '${clientid()}' },
        ],
      },
      V5,
    );
    expect(m.properties.payloadFormatIndicator).toBe(true);
    expect(m.properties.contentType).toBe('application/json');
    expect(m.properties.responseTopic).toBe('replies/d');
    expect([...(m.properties.correlationData ?? [])]).toEqual([1, 2, 250]);
    expect(m.properties.messageExpiryInterval).toBe(210);
    // an Array renders as JSON in a substitution template
    expect({ ...m.properties.userProperties }).toEqual({ site: 'north', batches: '["b-1","b-2"]', in: 'n/a' });
  });

  it('leaves out headers that render empty (an MQTT 3.1.1 message has no properties to pass on)', async () => {
    const m = await republished(
      {
        payloadFormatIndicator: "${get_mqtt_property('format_indicator')}",
        contentType: "${get_mqtt_property('content_type')}",
        correlationData: "${get_mqtt_property('correlation_data')}",
        userProperties: [{ key: 'site', value: "${get(get_user_properties('site'), 0)}" }],
      },
      undefined,
    );
    expect(m.properties.payloadFormatIndicator).toBeUndefined();
    expect(m.properties.contentType).toBeUndefined();
    expect(m.properties.correlationData).toBeUndefined();
    expect({ ...m.properties.userProperties }).toEqual({ site: '' });
  });

  it('without headers, the republished message carries no properties of the incoming one', async () => {
    const { engine } = engineFor({
      ...republishRule({}),
      actions: [{ kind: 'republish', topic: 'out/${topic(2)}', qos: 0 }],
    });
    await engine.start();
    let resolve!: (m: BusMessage) => void;
    const got = new Promise<BusMessage>((r) => {
      resolve = r;
    });
    const unsubscribe = await broker.bus.subscribe('out/plain', (m) => resolve(m));
    await broker.bus.publish('in/plain', '{}', { properties: V5 });
    const m = await within(got, 5_000, 'republished message');
    await unsubscribe();
    expect(m.properties).toEqual({});
  });

  it.each<[what: string, headers: RepublishHeaders, reason: RegExp]>([
    [
      'a format indicator',
      { payloadFormatIndicator: '${f}' },
      /headers.payloadFormatIndicator must be UTF8_DATA or UNSPECIFIED_BYTES, not "1"/,
    ],
    ['correlation data', { correlationData: '${f}x' }, /headers.correlationData must be base64-encoded/],
    [
      'a message expiry',
      { messageExpiry: '${-f}' },
      /headers.messageExpiry must be a whole number of seconds from 0 to 4294967295, not "-1"/,
    ],
    ['a message expiry past 32 bits', { messageExpiry: '${f * 4294967296}' }, /not "4294967296"/],
    ['a response topic', { responseTopic: 'r/${f}/#' }, /headers.responseTopic must not contain wildcard characters/],
  ])(
    'fails the action when %s renders to what it cannot be, and runs the error action',
    async (_what, headers, reason) => {
      const { engine, errorLines } = engineFor(republishRule(headers));
      await engine.start();
      let republishedAnyway = false;
      const unsubscribe = await broker.bus.subscribe(`out/bad${n}`, () => {
        republishedAnyway = true;
      });
      await broker.bus.publish(`in/bad${n}`, JSON.stringify({ f: 1 }));
      await within(
        (async () => {
          while (errorLines().length === 0) await engine.idle();
        })(),
        5_000,
        'error line',
      );
      await unsubscribe();
      const failure = errorLines()[0]?.failures[0];
      expect(failure?.failedAction).toBe('RepublishAction');
      expect(failure?.failedResource).toBe(`out/bad${n}`);
      expect(failure?.errorMessage).toMatch(reason);
      expect(republishedAnyway).toBe(false);
      expect(engine.stats().rules[0]?.actions).toEqual({ succeeded: 0, failed: 1 });
    },
  );

  it.each<[what: string, headers: RepublishHeaders, reason: RegExp]>([
    [
      'a format indicator that is not the enum',
      { payloadFormatIndicator: 'UTF-8' },
      /headers.payloadFormatIndicator must be UTF8_DATA or UNSPECIFIED_BYTES/,
    ],
    [
      'correlation data that is not base64',
      { correlationData: 'not base64!' },
      /headers.correlationData must be base64-encoded/,
    ],
    ['a message expiry that is not a number', { messageExpiry: '1h' }, /headers.messageExpiry must be a whole number/],
    ['a response topic with a wildcard', { responseTopic: 'r/+' }, /headers.responseTopic must not contain wildcard/],
    [
      'a content type over 1024 characters',
      { contentType: 'x'.repeat(1025) },
      /headers.contentType is longer than 1024/,
    ],
    ['no user properties', { userProperties: [] }, /must have 1 to 100 entries, not 0/],
    [
      '101 user properties',
      { userProperties: Array.from({ length: 101 }, (_, i) => ({ key: `k${i}`, value: 'v' })) },
      /must have 1 to 100 entries, not 101/,
    ],
    [
      'a user property key over 1024',
      { userProperties: [{ key: 'k'.repeat(1025), value: '' }] },
      /userProperties\[0\].key is longer/,
    ],
    [
      'a template that does not compile',
      { contentType: "${get_mqtt_property('contentType')}" },
      /headers.contentType.*one of/,
    ],
  ])('refuses %s when the rule loads', (_what, headers, reason) => {
    let thrown: unknown;
    try {
      engineFor(republishRule(headers));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(RuleLoadError);
    expect((thrown as Error).message).toMatch(reason);
  });
});
