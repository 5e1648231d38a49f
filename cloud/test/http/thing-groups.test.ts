import {
  AddThingToThingGroupCommand,
  AttachPolicyCommand,
  AttachThingPrincipalCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  CreateThingTypeCommand,
  DeleteConflictException,
  DeletePolicyCommand,
  DeleteThingCommand,
  DeleteThingGroupCommand,
  DeprecateThingTypeCommand,
  DescribeThingGroupCommand,
  DetachPolicyCommand,
  InvalidRequestException,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListThingGroupsCommand,
  type ListThingGroupsCommandInput,
  ListThingGroupsForThingCommand,
  ListThingsInThingGroupCommand,
  paginateListTargetsForPolicy,
  paginateListThingGroups,
  paginateListThingsInThingGroup,
  RemoveThingFromThingGroupCommand,
  ResourceAlreadyExistsException,
  ResourceNotFoundException,
  UpdateThingGroupCommand,
  VersionConflictException,
} from '@aws-sdk/client-iot';
import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { thingMqttOptions } from '../../src/testing/thing-mqtt.js';
import { coreForFile, type ErrorClass, iotClient, type RunningCore, rejection } from './harness.js';

/**
 * Static thing groups through the real @aws-sdk/client-iot, and a thing-group policy applied by the
 * broker to an mqtt.js device (AWS IoT Developer Guide, "Static thing groups").
 */

let run: RunningCore;
let iot: IoTClient;
coreForFile('thing-groups', (started) => {
  run = started;
  iot = run.iot;
});

const arn = (kind: string, name: string) => `arn:aws:iot:${run.info.region}:${run.info.accountId}:${kind}/${name}`;

async function all<T>(pages: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const page of pages) out.push(page);
  return out;
}

describe('thing group operations', () => {
  it('creates a hierarchy and describes a child as AWS does (parent, root-to-parent, version, status)', async () => {
    const root = await iot.send(
      new CreateThingGroupCommand({
        thingGroupName: 'hq',
        thingGroupProperties: {
          thingGroupDescription: 'headquarters',
          attributePayload: { attributes: { city: 'x' } },
        },
        tags: [{ Key: 'team', Value: 'ops' }],
      }),
    );
    expect(root).toMatchObject({ thingGroupName: 'hq', thingGroupArn: arn('thinggroup', 'hq') });
    expect(root.thingGroupId).toMatch(/./);
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'floor-1', parentGroupName: 'hq' }));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'lab', parentGroupName: 'floor-1' }));

    const lab = await iot.send(new DescribeThingGroupCommand({ thingGroupName: 'lab' }));
    expect(lab).toMatchObject({
      thingGroupName: 'lab',
      thingGroupArn: arn('thinggroup', 'lab'),
      version: 1,
      status: 'ACTIVE',
      thingGroupProperties: { attributePayload: { attributes: {} } },
      thingGroupMetadata: {
        parentGroupName: 'floor-1',
        rootToParentThingGroups: [
          { groupName: 'hq', groupArn: arn('thinggroup', 'hq') },
          { groupName: 'floor-1', groupArn: arn('thinggroup', 'floor-1') },
        ],
      },
    });
    expect(lab.thingGroupMetadata?.creationDate).toBeInstanceOf(Date);
    const hq = await iot.send(new DescribeThingGroupCommand({ thingGroupName: 'hq' }));
    expect(hq.thingGroupProperties).toEqual({
      thingGroupDescription: 'headquarters',
      attributePayload: { attributes: { city: 'x' } },
    });
    expect(hq.thingGroupMetadata?.parentGroupName).toBeUndefined();
    expect(hq.thingGroupMetadata?.rootToParentThingGroups).toEqual([]);
  });

  it('answers a second CreateThingGroup with the same properties with the same group, and a different one with 409', async () => {
    const input = { thingGroupName: 'same', thingGroupProperties: { thingGroupDescription: 'd' } };
    const first = await iot.send(new CreateThingGroupCommand(input));
    const again = await iot.send(new CreateThingGroupCommand(input));
    expect(again.thingGroupId).toBe(first.thingGroupId);
    await rejection(
      iot.send(
        new CreateThingGroupCommand({ thingGroupName: 'same', thingGroupProperties: { thingGroupDescription: 'e' } }),
      ),
      ResourceAlreadyExistsException,
      409,
    );
  });

  it.each<[string, () => Promise<unknown>, ErrorClass, number]>([
    [
      'an unknown parent',
      () => iot.send(new CreateThingGroupCommand({ thingGroupName: 'orphan', parentGroupName: 'no-such-group' })),
      ResourceNotFoundException,
      404,
    ],
    [
      'an invalid group name',
      () => iot.send(new CreateThingGroupCommand({ thingGroupName: 'bad name' })),
      InvalidRequestException,
      400,
    ],
    [
      'an unknown group',
      () => iot.send(new DescribeThingGroupCommand({ thingGroupName: 'no-such-group' })),
      ResourceNotFoundException,
      404,
    ],
    [
      'an update without properties',
      () => iot.send(new UpdateThingGroupCommand({ thingGroupName: 'hq' } as never)),
      InvalidRequestException,
      400,
    ],
    [
      'an update of an unknown group',
      () => iot.send(new UpdateThingGroupCommand({ thingGroupName: 'no-such-group', thingGroupProperties: {} })),
      ResourceNotFoundException,
      404,
    ],
    [
      'adding an unknown thing',
      () => iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'hq', thingName: 'no-such-thing' })),
      ResourceNotFoundException,
      404,
    ],
    [
      'adding a thing to an unknown group',
      () => iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'no-such-group', thingName: 'x' })),
      ResourceNotFoundException,
      404,
    ],
    [
      'adding with no thing named',
      () => iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'hq' })),
      InvalidRequestException,
      400,
    ],
    [
      'a group ARN of another account',
      () =>
        iot.send(
          new AddThingToThingGroupCommand({
            thingGroupArn: 'arn:aws:iot:us-east-1:999999999999:thinggroup/hq',
            thingName: 'x',
          }),
        ),
      InvalidRequestException,
      400,
    ],
    [
      'the groups of an unknown thing',
      () => iot.send(new ListThingGroupsForThingCommand({ thingName: 'no-such-thing' })),
      ResourceNotFoundException,
      404,
    ],
  ])('refuses %s', async (_label, send, type, status) => {
    await rejection(send(), type, status);
  });

  it('updates with expectedVersion and returns the new version; a stale version is a VersionConflict', async () => {
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'upd' }));
    const updated = await iot.send(
      new UpdateThingGroupCommand({
        thingGroupName: 'upd',
        expectedVersion: 1,
        thingGroupProperties: { thingGroupDescription: 'new', attributePayload: { attributes: { a: '1' } } },
      }),
    );
    expect(updated.version).toBe(2);
    await iot.send(
      new UpdateThingGroupCommand({
        thingGroupName: 'upd',
        thingGroupProperties: { attributePayload: { attributes: { b: '2' }, merge: true } },
      }),
    );
    expect((await iot.send(new DescribeThingGroupCommand({ thingGroupName: 'upd' }))).thingGroupProperties).toEqual({
      thingGroupDescription: 'new',
      attributePayload: { attributes: { a: '1', b: '2' } },
    });
    await rejection(
      iot.send(new UpdateThingGroupCommand({ thingGroupName: 'upd', expectedVersion: 1, thingGroupProperties: {} })),
      VersionConflictException,
      409,
    );
  });

  it('lists groups with paging, by parent (recursive or not) and by name prefix', async () => {
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'zone' }));
    for (const n of ['zone-a', 'zone-b', 'zone-c']) {
      await iot.send(new CreateThingGroupCommand({ thingGroupName: n, parentGroupName: 'zone' }));
    }
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'zone-a-1', parentGroupName: 'zone-a' }));
    const names = async (input: ListThingGroupsCommandInput) =>
      (await iot.send(new ListThingGroupsCommand(input))).thingGroups?.map((g) => g.groupName);
    expect(await names({ parentGroup: 'zone' })).toEqual(['zone-a', 'zone-b', 'zone-c']);
    expect(await names({ parentGroup: 'zone', recursive: true })).toEqual(['zone-a', 'zone-a-1', 'zone-b', 'zone-c']);
    expect(await names({ namePrefixFilter: 'zone-a' })).toEqual(['zone-a', 'zone-a-1']);
    const pages = await all(paginateListThingGroups({ client: iot, pageSize: 2 }, { namePrefixFilter: 'zone' }));
    expect(pages.map((p) => p.thingGroups?.length)).toEqual([2, 2, 1]);
    expect(pages.flatMap((p) => p.thingGroups?.map((g) => g.groupName))).toEqual([
      'zone',
      'zone-a',
      'zone-a-1',
      'zone-b',
      'zone-c',
    ]);
  });

  it('adds things by name and by ARN, lists them recursively with paging, and removes them', async () => {
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'plant' }));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'line-1', parentGroupName: 'plant' }));
    for (const t of ['m-1', 'm-2', 'm-3']) await iot.send(new CreateThingCommand({ thingName: t }));
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'plant', thingName: 'm-1' }));
    await iot.send(
      new AddThingToThingGroupCommand({ thingGroupArn: arn('thinggroup', 'line-1'), thingArn: arn('thing', 'm-2') }),
    );
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'line-1', thingName: 'm-3' }));
    const direct = await iot.send(new ListThingsInThingGroupCommand({ thingGroupName: 'plant' }));
    expect(direct.things).toEqual(['m-1']);
    const pages = await all(
      paginateListThingsInThingGroup({ client: iot, pageSize: 2 }, { thingGroupName: 'plant', recursive: true }),
    );
    expect(pages.flatMap((p) => p.things)).toEqual(['m-1', 'm-2', 'm-3']);
    expect(pages).toHaveLength(2);
    expect((await iot.send(new ListThingGroupsForThingCommand({ thingName: 'm-2' }))).thingGroups).toEqual([
      { groupName: 'line-1', groupArn: arn('thinggroup', 'line-1') },
    ]);
    // A thing is in one group of a hierarchy at most.
    await rejection(
      iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'plant', thingName: 'm-2' })),
      InvalidRequestException,
      400,
    );
    await iot.send(new RemoveThingFromThingGroupCommand({ thingGroupName: 'line-1', thingArn: arn('thing', 'm-2') }));
    expect((await iot.send(new ListThingGroupsForThingCommand({ thingName: 'm-2' }))).thingGroups).toEqual([]);
    await iot.send(new DeleteThingCommand({ thingName: 'm-3' }));
    expect(
      (await iot.send(new ListThingsInThingGroupCommand({ thingGroupName: 'plant', recursive: true }))).things,
    ).toEqual(['m-1']);
  });

  it('refuses to delete a group with child groups; deletes a leaf, and deleting it again succeeds', async () => {
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'del-top' }));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'del-leaf', parentGroupName: 'del-top' }));
    const err = await rejection(
      iot.send(new DeleteThingGroupCommand({ thingGroupName: 'del-top' })),
      InvalidRequestException,
      400,
    );
    expect(err.message).toMatch(/child groups/);
    await rejection(
      iot.send(new DeleteThingGroupCommand({ thingGroupName: 'del-leaf', expectedVersion: 7 })),
      VersionConflictException,
      409,
    );
    await iot.send(new DeleteThingGroupCommand({ thingGroupName: 'del-leaf' }));
    await iot.send(new DeleteThingGroupCommand({ thingGroupName: 'del-leaf' }));
    await iot.send(new DeleteThingGroupCommand({ thingGroupName: 'del-top' }));
    await rejection(
      iot.send(new DescribeThingGroupCommand({ thingGroupName: 'del-top' })),
      ResourceNotFoundException,
      404,
    );
  });
});

/** The SDK's serialized body replaced by `body` before signing (what a hostile or broken client sends). */
function rewriteBody(body: string): never {
  type Args = { request: { body?: unknown; headers: Record<string, string> } };
  const middleware = (next: (args: Args) => Promise<unknown>) => async (args: Args) => {
    args.request.body = body;
    args.request.headers['content-length'] = String(Buffer.byteLength(body));
    return next(args);
  };
  return middleware as never;
}

describe('malformed bodies: a 400 that names the field, and nothing created', () => {
  const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;

  it.each<[string, () => unknown, string, RegExp]>([
    [
      'properties that are not an object',
      () => new CreateThingGroupCommand({ thingGroupName: 'bad-1' }),
      '{"thingGroupProperties":5}',
      /'thingGroupProperties' must be an object/,
    ],
    [
      'a parent that is not a string',
      () => new CreateThingGroupCommand({ thingGroupName: 'bad-2' }),
      '{"parentGroupName":["hq"]}',
      /'parentGroupName' must be a string/,
    ],
    [
      'attributes nested past the depth limit',
      () => new CreateThingGroupCommand({ thingGroupName: 'bad-3' }),
      `{"thingGroupProperties":{"attributePayload":{"attributes":{"a":${deep}}}}}`,
      /./,
    ],
    [
      'searchable attributes that are not strings',
      () => new CreateThingTypeCommand({ thingTypeName: 'Bad4' }),
      '{"thingTypeProperties":{"searchableAttributes":[1]}}',
      /searchableAttributes' must be a list of strings/,
    ],
    [
      'undoDeprecate that is not a boolean',
      () => new DeprecateThingTypeCommand({ thingTypeName: 'Bad5' }),
      '{"undoDeprecate":"yes"}',
      /'undoDeprecate' must be a boolean/,
    ],
    [
      'a thing name that is not a string',
      () => new AddThingToThingGroupCommand({ thingGroupName: 'hq' }),
      '{"thingGroupName":"hq","thingName":{"__proto__":"x"}}',
      /'thingName' must be a string/,
    ],
    ['a body that is not JSON', () => new CreateThingGroupCommand({ thingGroupName: 'bad-7' }), '{"thingGroup', /./],
  ])('refuses %s', async (_label, command, body, message) => {
    const client = iotClient(run.info);
    client.middlewareStack.add(rewriteBody(body), { step: 'build', priority: 'low', name: 'replaceBody' });
    try {
      const err = await rejection(client.send(command() as never), InvalidRequestException, 400);
      expect(err.message).toMatch(message);
    } finally {
      client.destroy();
    }
    for (const name of ['bad-1', 'bad-2', 'bad-3', 'bad-7']) {
      await rejection(
        iot.send(new DescribeThingGroupCommand({ thingGroupName: name })),
        ResourceNotFoundException,
        404,
      );
    }
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  it("keeps an attribute named __proto__ as the group's own attribute", async () => {
    const client = iotClient(run.info);
    client.middlewareStack.add(
      rewriteBody('{"thingGroupProperties":{"attributePayload":{"attributes":{"__proto__":"p","constructor":"c"}}}}'),
      { step: 'build', priority: 'low', name: 'replaceBody' },
    );
    try {
      await client.send(new CreateThingGroupCommand({ thingGroupName: 'odd-attrs' }));
    } finally {
      client.destroy();
    }
    const g = await iot.send(new DescribeThingGroupCommand({ thingGroupName: 'odd-attrs' }));
    expect(Object.entries(g.thingGroupProperties?.attributePayload?.attributes ?? {})).toEqual([
      ['__proto__', 'p'],
      ['constructor', 'c'],
    ]);
  });
});

const connectOnly = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
});

describe('policies attached to thing groups', () => {
  it('attaches to a group ARN: ListAttachedPolicies (recursive adds ancestors), ListTargetsForPolicy, DeletePolicy conflict', async () => {
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'pol-top' }));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'pol-sub', parentGroupName: 'pol-top' }));
    await iot.send(new CreatePolicyCommand({ policyName: 'pol-a', policyDocument: connectOnly }));
    await iot.send(new CreatePolicyCommand({ policyName: 'pol-b', policyDocument: connectOnly }));
    await iot.send(new AttachPolicyCommand({ policyName: 'pol-a', target: arn('thinggroup', 'pol-top') }));
    await iot.send(new AttachPolicyCommand({ policyName: 'pol-b', target: arn('thinggroup', 'pol-sub') }));
    const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: false }));
    await iot.send(new AttachPolicyCommand({ policyName: 'pol-a', target: cert.certificateArn }));

    const attached = async (recursive: boolean) =>
      (
        await iot.send(new ListAttachedPoliciesCommand({ target: arn('thinggroup', 'pol-sub'), recursive }))
      ).policies?.map((p) => p.policyName);
    expect(await attached(false)).toEqual(['pol-b']);
    expect(await attached(true)).toEqual(['pol-b', 'pol-a']);
    const pages = await all(paginateListTargetsForPolicy({ client: iot, pageSize: 1 }, { policyName: 'pol-a' }));
    expect(pages.flatMap((p) => p.targets)).toEqual([cert.certificateArn, arn('thinggroup', 'pol-top')]);

    await rejection(iot.send(new DeletePolicyCommand({ policyName: 'pol-b' })), DeleteConflictException, 409);
    await rejection(
      iot.send(new AttachPolicyCommand({ policyName: 'pol-b', target: arn('thinggroup', 'no-such-group') })),
      ResourceNotFoundException,
      404,
    );
    await iot.send(new DetachPolicyCommand({ policyName: 'pol-b', target: arn('thinggroup', 'pol-sub') }));
    await iot.send(new DeletePolicyCommand({ policyName: 'pol-b' }));
  });

  it('lets a device publish with its parent group policy, takes it away on RemoveThingFromThingGroup without a reconnect, and never to another client id', async () => {
    const region = run.info.region;
    const account = run.info.accountId;
    await iot.send(new CreatePolicyCommand({ policyName: 'connect-only', policyDocument: connectOnly }));
    await iot.send(
      new CreatePolicyCommand({
        policyName: 'fleet-publish',
        policyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: 'iot:Publish', Resource: `arn:aws:iot:${region}:${account}:topic/fleet/*` },
          ],
        }),
      }),
    );
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'fleet' }));
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'fleet-east', parentGroupName: 'fleet' }));
    await iot.send(new AttachPolicyCommand({ policyName: 'fleet-publish', target: arn('thinggroup', 'fleet') }));
    await iot.send(new CreateThingCommand({ thingName: 'grp-dev' }));
    const cert = await iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
    await iot.send(new AttachPolicyCommand({ policyName: 'connect-only', target: cert.certificateArn }));
    await iot.send(new AttachThingPrincipalCommand({ thingName: 'grp-dev', principal: cert.certificateArn }));
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'fleet-east', thingName: 'grp-dev' }));
    const thing = {
      thingName: 'grp-dev',
      certPem: cert.certificatePem as string,
      keyPem: cert.keyPair?.PrivateKey as string,
    };

    const open = async (clientId: string) => {
      const client = mqtt.connect({ ...thingMqttOptions(run.info, thing), clientId, protocolVersion: 5 });
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
        client.once('close', () => reject(new Error('closed before CONNACK')));
      });
      return client;
    };
    /** The PUBACK reason code of a QoS 1 publish (0 = success, 0x87 = not authorized). */
    const puback = (client: mqtt.MqttClient, topic: string) =>
      client.publishAsync(topic, 'x', { qos: 1 }).then(
        () => 0,
        (err: { code?: number }) => err.code,
      );

    const device = await open('grp-dev');
    const stranger = await open('not-the-thing');
    try {
      expect(await puback(device, 'fleet/grp-dev/data')).toBe(0);
      expect(await puback(device, 'elsewhere/grp-dev')).toBe(0x87);
      // Same certificate, client id that is not the thing name: no thing-group policies.
      expect(await puback(stranger, 'fleet/grp-dev/data')).toBe(0x87);

      await iot.send(new RemoveThingFromThingGroupCommand({ thingGroupName: 'fleet-east', thingName: 'grp-dev' }));
      expect(await puback(device, 'fleet/grp-dev/data')).toBe(0x87);
      expect(device.connected).toBe(true);

      await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'fleet-east', thingName: 'grp-dev' }));
      expect(await puback(device, 'fleet/grp-dev/data')).toBe(0);
      await iot.send(new DetachPolicyCommand({ policyName: 'fleet-publish', target: arn('thinggroup', 'fleet') }));
      expect(await puback(device, 'fleet/grp-dev/data')).toBe(0x87);
    } finally {
      await device.endAsync();
      await stranger.endAsync();
    }
  });
});
