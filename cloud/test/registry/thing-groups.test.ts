import { join } from 'node:path';
import { recommendedDevicePolicy } from '@pifleet/protocol';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import type { LocalCa } from '../../src/ca/local-ca.js';
import type { Registry } from '../../src/registry/sqlite-registry.js';
import { THING_GROUP_LIMITS } from '../../src/registry/thing-groups.js';
import { registryForFile } from './bed.js';

/** Thing types and thing groups in the registry: AWS's rules, the identity facts they feed the broker, migration. */

const account = { region: 'us-east-1', accountId: '123456789012' };
const arn = (kind: string, name: string) => `arn:aws:iot:us-east-1:123456789012:${kind}/${name}`;
const policy = JSON.stringify(recommendedDevicePolicy(account.region, account.accountId));
let dir: string;
let ca: LocalCa;
let clock = Date.UTC(2026, 0, 1);
const now = () => clock;

const open = registryForFile('registry-groups', account, now, (bed) => {
  ({ dir, ca } = bed);
});

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return (err as { code?: string }).code;
  }
};

async function certOf(registry: Registry, thingName: string) {
  const { certificatePem } = await ca.createKeysAndCertificate();
  const cert = registry.registerCertificate({ certificatePem, status: 'ACTIVE' });
  registry.attachThingPrincipal(thingName, cert.certificateArn);
  return cert;
}

describe('thing types', () => {
  it('creates (idempotent with the same properties), describes and lists by name, with paging', () => {
    const r = open();
    clock = Date.UTC(2026, 0, 1);
    const t = r.createThingType({
      thingTypeName: 'LightBulb',
      description: 'light bulb type',
      searchableAttributes: ['wattage', 'model'],
    });
    expect(t).toMatchObject({
      thingTypeName: 'LightBulb',
      thingTypeArn: arn('thingtype', 'LightBulb'),
      description: 'light bulb type',
      searchableAttributes: ['wattage', 'model'],
      deprecated: false,
      creationDate: new Date(clock),
    });
    expect(
      r.createThingType({
        thingTypeName: 'LightBulb',
        description: 'light bulb type',
        searchableAttributes: ['wattage', 'model'],
      }).thingTypeId,
    ).toBe(t.thingTypeId);
    expect(code(() => r.createThingType({ thingTypeName: 'LightBulb', description: 'other' }))).toBe(
      'ResourceAlreadyExistsException',
    );
    r.createThingType({ thingTypeName: 'StopLight' });
    r.createThingType({ thingTypeName: 'Thermostat' });
    const first = r.listThingTypes({ pageSize: 2 });
    expect(first.items.map((x) => x.thingTypeName)).toEqual(['LightBulb', 'StopLight']);
    const second = r.listThingTypes({ pageSize: 2, token: first.next });
    expect(second.items.map((x) => x.thingTypeName)).toEqual(['Thermostat']);
    expect(second.next).toBeUndefined();
    expect(r.listThingTypes({ thingTypeName: 'StopLight' }).items.map((x) => x.thingTypeName)).toEqual(['StopLight']);
    expect(r.listThingTypes({ thingTypeName: 'Nope' }).items).toEqual([]);
    r.close();
  });

  it.each<[string, (r: Registry) => unknown, string]>([
    [
      'four searchable attributes',
      (r) => r.createThingType({ thingTypeName: 'T', searchableAttributes: ['a', 'b', 'c', 'd'] }),
      'InvalidRequestException',
    ],
    ['a name with a space', (r) => r.createThingType({ thingTypeName: 'bad name' }), 'InvalidRequestException'],
    ['an unknown type', (r) => r.describeThingType('Unknown'), 'ResourceNotFoundException'],
    ['deprecating an unknown type', (r) => r.deprecateThingType('Unknown', false), 'ResourceNotFoundException'],
    [
      'a thing of an unknown type',
      (r) => r.createThing({ thingName: 't', thingTypeName: 'Unknown' }),
      'ResourceNotFoundException',
    ],
  ])('refuses %s', (_label, act, expected) => {
    const r = open();
    expect(code(() => act(r))).toBe(expected);
    r.close();
  });

  it('allows 3 attributes without a type and 50 with one; removing the type of a thing with more is refused', () => {
    const r = open();
    r.createThingType({ thingTypeName: 'Sensor' });
    const attrs = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, `${i}`]));
    r.createThing({ thingName: 'three', attributes: attrs(3) });
    expect(code(() => r.createThing({ thingName: 'four', attributes: attrs(4) }))).toBe('InvalidRequestException');
    expect(code(() => r.describeThing('four'))).toBe('ResourceNotFoundException');
    r.createThing({ thingName: 'typed', thingTypeName: 'Sensor', attributes: attrs(50) });
    expect(code(() => r.createThing({ thingName: 'typed51', thingTypeName: 'Sensor', attributes: attrs(51) }))).toBe(
      'InvalidRequestException',
    );
    expect(code(() => r.updateThing({ thingName: 'typed', removeThingType: true }))).toBe('InvalidRequestException');
    expect(r.describeThing('typed').thingTypeName).toBe('Sensor');
    // Giving `three` a type lifts its limit.
    r.updateThing({ thingName: 'three', thingTypeName: 'Sensor', attributes: attrs(10), merge: true });
    expect(r.describeThing('three')).toMatchObject({ thingTypeName: 'Sensor', version: 2 });
    expect(code(() => r.updateThing({ thingName: 'three', thingTypeName: 'Sensor', removeThingType: true }))).toBe(
      'InvalidRequestException',
    );
    r.close();
  });

  it('a deprecated type takes no new things; delete waits five minutes after deprecation and for no things', () => {
    const r = open();
    clock = Date.UTC(2026, 0, 1);
    r.createThingType({ thingTypeName: 'Old' });
    r.createThing({ thingName: 'kept', thingTypeName: 'Old' });
    expect(code(() => r.deleteThingType('Old'))).toBe('InvalidRequestException'); // not deprecated
    r.deprecateThingType('Old', false);
    expect(r.describeThingType('Old')).toMatchObject({ deprecated: true, deprecationDate: new Date(clock) });
    expect(code(() => r.createThing({ thingName: 'new', thingTypeName: 'Old' }))).toBe('InvalidRequestException');
    r.createThing({ thingName: 'plain' });
    expect(code(() => r.updateThing({ thingName: 'plain', thingTypeName: 'Old' }))).toBe('InvalidRequestException');
    // A thing that has the type keeps it, and may be updated.
    r.updateThing({ thingName: 'kept', attributes: { a: '1' } });
    expect(r.describeThing('kept').thingTypeName).toBe('Old');
    expect(r.listThings({ thingTypeName: 'Old' }).items.map((t) => t.thingName)).toEqual(['kept']);

    clock += THING_GROUP_LIMITS.deprecationWaitMs - 1;
    r.deprecateThingType('Old', false); // again: the wait still runs from the first deprecation
    expect(code(() => r.deleteThingType('Old'))).toBe('InvalidRequestException');
    clock += 1;
    expect(code(() => r.deleteThingType('Old'))).toBe('InvalidRequestException'); // `kept` uses it
    r.updateThing({ thingName: 'kept', removeThingType: true });
    r.deleteThingType('Old');
    expect(code(() => r.describeThingType('Old'))).toBe('ResourceNotFoundException');

    r.createThingType({ thingTypeName: 'Back' });
    r.deprecateThingType('Back', false);
    r.deprecateThingType('Back', true);
    expect(r.describeThingType('Back')).toMatchObject({ deprecated: false });
    expect(r.describeThingType('Back').deprecationDate).toBeUndefined();
    r.createThing({ thingName: 'again', thingTypeName: 'Back' });
    r.close();
  });
});

describe('thing groups', () => {
  it('builds a hierarchy with root-to-parent metadata, at most 7 deep', () => {
    const r = open();
    const names = ['L1', 'L2', 'L3', 'L4', 'L5', 'L6', 'L7'];
    names.forEach((name, i) => {
      r.createThingGroup({ thingGroupName: name, ...(i > 0 ? { parentGroupName: names[i - 1] } : {}) });
    });
    expect(r.describeThingGroup('L3')).toMatchObject({
      parentGroupName: 'L2',
      rootToParentThingGroups: [
        { groupName: 'L1', groupArn: arn('thinggroup', 'L1') },
        { groupName: 'L2', groupArn: arn('thinggroup', 'L2') },
      ],
      version: 1,
    });
    expect(code(() => r.createThingGroup({ thingGroupName: 'L8', parentGroupName: 'L7' }))).toBe(
      'InvalidRequestException',
    );
    expect(code(() => r.createThingGroup({ thingGroupName: 'orphan', parentGroupName: 'none' }))).toBe(
      'ResourceNotFoundException',
    );
    r.close();
  });

  it('is idempotent for the same parent and properties, and refuses a different parent', () => {
    const r = open();
    r.createThingGroup({ thingGroupName: 'a' });
    r.createThingGroup({ thingGroupName: 'b' });
    const g = r.createThingGroup({
      thingGroupName: 'c',
      parentGroupName: 'a',
      description: 'd',
      attributes: { k: 'v' },
    });
    expect(
      r.createThingGroup({ thingGroupName: 'c', parentGroupName: 'a', description: 'd', attributes: { k: 'v' } })
        .thingGroupId,
    ).toBe(g.thingGroupId);
    expect(
      code(() =>
        r.createThingGroup({ thingGroupName: 'c', parentGroupName: 'b', description: 'd', attributes: { k: 'v' } }),
      ),
    ).toBe('ResourceAlreadyExistsException');
    r.close();
  });

  it('allows 100 direct children and refuses the 101st', () => {
    const r = open();
    r.createThingGroup({ thingGroupName: 'parent' });
    for (let i = 0; i < THING_GROUP_LIMITS.maxDirectChildren; i++) {
      r.createThingGroup({ thingGroupName: `child-${i}`, parentGroupName: 'parent' });
    }
    expect(code(() => r.createThingGroup({ thingGroupName: 'one-more', parentGroupName: 'parent' }))).toBe(
      'InvalidRequestException',
    );
    r.close();
  });

  it('lists groups: all, roots only, children, descendants, by prefix, with paging', () => {
    const r = open();
    r.createThingGroup({ thingGroupName: 'site-a' });
    r.createThingGroup({ thingGroupName: 'site-b' });
    r.createThingGroup({ thingGroupName: 'room-1', parentGroupName: 'site-a' });
    r.createThingGroup({ thingGroupName: 'rack-1', parentGroupName: 'room-1' });
    const names = (input: Parameters<Registry['listThingGroups']>[0]) =>
      r.listThingGroups(input).items.map((g) => g.groupName);
    expect(names({})).toEqual(['rack-1', 'room-1', 'site-a', 'site-b']);
    expect(names({ recursive: false })).toEqual(['site-a', 'site-b']);
    expect(names({ parentGroup: 'site-a' })).toEqual(['room-1']);
    expect(names({ parentGroup: 'site-a', recursive: true })).toEqual(['rack-1', 'room-1']);
    expect(names({ namePrefixFilter: 'site' })).toEqual(['site-a', 'site-b']);
    const first = r.listThingGroups({ pageSize: 3 });
    expect(first.items).toHaveLength(3);
    expect(r.listThingGroups({ pageSize: 3, token: first.next }).items.map((g) => g.groupName)).toEqual(['site-b']);
    expect(code(() => names({ parentGroup: 'nope' }))).toBe('ResourceNotFoundException');
    r.close();
  });

  it('adds things by name or ARN, lists them (recursively), and keeps AWS membership rules', () => {
    const r = open();
    r.createThingGroup({ thingGroupName: 'site' });
    r.createThingGroup({ thingGroupName: 'room', parentGroupName: 'site' });
    r.createThingGroup({ thingGroupName: 'other' });
    for (const t of ['pi-1', 'pi-2', 'pi-3']) r.createThing({ thingName: t });
    r.addThingToThingGroup({ thingGroupName: 'site', thingName: 'pi-1' });
    r.addThingToThingGroup({ thingGroupArn: arn('thinggroup', 'room'), thingArn: arn('thing', 'pi-2') });
    r.addThingToThingGroup({ thingGroupName: 'room', thingName: 'pi-2' }); // again: no change
    expect(r.listThingsInThingGroup('site', {}).items).toEqual(['pi-1']);
    expect(r.listThingsInThingGroup('site', { recursive: true }).items).toEqual(['pi-1', 'pi-2']);
    expect(r.listThingGroupsForThing('pi-2', {}).items).toEqual([
      { groupName: 'room', groupArn: arn('thinggroup', 'room') },
    ]);
    // pi-2 is in room, a group of site's hierarchy: site is refused, another hierarchy is not.
    expect(code(() => r.addThingToThingGroup({ thingGroupName: 'site', thingName: 'pi-2' }))).toBe(
      'InvalidRequestException',
    );
    r.addThingToThingGroup({ thingGroupName: 'other', thingName: 'pi-2' });
    expect(code(() => r.addThingToThingGroup({ thingGroupName: 'nope', thingName: 'pi-3' }))).toBe(
      'ResourceNotFoundException',
    );
    expect(code(() => r.addThingToThingGroup({ thingGroupName: 'site', thingName: 'nope' }))).toBe(
      'ResourceNotFoundException',
    );
    expect(code(() => r.addThingToThingGroup({ thingGroupName: 'site' }))).toBe('InvalidRequestException');
    expect(
      code(() =>
        r.addThingToThingGroup({
          thingGroupName: 'site',
          thingArn: arn('thing', 'pi-1').replace('123456789012', '999999999999'),
        }),
      ),
    ).toBe('InvalidRequestException');
    expect(
      code(() =>
        r.addThingToThingGroup({ thingGroupName: 'site', thingGroupArn: arn('thinggroup', 'room'), thingName: 'pi-3' }),
      ),
    ).toBe('InvalidRequestException');
    r.removeThingFromThingGroup({ thingGroupName: 'room', thingName: 'pi-2' });
    r.removeThingFromThingGroup({ thingGroupName: 'room', thingName: 'pi-2' }); // not a member: no error
    expect(r.listThingsInThingGroup('site', { recursive: true }).items).toEqual(['pi-1']);
    r.close();
  });

  it('puts a thing in at most 10 groups', () => {
    const r = open();
    r.createThing({ thingName: 'busy' });
    for (let i = 0; i < THING_GROUP_LIMITS.maxGroupsPerThing; i++) {
      r.createThingGroup({ thingGroupName: `g${i}` });
      r.addThingToThingGroup({ thingGroupName: `g${i}`, thingName: 'busy' });
    }
    r.createThingGroup({ thingGroupName: 'g10' });
    expect(code(() => r.addThingToThingGroup({ thingGroupName: 'g10', thingName: 'busy' }))).toBe(
      'InvalidRequestException',
    );
    expect(r.listThingGroupsForThing('busy', {}).items).toHaveLength(10);
    r.close();
  });

  it('updates with a version, deletes only leaf groups, and deleting a missing group succeeds', () => {
    const r = open();
    r.createThingGroup({ thingGroupName: 'top', attributes: { a: '1' } });
    r.createThingGroup({ thingGroupName: 'leaf', parentGroupName: 'top' });
    expect(r.updateThingGroup({ thingGroupName: 'top', attributes: { b: '2' }, merge: true, expectedVersion: 1 })).toBe(
      2,
    );
    expect(r.describeThingGroup('top')).toMatchObject({ attributes: { a: '1', b: '2' }, version: 2 });
    expect(code(() => r.updateThingGroup({ thingGroupName: 'top', description: 'x', expectedVersion: 1 }))).toBe(
      'VersionConflictException',
    );
    expect(code(() => r.deleteThingGroup({ thingGroupName: 'top' }))).toBe('InvalidRequestException');
    r.createThing({ thingName: 'in-leaf' });
    r.addThingToThingGroup({ thingGroupName: 'leaf', thingName: 'in-leaf' });
    r.deleteThingGroup({ thingGroupName: 'leaf' });
    expect(r.listThingGroupsForThing('in-leaf', {}).items).toEqual([]);
    r.deleteThingGroup({ thingGroupName: 'top' });
    r.deleteThingGroup({ thingGroupName: 'top' });
    expect(code(() => r.describeThingGroup('top'))).toBe('ResourceNotFoundException');
    r.close();
  });

  it('deleting a thing removes it from its groups', () => {
    const r = open();
    r.createThingGroup({ thingGroupName: 'g' });
    r.createThing({ thingName: 'gone' });
    r.addThingToThingGroup({ thingGroupName: 'g', thingName: 'gone' });
    r.deleteThing({ thingName: 'gone' });
    expect(r.listThingsInThingGroup('g', {}).items).toEqual([]);
    r.close();
  });
});

describe('policies on thing groups and the identity the broker reads', () => {
  it("gives a thing the policies of its groups and their ancestors, and fires a change for each thing's certificate", async () => {
    const r = open();
    r.createPolicy('site-policy', policy);
    r.createPolicy('room-policy', policy);
    r.createThingType({ thingTypeName: 'Sensor' });
    r.createThingGroup({ thingGroupName: 'site' });
    r.createThingGroup({ thingGroupName: 'room', parentGroupName: 'site' });
    r.createThing({ thingName: 'pi-g', thingTypeName: 'Sensor', attributes: { floor: '2' } });
    r.createThing({ thingName: 'bystander' });
    const cert = await certOf(r, 'pi-g');
    const other = await certOf(r, 'bystander');
    const events: string[] = [];
    r.onIdentityChange((id) => events.push(id));
    const facts = () => r.identityOf(cert.certificateId)?.things?.get('pi-g');
    const id = cert.certificateId;

    const steps: Array<[string, () => void, string[], string[]]> = [
      ['attach to the parent group', () => r.attachPolicy('site-policy', arn('thinggroup', 'site')), [], []],
      [
        'join the child group',
        () => r.addThingToThingGroup({ thingGroupName: 'room', thingName: 'pi-g' }),
        [id],
        ['site-policy'],
      ],
      [
        'attach to the child group',
        () => r.attachPolicy('room-policy', arn('thinggroup', 'room')),
        [id],
        ['room-policy', 'site-policy'],
      ],
      [
        'detach from the parent group',
        () => r.detachPolicy('site-policy', arn('thinggroup', 'site')),
        [id],
        ['room-policy'],
      ],
      [
        'leave the child group',
        () => r.removeThingFromThingGroup({ thingGroupName: 'room', thingName: 'pi-g' }),
        [id],
        [],
      ],
    ];
    for (const [label, act, fired, policies] of steps) {
      r.identityOf(id); // warm the cache so a missed invalidation would show
      const before = events.length;
      act();
      expect(events.slice(before), label).toEqual(fired);
      expect(
        facts()?.groupPolicies.map((p) => p.name),
        label,
      ).toEqual(policies);
    }
    expect(facts()).toMatchObject({ attributes: { floor: '2' }, thingTypeName: 'Sensor' });
    r.updateThing({ thingName: 'pi-g', attributes: { floor: '3' }, merge: true });
    expect(events.at(-1)).toBe(id);
    expect(facts()?.attributes).toEqual({ floor: '3' });
    r.updateThing({ thingName: 'pi-g', removeThingType: true });
    expect(facts()?.thingTypeName).toBeUndefined();
    r.addThingToThingGroup({ thingGroupName: 'room', thingName: 'pi-g' });
    const before = events.length;
    r.deleteThingGroup({ thingGroupName: 'room' });
    expect(events.slice(before)).toEqual([id]);
    expect(events).not.toContain(other.certificateId);
    r.close();
  });

  it('lists a group target with ListAttachedPolicies (recursive adds ancestors) and ListTargetsForPolicy; refuses DeletePolicy', async () => {
    const r = open();
    r.createPolicy('p', policy);
    r.createPolicy('q', policy);
    r.createThingGroup({ thingGroupName: 'top' });
    r.createThingGroup({ thingGroupName: 'sub', parentGroupName: 'top' });
    r.createThing({ thingName: 't' });
    const cert = await certOf(r, 't');
    r.attachPolicy('p', arn('thinggroup', 'top'));
    r.attachPolicy('q', arn('thinggroup', 'sub'));
    r.attachPolicy('p', cert.certificateArn);
    expect(r.listAttachedPolicies(arn('thinggroup', 'sub'), {}).items.map((p) => p.policyName)).toEqual(['q']);
    expect(r.listAttachedPolicies(arn('thinggroup', 'sub'), {}, true).items.map((p) => p.policyName)).toEqual([
      'q',
      'p',
    ]);
    const firstPage = r.listTargetsForPolicy('p', { pageSize: 1 });
    expect(firstPage.items).toEqual([cert.certificateArn]);
    expect(r.listTargetsForPolicy('p', { pageSize: 1, token: firstPage.next }).items).toEqual([
      arn('thinggroup', 'top'),
    ]);
    expect(code(() => r.deletePolicy('q'))).toBe('DeleteConflictException');
    expect(code(() => r.attachPolicy('p', arn('thinggroup', 'nope')))).toBe('ResourceNotFoundException');
    expect(code(() => r.attachPolicy('nope', arn('thinggroup', 'top')))).toBe('ResourceNotFoundException');
    r.close();
  });
});

describe('schema migration', () => {
  it('opens a version-1 data file with its things kept, and adds types and groups', () => {
    const file = join(dir, 'v1.sqlite');
    const db = new Database(file);
    db.exec(`
      CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      INSERT INTO meta VALUES ('schema_version', '1');
      CREATE TABLE things (seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, thing_id TEXT NOT NULL,
        attributes TEXT NOT NULL, version INTEGER NOT NULL, created_at INTEGER NOT NULL);
      INSERT INTO things (name, thing_id, attributes, version, created_at) VALUES ('old-pi', 'id-1', '{"room":"lab"}', 4, 0);
    `);
    db.close();
    const r = open(file);
    expect(r.describeThing('old-pi')).toMatchObject({ attributes: { room: 'lab' }, version: 4 });
    expect(r.describeThing('old-pi').thingTypeName).toBeUndefined();
    r.createThingType({ thingTypeName: 'Sensor' });
    r.updateThing({ thingName: 'old-pi', thingTypeName: 'Sensor' });
    r.createThingGroup({ thingGroupName: 'g' });
    r.addThingToThingGroup({ thingGroupName: 'g', thingName: 'old-pi' });
    r.close();
    const again = open(file);
    expect(again.describeThing('old-pi').thingTypeName).toBe('Sensor');
    expect(again.listThingsInThingGroup('g', {}).items).toEqual(['old-pi']);
    again.close();
    const check = new Database(file, { readonly: true });
    expect(check.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get()).toEqual({ value: '2' });
    check.close();
  });

  it('refuses a file of a newer schema', () => {
    const file = join(dir, 'v3.sqlite');
    const db = new Database(file);
    db.exec(
      "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema_version', '3');",
    );
    db.close();
    expect(() => open(file)).toThrow(/schema version 3/);
  });
});
