import {
  CreatePolicyCommand,
  CreateThingCommand,
  CreateThingTypeCommand,
  DeprecateThingTypeCommand,
  DescribeThingCommand,
  type IoTClient,
  ListAttachedPoliciesCommand,
  ListThingGroupsForThingCommand,
  ListThingsInThingGroupCommand,
} from '@aws-sdk/client-iot';
import { EXIT } from '@pifleet/protocol';
import type { RunningCoreProcess } from '@pifleet/testkit';
import { describe, expect, it } from 'vitest';
import { cli, localCoreWithIotForFile } from '../helpers.js';

/** `--type`/`--group` on `things create` and `fleet create`, and the `groups` commands, against the real local core. */

let core: RunningCoreProcess;
let iot: IoTClient;
const { cwd } = localCoreWithIotForFile((started, client) => {
  core = started;
  iot = client;
});

const local = () => ['--local', core.dataDir];
const run = (...args: string[]) => cli([...local(), ...args], { cwd: cwd() });
const json = <T>(s: string) => JSON.parse(s) as T;
const groupsOf = async (thingName: string) =>
  ((await iot.send(new ListThingGroupsForThingCommand({ thingName }))).thingGroups ?? []).map((g) => g.groupName);
const groupArn = (name: string) => `arn:aws:iot:${core.info.region}:${core.info.accountId}:thinggroup/${name}`;

describe('things create --type --group', () => {
  it('creates the missing type and group, the thing of that type in that group; a re-run changes nothing', async () => {
    const dir = cwd();
    const args = [...local(), 'things', 'create', 'tg-1', '--type', 'Sensor', '--group', 'lab', '--json'];
    const first = await cli(args, { cwd: dir });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(EXIT.ok);
    const r = json<{ status: string; changes: string[] }>(first.stdout);
    expect(r.status).toBe('created');
    expect(r.changes.slice(0, 4)).toEqual([
      'created thing type Sensor',
      'created thing group lab',
      'created thing of type Sensor',
      'added to thing group lab',
    ]);
    expect((await iot.send(new DescribeThingCommand({ thingName: 'tg-1' }))).thingTypeName).toBe('Sensor');
    expect(await groupsOf('tg-1')).toEqual(['lab']);

    const again = await cli(args, { cwd: dir });
    expect(json<{ status: string; changes: string[] }>(again.stdout)).toMatchObject({
      status: 'unchanged',
      changes: [],
    });

    const described = await cli([...local(), 'things', 'describe', 'tg-1'], { cwd: dir });
    expect(described.stdout.split('\n')).toEqual(expect.arrayContaining(['type: Sensor', 'groups: lab']));
    const data = await cli([...local(), 'things', 'describe', 'tg-1', '--json'], { cwd: dir });
    expect(json<Record<string, unknown>>(data.stdout)).toMatchObject({ thingTypeName: 'Sensor', thingGroups: ['lab'] });
  });

  it('gives an existing thing the type and the group it lacks', async () => {
    await iot.send(new CreateThingCommand({ thingName: 'tg-old' }));
    const r = await run('things', 'create', 'tg-old', '--type', 'Sensor', '--group', 'lab', '--json');
    expect(r.code).toBe(EXIT.ok);
    expect(json<{ changes: string[] }>(r.stdout).changes).toEqual(
      expect.arrayContaining(['set thing type Sensor', 'added to thing group lab']),
    );
    expect((await iot.send(new DescribeThingCommand({ thingName: 'tg-old' }))).thingTypeName).toBe('Sensor');
  });

  it.each<[string, string[], RegExp]>([
    ['a deprecated type', ['things', 'create', 'tg-dep', '--type', 'Retired'], /thing type Retired is deprecated/],
    ['an invalid type name', ['things', 'create', 'tg-x', '--type', 'bad type'], /invalid thing type name/],
    ['an invalid group name', ['things', 'create', 'tg-x', '--group', 'bad/group'], /invalid thing group name/],
  ])('refuses %s with exit 65 and one line, creating nothing', async (_label, args, message) => {
    await iot.send(new CreateThingTypeCommand({ thingTypeName: 'Retired' })).catch(() => undefined);
    await iot.send(new DeprecateThingTypeCommand({ thingTypeName: 'Retired' }));
    const r = await run(...args);
    expect(r.code).toBe(EXIT.dataError);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    const thingName = args[2] as string;
    await expect(iot.send(new DescribeThingCommand({ thingName }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
  });
});

describe('fleet create --type --group', () => {
  it('puts every thing of the fleet in the group with the type', async () => {
    const r = await run(
      'fleet',
      'create',
      '--count',
      '3',
      '--prefix',
      'gf',
      '--type',
      'FleetNode',
      '--group',
      'fleet-gf',
      '--json',
    );
    expect(r.code).toBe(EXIT.ok);
    const things = (await iot.send(new ListThingsInThingGroupCommand({ thingGroupName: 'fleet-gf' }))).things;
    expect(things).toEqual(['gf-0001', 'gf-0002', 'gf-0003']);
    for (const thingName of things ?? []) {
      expect((await iot.send(new DescribeThingCommand({ thingName }))).thingTypeName).toBe('FleetNode');
    }
  });
});

describe('groups', () => {
  it('creates a hierarchy, lists it, describes a group with its things and policies, and deletes leaf first', async () => {
    expect((await run('groups', 'create', 'site')).stdout).toContain('created thing group site');
    const child = await run('groups', 'create', 'room', '--parent', 'site', '--description', 'the lab room');
    expect(child.code).toBe(EXIT.ok);
    expect(child.stdout).toContain('created thing group site / room');
    expect((await run('groups', 'create', 'room', '--parent', 'site')).stdout).toContain('already exists');

    expect(json<{ groups: string[] }>((await run('groups', 'list', '--parent', 'site', '--json')).stdout)).toEqual({
      groups: ['room'],
    });
    expect((await run('groups', 'list')).stdout.split('\n')).toEqual(expect.arrayContaining(['site', 'room']));

    await iot.send(new CreateThingCommand({ thingName: 'g-dev' }));
    expect((await run('groups', 'add-thing', 'room', 'g-dev')).stdout).toContain('added g-dev to room');
    expect((await run('groups', 'add-thing', 'room', 'g-dev')).stdout).toContain('already in thing group room');
    await iot.send(
      new CreatePolicyCommand({
        policyName: 'room-policy',
        policyDocument: JSON.stringify({
          Version: '2012-10-17',
          Statement: [{ Effect: 'Allow', Action: 'iot:Connect', Resource: '*' }],
        }),
      }),
    );
    expect((await run('groups', 'attach-policy', 'room', 'room-policy')).stdout).toContain(
      'attached policy room-policy to room',
    );
    const attached = await iot.send(new ListAttachedPoliciesCommand({ target: groupArn('room') }));
    expect(attached.policies?.map((p) => p.policyName)).toEqual(['room-policy']);

    const described = await run('groups', 'describe', 'site', '--recursive', '--json');
    expect(json<{ things: string[]; policies: string[] }>(described.stdout)).toMatchObject({
      things: ['g-dev'],
      policies: [],
    });
    const text = (await run('groups', 'describe', 'room')).stdout;
    expect(text).toContain('thing group site / room');
    expect(text).toContain('description the lab room');
    expect(text).toContain('things (1): g-dev');
    expect(text).toContain('policies: room-policy');

    const refused = await run('groups', 'delete', 'site');
    expect(refused.code).toBe(EXIT.dataError);
    expect(refused.stderr).toMatch(/has child groups: room.*hint: delete its child groups first/);

    expect((await run('groups', 'detach-policy', 'room', 'room-policy')).stdout).toContain('detached policy');
    expect((await run('groups', 'remove-thing', 'room', 'g-dev')).stdout).toContain('removed g-dev from room');
    expect(await groupsOf('g-dev')).toEqual([]);
    expect((await run('groups', 'delete', 'room')).code).toBe(EXIT.ok);
    expect((await run('groups', 'delete', 'site')).code).toBe(EXIT.ok);
    expect((await run('groups', 'list', '--json')).stdout).not.toContain('"site"');
  });

  it.each<[string, string[], number, RegExp]>([
    [
      'describing a missing group',
      ['groups', 'describe', 'nope'],
      EXIT.dataError,
      /thing group nope not found.*groups list/,
    ],
    ['deleting a missing group', ['groups', 'delete', 'nope'], EXIT.dataError, /thing group nope not found/],
    [
      'a parent that is not there',
      ['groups', 'create', 'kid', '--parent', 'nope'],
      EXIT.dataError,
      /thing group nope not found/,
    ],
    [
      'adding a missing thing',
      ['groups', 'add-thing', 'lab', 'no-such-thing'],
      EXIT.dataError,
      /thing no-such-thing not found/,
    ],
    [
      'a missing policy',
      ['groups', 'attach-policy', 'lab', 'no-such-policy'],
      EXIT.dataError,
      /policy no-such-policy not found/,
    ],
    ['an invalid group name', ['groups', 'create', 'bad name'], EXIT.dataError, /invalid thing group name/],
    ['a missing argument', ['groups', 'add-thing', 'lab'], EXIT.usage, /missing required argument/],
  ])('refuses %s (exit %i, one line)', async (_label, args, exit, message) => {
    await run('groups', 'create', 'lab');
    const r = await run(...args);
    expect(r.code).toBe(exit);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('refuses to re-create a group under another parent, and a second group of the same hierarchy for a thing', async () => {
    await run('groups', 'create', 'h-top');
    await run('groups', 'create', 'h-a', '--parent', 'h-top');
    const moved = await run('groups', 'create', 'h-a');
    expect(moved.code).toBe(EXIT.dataError);
    expect(moved.stderr).toMatch(/exists under h-top/);
    await iot.send(new CreateThingCommand({ thingName: 'h-dev' }));
    expect((await run('groups', 'add-thing', 'h-a', 'h-dev')).code).toBe(EXIT.ok);
    const second = await run('groups', 'add-thing', 'h-top', 'h-dev');
    expect(second.code).toBe(EXIT.dataError);
    expect(second.stderr).toMatch(/InvalidRequestException.*same hierarchy/);
  });
});
