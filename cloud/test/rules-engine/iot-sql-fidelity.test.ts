import {
  CreateTopicRuleCommand,
  type CreateTopicRuleCommandInput,
  GetTopicRuleCommand,
  type TopicRulePayload,
} from '@aws-sdk/client-iot';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessCore, removeDir, startInProcessCore, tempDir } from '../../src/testing/in-process-core.js';
import { provisionThing } from '../../src/testing/provision.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { within } from '../broker/fixtures.js';
import { ALLOW_ALL, REPUBLISH_ROLE } from './fixtures.js';

/**
 * Issue 18's IoT SQL items end to end on the real local core: rules created with
 * `@aws-sdk/client-iot` CreateTopicRule, an mqtt.js device publishing over mutual TLS, and a
 * subscriber reading what the republish action sends. CreateTopicRule refuses SQL that AWS IoT
 * SQL does not have, the new functions run, and a FROM `#` skips the parent topic.
 */

let run: InProcessCore;
let dir: string;
let device: MqttClient;
const received: { topic: string; payload: unknown }[] = [];
const waiters: (() => void)[] = [];

beforeAll(async () => {
  dir = tempDir('iot-sql-fidelity');
  run = await startInProcessCore(dir);
  const thing = await provisionThing(run, 'sql-dev', { policy: ALLOW_ALL, policyName: 'all-sql-dev' });
  device = await mqtt.connectAsync({ ...thingMqttOptions(run.info, thing), protocolVersion: 5 });
  device.on('message', (topic, payload) => {
    received.push({ topic, payload: JSON.parse(payload.toString()) as unknown });
    for (const w of waiters.splice(0)) w();
  });
  await device.subscribeAsync('sqlout/#', { qos: 1 });
}, 60_000);

afterAll(async () => {
  await device?.endAsync();
  await run?.stop();
  removeDir(dir);
});

/** Resolves once a message has arrived on `topic`, with its payload. */
function arrival(topic: string): Promise<unknown> {
  return within(
    new Promise((resolve) => {
      const check = () => {
        const hit = received.find((m) => m.topic === topic);
        if (hit) resolve(hit.payload);
        else waiters.push(check);
      };
      check();
    }),
    10_000,
    `a message on ${topic}`,
  );
}

const createRule = (ruleName: string, sql: string, topic: string) =>
  run.iot.send(
    new CreateTopicRuleCommand({
      ruleName,
      topicRulePayload: {
        sql,
        awsIotSqlVersion: '2016-03-23',
        actions: [{ republish: { topic, qos: 1, roleArn: REPUBLISH_ROLE } }],
      } satisfies TopicRulePayload,
    } satisfies CreateTopicRuleCommandInput),
  );

describe('CreateTopicRule refuses SQL that AWS IoT SQL does not have (SqlParseException, nothing created)', () => {
  it.each<[what: string, sql: string, message: RegExp]>([
    ['IS NULL', "SELECT * FROM 'x' WHERE a IS NULL", /'x IS NULL' is not IoT SQL; use isNull\(x\)/],
    ['IS NOT UNDEFINED', "SELECT * FROM 'x' WHERE a IS NOT UNDEFINED", /use NOT isUndefined\(x\)/],
    ['too many arguments', "SELECT abs(a, 1) AS v FROM 'x'", /abs\(\) takes 1 argument, got 2/],
    ['too few arguments', "SELECT transform('enrichArray', a) AS v FROM 'x'", /transform\(\) takes 3 arguments, got 2/],
    ['an unsupported pattern letter', "SELECT time_to_epoch(t, 'yyyy-ww') AS v FROM 'x'", /pattern letter 'w'/],
    ['an unknown time zone', "SELECT parse_time('yyyy', 0, 'Mars/Olympus') AS v FROM 'x'", /unknown time zone/],
  ])('%s', async (what, sql, message) => {
    const ruleName = `refused_${what.replace(/\W+/g, '_')}`;
    const err = await createRule(ruleName, sql, 'sqlout/never').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name: 'SqlParseException', $metadata: { httpStatusCode: 400 } });
    expect((err as Error).message).toMatch(message);
    await expect(run.iot.send(new GetTopicRuleCommand({ ruleName }))).rejects.toMatchObject({
      name: 'UnauthorizedException',
    });
  });
});

describe('the new functions through a created rule', () => {
  it('transform, md2, time_to_epoch and parse_time on a device message', async () => {
    await createRule(
      'sql18_functions',
      "SELECT transform('enrichArray', {'site': site}, readings) AS readings, md2(site) AS siteHash, " +
        "time_to_epoch(at, 'yyyy-MM-dd HH:mm:ss VV') AS epoch, " +
        "parse_time('yyyy-MM-dd HH:mm z', time_to_epoch(at, 'yyyy-MM-dd HH:mm:ss VV'), 'America/Los_Angeles') AS local " +
        "FROM 'sqlin/fn'",
      'sqlout/fn',
    );
    const out = arrival('sqlout/fn');
    await device.publishAsync(
      'sqlin/fn',
      JSON.stringify({ site: 'hello', at: '2020-04-03 09:45:18 UTC+01:00', readings: [{ t: 1 }, { t: 2 }] }),
      { qos: 1 },
    );
    expect(await out).toEqual({
      readings: [
        { t: 1, site: 'hello' },
        { t: 2, site: 'hello' },
      ],
      siteHash: 'a9046c73e00331af68917d3804f70655',
      epoch: 1585903518000,
      local: '2020-04-03 01:45 PDT',
    });
  });
});

describe("FROM 'a/#' does not match the parent topic", () => {
  it('a message on sqlin/tree runs only the exact rule; sqlin/tree/x runs only the # rule', async () => {
    await createRule('sql18_hash', "SELECT topic() AS t FROM 'sqlin/tree/#'", 'sqlout/hash');
    await createRule('sql18_exact', "SELECT topic() AS t FROM 'sqlin/tree'", 'sqlout/exact');
    await device.publishAsync('sqlin/tree', '{}', { qos: 1 });
    await device.publishAsync('sqlin/tree/x', '{}', { qos: 1 });
    expect(await arrival('sqlout/hash')).toEqual({ t: 'sqlin/tree/x' });
    expect(await arrival('sqlout/exact')).toEqual({ t: 'sqlin/tree' });
    // Republishes are QoS 1 and in order per rule: had the # rule run on the parent, its first
    // message would have been for sqlin/tree.
    expect(received.filter((m) => m.topic === 'sqlout/hash').map((m) => m.payload)).toEqual([{ t: 'sqlin/tree/x' }]);
  });
});
