import {
  CreateTopicRuleCommand,
  type CreateTopicRuleCommandInput,
  DeleteTopicRuleCommand,
  GetTopicRuleCommand,
  type TopicRulePayload,
} from '@aws-sdk/client-iot';
import mqtt, { type IClientPublishOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessCore, removeDir, startInProcessCore, tempDir } from '../../src/testing/in-process-core.js';
import { provisionThing } from '../../src/testing/provision.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { within } from '../broker/fixtures.js';
import { ALLOW_ALL, REPUBLISH_ROLE } from './fixtures.js';

/**
 * End to end on the real local core: a rule created with `@aws-sdk/client-iot` CreateTopicRule
 * reads an MQTT 5 PUBLISH's properties with get_user_properties()/get_mqtt_property() and
 * republishes with MQTT 5 headers; mqtt.js clients publish (v5 and 3.1.1) and subscribe (v5)
 * over mutual TLS.
 */

let run: InProcessCore;
let dir: string;
let sub: MqttClient;
let pub5: MqttClient;
let pub3: MqttClient;

async function client(name: string, protocolVersion: 4 | 5): Promise<MqttClient> {
  const thing = await provisionThing(run, name, { policy: ALLOW_ALL, policyName: `all-${name}` });
  return mqtt.connectAsync({ ...thingMqttOptions(run.info, thing), protocolVersion });
}

beforeAll(async () => {
  dir = tempDir('mqtt5-rules');
  run = await startInProcessCore(dir);
  [sub, pub5, pub3] = await Promise.all([client('sub5', 5), client('pub5', 5), client('pub3', 4)]);
  await sub.subscribeAsync('lab/+/out/#', { qos: 1 });
}, 60_000);

afterAll(async () => {
  await Promise.all([sub, pub5, pub3].map((c) => c?.endAsync()));
  await run?.stop();
  removeDir(dir);
});

/** The next message the v5 subscriber gets on `topic`. */
function nextMessage(topic: string): Promise<{ payload: Record<string, unknown>; packet: mqtt.IPublishPacket }> {
  return within(
    new Promise((resolve) => {
      const onMessage = (t: string, payload: Buffer, packet: mqtt.IPublishPacket) => {
        if (t !== topic) return;
        sub.off('message', onMessage);
        resolve({ payload: JSON.parse(payload.toString()) as Record<string, unknown>, packet });
      };
      sub.on('message', onMessage);
    }),
    10_000,
    `a message on ${topic}`,
  );
}

const createRule = (ruleName: string, topicRulePayload: TopicRulePayload) =>
  run.iot.send(new CreateTopicRuleCommand({ ruleName, topicRulePayload } satisfies CreateTopicRuleCommandInput));

const SQL =
  "SELECT t, get_user_properties('site') AS site, get_user_properties() AS all, " +
  "get_mqtt_property('content_type') AS contentType, get_mqtt_property('format_indicator') AS format, " +
  "get_mqtt_property('response_topic') AS responseTopic, get_mqtt_property('correlation_data') AS correlation, " +
  "isUndefined(get_mqtt_property('content_type')) AS noContentType FROM 'lab/+/in' WHERE t > 0";

const V5_PROPERTIES: IClientPublishOptions['properties'] = {
  payloadFormatIndicator: true,
  contentType: 'application/json',
  responseTopic: 'lab/pi/replies',
  correlationData: Buffer.from([0x00, 0x01, 0xfe]),
  userProperties: { site: 'north', batch: ['b-1', 'b-2'] },
};

describe('MQTT 5 properties through a rule created with CreateTopicRule', () => {
  beforeAll(async () => {
    await createRule('mqtt5_echo', {
      sql: SQL,
      awsIotSqlVersion: '2016-03-23',
      actions: [
        {
          republish: {
            topic: 'lab/${topic(2)}/out',
            qos: 1,
            roleArn: REPUBLISH_ROLE,
            headers: {
              payloadFormatIndicator: "${get_mqtt_property('format_indicator')}",
              contentType: "${get_mqtt_property('content_type')}",
              responseTopic: "${get_mqtt_property('response_topic')}",
              correlationData: "${get_mqtt_property('correlation_data')}",
              messageExpiry: '300',
              userProperties: [
                { key: 'site', value: "${get(get_user_properties('site'), 0)}" },
                { key: 'via', value: 'mqtt5_echo' },
              ],
            },
          },
        },
      ],
    });
  });

  it('a v5 publish: the rule selects its properties and the v5 subscriber gets the headers', async () => {
    const arrived = nextMessage('lab/a5/out');
    await pub5.publishAsync('lab/a5/in', JSON.stringify({ t: 21 }), { qos: 1, properties: V5_PROPERTIES });
    const { payload, packet } = await arrived;
    expect(payload).toEqual({
      t: 21,
      site: ['north'],
      all: [{ site: 'north' }, { batch: 'b-1' }, { batch: 'b-2' }],
      contentType: 'application/json',
      format: 'UTF8_DATA',
      responseTopic: 'lab/pi/replies',
      correlation: 'AAH+',
      noContentType: false,
    });
    const p = packet.properties ?? {};
    expect(p.payloadFormatIndicator).toBe(true);
    expect(p.contentType).toBe('application/json');
    expect(p.responseTopic).toBe('lab/pi/replies');
    expect([...(p.correlationData ?? [])]).toEqual([0x00, 0x01, 0xfe]);
    expect(p.messageExpiryInterval).toBeGreaterThan(0);
    expect(p.messageExpiryInterval).toBeLessThanOrEqual(300);
    expect(p.userProperties).toEqual({ site: 'north', via: 'mqtt5_echo' });
  });

  it('a 3.1.1 publish: every property is Undefined, and only the literal headers are set', async () => {
    const arrived = nextMessage('lab/a3/out');
    await pub3.publishAsync('lab/a3/in', JSON.stringify({ t: 7 }), { qos: 1 });
    const { payload, packet } = await arrived;
    expect(payload).toEqual({ t: 7, noContentType: true });
    const p = packet.properties ?? {};
    expect(p.payloadFormatIndicator).toBeUndefined();
    expect(p.contentType).toBeUndefined();
    expect(p.responseTopic).toBeUndefined();
    expect(p.correlationData).toBeUndefined();
    expect(p.userProperties).toEqual({ site: '', via: 'mqtt5_echo' });
  });

  it('WHERE can test a property', async () => {
    await createRule('mqtt5_where', {
      sql: "SELECT get(get_user_properties('batch'), 1) AS second FROM 'lab/+/in' WHERE get_mqtt_property('content_type') = 'application/json'",
      awsIotSqlVersion: '2016-03-23',
      actions: [{ republish: { topic: 'lab/${topic(2)}/out/json', roleArn: REPUBLISH_ROLE } }],
    });
    const arrived = nextMessage('lab/w/out/json');
    await pub5.publishAsync('lab/w/in', JSON.stringify({ t: 1 }), { qos: 1, properties: V5_PROPERTIES });
    expect((await arrived).payload).toEqual({ second: 'b-2' });
  });

  it('GetTopicRule returns the rule; DeleteTopicRule unloads it so the name can be created again', async () => {
    const got = await run.iot.send(new GetTopicRuleCommand({ ruleName: 'mqtt5_echo' }));
    expect(got.ruleArn).toBe(`arn:aws:iot:${run.info.region}:${run.info.accountId}:rule/mqtt5_echo`);
    expect(got.rule?.sql).toBe(SQL);
    expect(got.rule?.actions?.[0]?.republish?.headers?.userProperties?.[1]).toEqual({
      key: 'via',
      value: 'mqtt5_echo',
    });
    await run.iot.send(new DeleteTopicRuleCommand({ ruleName: 'mqtt5_where' }));
    await expect(run.iot.send(new GetTopicRuleCommand({ ruleName: 'mqtt5_where' }))).rejects.toMatchObject({
      name: 'UnauthorizedException',
    });
    await createRule('mqtt5_where', {
      sql: "SELECT 'again' AS v FROM 'lab/+/in'",
      awsIotSqlVersion: '2016-03-23',
      actions: [{ republish: { topic: 'lab/${topic(2)}/out/again', roleArn: REPUBLISH_ROLE } }],
    });
    const arrived = nextMessage('lab/r/out/again');
    await pub3.publishAsync('lab/r/in', JSON.stringify({ t: 0 }), { qos: 1 });
    expect((await arrived).payload).toEqual({ v: 'again' });
  });
});

describe('CreateTopicRule refuses what IoT refuses, and creates nothing', () => {
  const republish = (extra: object = {}) => ({ republish: { topic: 'lab/x/out', roleArn: REPUBLISH_ROLE, ...extra } });

  it.each<[what: string, payload: TopicRulePayload, name: string, message: RegExp]>([
    [
      'get_user_property (not an IoT SQL function)',
      { sql: "SELECT get_user_property('a') AS a FROM 'x'", awsIotSqlVersion: '2016-03-23', actions: [republish()] },
      'SqlParseException',
      /did you mean get_user_properties\(\)/,
    ],
    [
      'a get_mqtt_property name that is none of the four',
      {
        sql: "SELECT get_mqtt_property('contentType') AS a FROM 'x'",
        awsIotSqlVersion: '2016-03-23',
        actions: [republish()],
      },
      'SqlParseException',
      /one of 'format_indicator'.*\(line 1, column 26\)/,
    ],
    [
      'a payload format indicator that is not the enum',
      {
        sql: "SELECT * FROM 'x'",
        awsIotSqlVersion: '2016-03-23',
        actions: [republish({ headers: { payloadFormatIndicator: 'UTF8' } })],
      },
      'InvalidRequestException',
      /headers.payloadFormatIndicator must be UTF8_DATA or UNSPECIFIED_BYTES/,
    ],
    [
      'correlation data that is not base64',
      {
        sql: "SELECT * FROM 'x'",
        awsIotSqlVersion: '2016-03-23',
        actions: [republish({ headers: { correlationData: '%%%' } })],
      },
      'InvalidRequestException',
      /headers.correlationData must be base64-encoded/,
    ],
    [
      'a header template that does not compile',
      {
        sql: "SELECT * FROM 'x'",
        awsIotSqlVersion: '2016-03-23',
        actions: [republish({ headers: { contentType: '${get_user_property(1)}' } })],
      },
      'InvalidRequestException',
      /headers.contentType.*did you mean get_user_properties/,
    ],
    [
      'an empty userProperties list',
      {
        sql: "SELECT * FROM 'x'",
        awsIotSqlVersion: '2016-03-23',
        actions: [republish({ headers: { userProperties: [] } })],
      },
      'InvalidRequestException',
      /'headers.userProperties' must have 1 to 100 entries/,
    ],
    [
      'a rule without a SQL version (AWS would run it as 2015-10-08)',
      { sql: "SELECT * FROM 'x'", actions: [republish()] },
      'InvalidRequestException',
      /'awsIotSqlVersion' is required by the local IoT Core/,
    ],
    [
      'an action the local core cannot carry out',
      {
        sql: "SELECT * FROM 'x'",
        awsIotSqlVersion: '2016-03-23',
        actions: [{ lambda: { functionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:f' } }],
      },
      'InvalidRequestException',
      /does not carry out the lambda action/,
    ],
    [
      'a republish without a role',
      {
        sql: "SELECT * FROM 'x'",
        awsIotSqlVersion: '2016-03-23',
        actions: [{ republish: { topic: 'a', roleArn: undefined as unknown as string } }],
      },
      'InvalidRequestException',
      /'republish.roleArn' is required/,
    ],
  ])('%s', async (_what, payload, name, message) => {
    const ruleName = `bad_${name}_${Math.abs(message.source.length)}`;
    const err = await createRule(ruleName, payload).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ name, $metadata: { httpStatusCode: 400 } });
    expect((err as Error).message).toMatch(message);
    await expect(run.iot.send(new GetTopicRuleCommand({ ruleName }))).rejects.toMatchObject({
      name: 'UnauthorizedException',
    });
  });

  it('a name taken (by the rule file or by CreateTopicRule) is ResourceAlreadyExistsException', async () => {
    const payload = { sql: "SELECT * FROM 'x'", awsIotSqlVersion: '2016-03-23', actions: [republish()] };
    await createRule('taken_once', payload);
    for (const name of ['taken_once', 'pifleet_telemetry_ingest']) {
      await expect(createRule(name, payload)).rejects.toMatchObject({
        name: 'ResourceAlreadyExistsException',
        $metadata: { httpStatusCode: 409 },
      });
    }
  });

  it('a rule name outside IoT’s pattern is refused', async () => {
    await expect(
      createRule('bad-name', { sql: "SELECT * FROM 'x'", awsIotSqlVersion: '2016-03-23', actions: [republish()] }),
    ).rejects.toMatchObject({ name: 'InvalidRequestException', message: /regular expression pattern/ });
  });
});
