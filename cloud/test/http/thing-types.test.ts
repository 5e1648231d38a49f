import {
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  CreateThingTypeCommand,
  DeleteThingTypeCommand,
  DeprecateThingTypeCommand,
  DescribeThingCommand,
  DescribeThingTypeCommand,
  InvalidRequestException,
  type IoTClient,
  ListThingsCommand,
  ListThingTypesCommand,
  paginateListThingTypes,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  UpdateThingCommand,
} from '@aws-sdk/client-iot';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalIotCore, type LocalCoreInfo, type LocalIotCore } from '../../src/app/local-core.js';
import { LOCAL_CORE_DEFAULTS } from '../../src/config/local-core.js';
import { sdkClients } from '../../src/testing/in-process-core.js';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { type ErrorClass, rejection, removeDir, tempDir } from './harness.js';

/**
 * Thing types through the real @aws-sdk/client-iot (AWS IoT Developer Guide, "Thing types"), on a
 * core whose clock the test moves: a deprecated type can be deleted five minutes later.
 */

let dir: string;
let core: LocalIotCore;
let iot: IoTClient;
let destroy: () => void;
let info: LocalCoreInfo;
let clock = Date.now();

beforeAll(async () => {
  dir = tempDir('thing-types');
  core = createLocalIotCore({
    config: { ...LOCAL_CORE_DEFAULTS, dataDir: dir, mqttPort: 0, httpPort: 0 },
    now: () => clock,
  });
  info = await core.start();
  const clients = sdkClients(info);
  iot = clients.iot;
  destroy = () => {
    clients.iot.destroy();
    clients.data.destroy();
  };
});
afterAll(async () => {
  destroy?.();
  await core?.stop();
  removeDir(dir);
});

const attrs = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, `v${i}`]));

// First in the file: the certificate is issued at the core's clock, which a later test moves five
// minutes ahead, and TLS checks the certificate's validity against the real time.
describe("the thing's type and attributes on its connection", () => {
  it('a ThingTypeName condition follows UpdateThing (type given, then removed) without a reconnect', async () => {
    await iot.send(new CreateThingTypeCommand({ thingTypeName: 'Gateway' }));
    await iot.send(new CreateThingCommand({ thingName: 'gw-1', attributePayload: { attributes: { site: 'a' } } }));
    const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    const topic = (name: string) => `arn:aws:iot:${info.region}:${info.accountId}:topic/${name}`;
    await iot.send(
      new CreatePolicyCommand({
        policyName: 'gw-policy',
        policyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: 'iot:Connect', Resource: '*' },
            {
              Effect: 'Allow',
              Action: 'iot:Publish',
              Resource: topic('gateways/*'),
              Condition: { StringEquals: { 'iot:Connection.Thing.ThingTypeName': 'Gateway' } },
            },
            {
              Effect: 'Allow',
              Action: 'iot:Publish',
              Resource: topic('sites/${iot:Connection.Thing.Attributes[site]}'),
            },
          ],
        }),
      }),
    );
    await iot.send(new AttachPolicyCommand({ policyName: 'gw-policy', target: cert.certificateArn }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: 'gw-1', principal: cert.certificateArn }));
    const device = mqtt.connect({
      ...thingMqttOptions(info, {
        thingName: 'gw-1',
        certPem: cert.certificatePem as string,
        keyPem: cert.keyPair?.PrivateKey as string,
      }),
      protocolVersion: 5,
    });
    await new Promise<void>((resolve, reject) => {
      device.once('connect', () => resolve());
      device.once('error', reject);
      device.once('close', () => reject(new Error('closed before CONNACK')));
    });
    const puback = (t: string) =>
      device.publishAsync(t, 'x', { qos: 1 }).then(
        () => 0,
        (err: { code?: number }) => err.code,
      );
    try {
      expect(await puback('gateways/gw-1')).toBe(0x87);
      expect(await puback('sites/a')).toBe(0);
      await iot.send(new UpdateThingCommand({ thingName: 'gw-1', thingTypeName: 'Gateway' }));
      expect(await puback('gateways/gw-1')).toBe(0);
      await iot.send(
        new UpdateThingCommand({ thingName: 'gw-1', attributePayload: { attributes: { site: 'b' }, merge: true } }),
      );
      expect(await puback('sites/a')).toBe(0x87);
      expect(await puback('sites/b')).toBe(0);
      await iot.send(new UpdateThingCommand({ thingName: 'gw-1', removeThingType: true }));
      expect(await puback('gateways/gw-1')).toBe(0x87);
      expect(device.connected).toBe(true);
    } finally {
      await device.endAsync();
    }
  });
});

describe('thing types', () => {
  it("creates the guide's LightBulb type and describes it (properties, metadata, ARN)", async () => {
    const created = await iot.send(
      new CreateThingTypeCommand({
        thingTypeName: 'LightBulb',
        thingTypeProperties: { thingTypeDescription: 'light bulb type', searchableAttributes: ['wattage', 'model'] },
        tags: [{ Key: 'k', Value: 'v' }],
      }),
    );
    expect(created.thingTypeArn).toMatch(/^arn:aws:iot:[^:]+:\d{12}:thingtype\/LightBulb$/);
    const described = await iot.send(new DescribeThingTypeCommand({ thingTypeName: 'LightBulb' }));
    expect(described).toMatchObject({
      thingTypeName: 'LightBulb',
      thingTypeId: created.thingTypeId,
      thingTypeArn: created.thingTypeArn,
      thingTypeProperties: { thingTypeDescription: 'light bulb type', searchableAttributes: ['wattage', 'model'] },
      thingTypeMetadata: { deprecated: false },
    });
    expect(described.thingTypeMetadata?.creationDate?.getTime()).toBe(clock);
    expect(described.thingTypeMetadata?.deprecationDate).toBeUndefined();
    // The same properties again: the same type. Different ones: 409.
    const again = await iot.send(
      new CreateThingTypeCommand({
        thingTypeName: 'LightBulb',
        thingTypeProperties: { thingTypeDescription: 'light bulb type', searchableAttributes: ['wattage', 'model'] },
      }),
    );
    expect(again.thingTypeId).toBe(created.thingTypeId);
    await rejection(
      iot.send(new CreateThingTypeCommand({ thingTypeName: 'LightBulb' })),
      ResourceAlreadyExistsException,
      409,
    );
  });

  it.each<[string, () => Promise<unknown>, ErrorClass, number]>([
    [
      'four searchable attributes',
      () =>
        iot.send(
          new CreateThingTypeCommand({
            thingTypeName: 'ConnectedBulbs',
            thingTypeProperties: {
              searchableAttributes: ['manufacturer', 'serial_number', 'production_date', 'color'],
            },
          }),
        ),
      InvalidRequestException,
      400,
    ],
    [
      'an invalid name',
      () => iot.send(new CreateThingTypeCommand({ thingTypeName: 'light bulb' })),
      InvalidRequestException,
      400,
    ],
    [
      'an unknown type',
      () => iot.send(new DescribeThingTypeCommand({ thingTypeName: 'Nope' })),
      ResourceNotFoundException,
      404,
    ],
    [
      'deprecating an unknown type',
      () => iot.send(new DeprecateThingTypeCommand({ thingTypeName: 'Nope' })),
      ResourceNotFoundException,
      404,
    ],
    [
      'deleting an unknown type',
      () => iot.send(new DeleteThingTypeCommand({ thingTypeName: 'Nope' })),
      ResourceNotFoundException,
      404,
    ],
    [
      'a thing of an unknown type',
      () => iot.send(new CreateThingCommand({ thingName: 't-x', thingTypeName: 'Nope' })),
      ResourceNotFoundException,
      404,
    ],
    [
      'four attributes on a thing without a type',
      () => iot.send(new CreateThingCommand({ thingName: 't-4', attributePayload: { attributes: attrs(4) } })),
      InvalidRequestException,
      400,
    ],
  ])('refuses %s', async (_label, send, type, status) => {
    await rejection(send(), type, status);
  });

  it('lists types with paging and by name', async () => {
    for (const name of ['Lamp', 'Meter', 'Pump']) await iot.send(new CreateThingTypeCommand({ thingTypeName: name }));
    const pages = [];
    for await (const page of paginateListThingTypes({ client: iot, pageSize: 2 }, {})) pages.push(page);
    const names = pages.flatMap((p) => p.thingTypes?.map((t) => t.thingTypeName));
    expect(names).toEqual(expect.arrayContaining(['Lamp', 'LightBulb', 'Meter', 'Pump']));
    expect([...names].sort()).toEqual(names);
    expect(pages[0]?.thingTypes).toHaveLength(2);
    const one = await iot.send(new ListThingTypesCommand({ thingTypeName: 'Meter' }));
    expect(one.thingTypes).toEqual([
      expect.objectContaining({
        thingTypeName: 'Meter',
        thingTypeProperties: { searchableAttributes: [] },
        thingTypeMetadata: expect.objectContaining({ deprecated: false }),
      }),
    ]);
  });

  it('gives things a type: 50 attributes, DescribeThing and ListThings show and filter it, UpdateThing changes or removes it', async () => {
    await iot.send(new CreateThingTypeCommand({ thingTypeName: 'Sensor' }));
    await iot.send(
      new CreateThingCommand({
        thingName: 'typed-1',
        thingTypeName: 'Sensor',
        attributePayload: { attributes: attrs(50) },
      }),
    );
    await iot.send(new CreateThingCommand({ thingName: 'untyped-1' }));
    const typed = await iot.send(new DescribeThingCommand({ thingName: 'typed-1' }));
    expect(typed.thingTypeName).toBe('Sensor');
    expect(Object.keys(typed.attributes ?? {})).toHaveLength(50);
    const list = await iot.send(new ListThingsCommand({ thingTypeName: 'Sensor' }));
    expect(list.things?.map((t) => [t.thingName, t.thingTypeName])).toEqual([['typed-1', 'Sensor']]);
    // ListThings has no ResourceNotFoundException: an unknown type lists nothing.
    expect((await iot.send(new ListThingsCommand({ thingTypeName: 'Nope' }))).things).toEqual([]);
    await rejection(iot.send(new ListThingsCommand({ thingTypeName: 'no pe' })), InvalidRequestException, 400);

    await iot.send(new UpdateThingCommand({ thingName: 'untyped-1', thingTypeName: 'Sensor' }));
    expect((await iot.send(new DescribeThingCommand({ thingName: 'untyped-1' }))).thingTypeName).toBe('Sensor');
    await iot.send(new UpdateThingCommand({ thingName: 'untyped-1', removeThingType: true }));
    expect((await iot.send(new DescribeThingCommand({ thingName: 'untyped-1' }))).thingTypeName).toBeUndefined();
    // Without its type typed-1 would have 50 attributes: refused, and the thing is unchanged.
    await rejection(
      iot.send(new UpdateThingCommand({ thingName: 'typed-1', removeThingType: true })),
      InvalidRequestException,
      400,
    );
    await rejection(
      iot.send(new UpdateThingCommand({ thingName: 'typed-1', thingTypeName: 'Sensor', removeThingType: true })),
      InvalidRequestException,
      400,
    );
    expect((await iot.send(new DescribeThingCommand({ thingName: 'typed-1' }))).version).toBe(1);
  });

  it('deprecates (reversibly): no new things of the type, delete only five minutes after and with no things', async () => {
    await iot.send(new CreateThingTypeCommand({ thingTypeName: 'Legacy' }));
    await iot.send(new CreateThingCommand({ thingName: 'legacy-1', thingTypeName: 'Legacy' }));
    await rejection(iot.send(new DeleteThingTypeCommand({ thingTypeName: 'Legacy' })), InvalidRequestException, 400);

    await iot.send(new DeprecateThingTypeCommand({ thingTypeName: 'Legacy' }));
    const deprecatedAt = clock;
    const described = await iot.send(new DescribeThingTypeCommand({ thingTypeName: 'Legacy' }));
    expect(described.thingTypeMetadata).toMatchObject({ deprecated: true });
    expect(described.thingTypeMetadata?.deprecationDate?.getTime()).toBe(deprecatedAt);
    await rejection(
      iot.send(new CreateThingCommand({ thingName: 'legacy-2', thingTypeName: 'Legacy' })),
      InvalidRequestException,
      400,
    );
    await iot.send(new CreateThingCommand({ thingName: 'legacy-3' }));
    await rejection(
      iot.send(new UpdateThingCommand({ thingName: 'legacy-3', thingTypeName: 'Legacy' })),
      InvalidRequestException,
      400,
    );

    clock += 5 * 60_000 - 1;
    const early = await rejection(
      iot.send(new DeleteThingTypeCommand({ thingTypeName: 'Legacy' })),
      InvalidRequestException,
      400,
    );
    expect(early.message).toMatch(/five minutes/);
    clock += 1;
    const inUse = await rejection(
      iot.send(new DeleteThingTypeCommand({ thingTypeName: 'Legacy' })),
      InvalidRequestException,
      400,
    );
    expect(inUse.message).toMatch(/legacy|thing/i);
    await iot.send(new UpdateThingCommand({ thingName: 'legacy-1', removeThingType: true }));
    await iot.send(new DeleteThingTypeCommand({ thingTypeName: 'Legacy' }));
    await rejection(
      iot.send(new DescribeThingTypeCommand({ thingTypeName: 'Legacy' })),
      ResourceNotFoundException,
      404,
    );

    await iot.send(new CreateThingTypeCommand({ thingTypeName: 'Revived' }));
    await iot.send(new DeprecateThingTypeCommand({ thingTypeName: 'Revived' }));
    await iot.send(new DeprecateThingTypeCommand({ thingTypeName: 'Revived', undoDeprecate: true }));
    const revived = await iot.send(new DescribeThingTypeCommand({ thingTypeName: 'Revived' }));
    expect(revived.thingTypeMetadata?.deprecated).toBe(false);
    await iot.send(new CreateThingCommand({ thingName: 'revived-1', thingTypeName: 'Revived' }));
  });
});
