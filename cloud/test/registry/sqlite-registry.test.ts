import { join } from 'node:path';
import { recommendedDevicePolicy } from '@pifleet/protocol';
import { describe, expect, it } from 'vitest';
import type { LocalCa } from '../../src/ca/local-ca.js';
import { RegistryError } from '../../src/registry/errors.js';
import type { Registry } from '../../src/registry/sqlite-registry.js';
import { registryForFile } from './bed.js';

/** The registry as the broker sees it: the IdentityDirectory port, its change events, persistence. */

const account = { region: 'us-east-1', accountId: '123456789012' };
const policy = JSON.stringify(recommendedDevicePolicy(account.region, account.accountId));
let dir: string;
let ca: LocalCa;
let clock = Date.UTC(2026, 0, 1);
const now = () => clock;

const open = registryForFile('registry', account, now, (bed) => {
  ({ dir, ca } = bed);
});

async function newCert(registry: Registry, status: 'ACTIVE' | 'INACTIVE' = 'ACTIVE') {
  const { certificatePem } = await ca.createKeysAndCertificate();
  return registry.registerCertificate({ certificatePem, status });
}

/** Records every identity change event. */
function watch(registry: Registry) {
  const events: string[] = [];
  const stop = registry.onIdentityChange((id) => events.push(id));
  return { events, stop };
}

describe('IdentityDirectory', () => {
  it('describes a certificate with its status, things and policies (documents parsed)', async () => {
    const registry = open();
    const cert = await newCert(registry);
    registry.createThing({ thingName: 'pi-01' });
    registry.createPolicy('device', policy);
    registry.attachThingPrincipal('pi-01', cert.certificateArn);
    registry.attachPolicy('device', cert.certificateArn);
    const identity = registry.identityOf(cert.certificateId);
    expect(identity).toEqual({
      certificateId: cert.certificateId,
      certificateArn: `arn:aws:iot:us-east-1:123456789012:cert/${cert.certificateId}`,
      status: 'ACTIVE',
      thingNames: ['pi-01'],
      policies: [{ name: 'device', document: JSON.parse(policy) }],
      things: new Map([['pi-01', { attributes: {}, groupPolicies: [] }]]),
    });
    expect(registry.identityOf('f'.repeat(64))).toBeUndefined();
    registry.close();
  });

  it('fires a change for every operation that can change access, and serves fresh identities after', async () => {
    const registry = open();
    const cert = await newCert(registry);
    const other = await newCert(registry, 'INACTIVE');
    registry.createThing({ thingName: 'pi-02' });
    registry.createPolicy('p', policy);
    const { events, stop } = watch(registry);
    const id = cert.certificateId;

    const steps: Array<[string, () => void, (i: ReturnType<Registry['identityOf']>) => void]> = [
      [
        'UpdateCertificate',
        () => registry.updateCertificate(id, 'INACTIVE'),
        (i) => expect(i?.status).toBe('INACTIVE'),
      ],
      [
        'AttachPolicy',
        () => registry.attachPolicy('p', cert.certificateArn),
        (i) => expect(i?.policies).toHaveLength(1),
      ],
      [
        'DetachPolicy',
        () => registry.detachPolicy('p', cert.certificateArn),
        (i) => expect(i?.policies).toHaveLength(0),
      ],
      [
        'AttachThingPrincipal',
        () => registry.attachThingPrincipal('pi-02', cert.certificateArn),
        (i) => expect(i?.thingNames).toEqual(['pi-02']),
      ],
      [
        'DetachThingPrincipal',
        () => registry.detachThingPrincipal('pi-02', cert.certificateArn),
        (i) => expect(i?.thingNames).toEqual([]),
      ],
      [
        'UpdateCertificate REVOKED',
        () => registry.updateCertificate(id, 'REVOKED'),
        (i) => expect(i?.status).toBe('REVOKED'),
      ],
      ['DeleteCertificate', () => registry.deleteCertificate(id), (i) => expect(i).toBeUndefined()],
    ];
    for (const [label, act, check] of steps) {
      registry.identityOf(id); // warm the cache so a missed invalidation would show
      const before = events.length;
      act();
      expect(events.slice(before), label).toEqual([id]);
      check(registry.identityOf(id));
    }
    expect(events).not.toContain(other.certificateId);

    stop();
    registry.updateCertificate(other.certificateId, 'ACTIVE');
    expect(events).not.toContain(other.certificateId);
    registry.close();
  });

  it('fires no change when nothing changed (same status) and isolates a throwing listener', async () => {
    const registry = open();
    const cert = await newCert(registry);
    const seen: string[] = [];
    registry.onIdentityChange(() => {
      throw new Error('listener bug');
    });
    registry.onIdentityChange((id) => seen.push(id));
    registry.updateCertificate(cert.certificateId, 'ACTIVE');
    expect(seen).toEqual([]);
    registry.updateCertificate(cert.certificateId, 'INACTIVE');
    expect(seen).toEqual([cert.certificateId]);
    registry.close();
  });

  it('DeletePolicy is refused while attached, so no identity loses a policy silently', async () => {
    const registry = open();
    const cert = await newCert(registry);
    registry.createPolicy('keep', policy);
    registry.attachPolicy('keep', cert.certificateArn);
    expect(() => registry.deletePolicy('keep')).toThrow(
      expect.objectContaining({ code: 'DeleteConflictException' }) as unknown as Error,
    );
    expect(registry.identityOf(cert.certificateId)?.policies.map((p) => p.name)).toEqual(['keep']);
    registry.close();
  });
});

describe('persistence', () => {
  it('survives close and reopen with everything, including status and timestamps', async () => {
    const file = join(dir, 'durable.sqlite');
    const first = open(file);
    const cert = await newCert(first);
    first.createThing({ thingName: 'pi-03', attributes: { a: '1' } });
    first.createPolicy('d', policy);
    first.attachPolicy('d', cert.certificateArn);
    first.attachThingPrincipal('pi-03', cert.certificateArn);
    clock += 5_000;
    first.updateCertificate(cert.certificateId, 'INACTIVE');
    first.close();

    const second = open(file);
    expect(second.describeThing('pi-03')).toMatchObject({ attributes: { a: '1' }, version: 1 });
    const described = second.describeCertificate(cert.certificateId);
    expect(described.status).toBe('INACTIVE');
    expect(described.lastModifiedDate.getTime() - described.creationDate.getTime()).toBe(5_000);
    expect(second.identityOf(cert.certificateId)).toMatchObject({ thingNames: ['pi-03'], status: 'INACTIVE' });
    expect(second.listAttachedPolicies(cert.certificateArn, {}).items.map((p) => p.policyName)).toEqual(['d']);
    second.close();
  });

  it('refuses to register the same certificate twice', async () => {
    const registry = open();
    const { certificatePem } = await ca.createKeysAndCertificate();
    registry.registerCertificate({ certificatePem, status: 'ACTIVE' });
    expect(() => registry.registerCertificate({ certificatePem, status: 'ACTIVE' })).toThrow(RegistryError);
    registry.close();
  });
});

describe('attribute names that name the object model', () => {
  it('ListThings by attribute constructor, toString or __proto__ finds only things that have it', () => {
    const registry = open();
    registry.createThing({ thingName: 'plain', attributes: { fleet: 'a' } });
    registry.createThing({ thingName: 'odd', attributes: JSON.parse('{"__proto__":"p","constructor":"c"}') });
    const names = (attributeName: string, attributeValue?: string) =>
      registry
        .listThings({
          attributeName,
          ...(attributeValue === undefined ? {} : { attributeValue, usePrefixAttributeValue: true }),
        })
        .items.map((t) => t.thingName);
    expect(names('constructor')).toEqual(['odd']);
    expect(names('constructor', 'c')).toEqual(['odd']);
    expect(names('__proto__', 'p')).toEqual(['odd']);
    expect(names('toString', 'x')).toEqual([]);
    expect(registry.describeThing('odd').attributes).toEqual(JSON.parse('{"__proto__":"p","constructor":"c"}'));
    expect(Object.keys(Object.prototype)).toEqual([]);
  });
});
