import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { localCorePaths, openSqliteRegistry } from '@pifleet/cloud';
import type { IdentityPort } from '@pifleet/device-agent';
import { DEFAULT_CLAIMED_THING_GROUP, EXIT, RECOMMENDED_POLICY_NAME } from '@pifleet/protocol';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { countingIdentity } from '../../src/fleet/claim-device.js';
import { claimedThingNames, simulatedPiFacts, simulatedSerial } from '../../src/fleet/claim-devices.js';
import { claimLine, summarizeClaim } from '../../src/fleet/claim-result.js';
import { summaryLines } from '../../src/fleet/command.js';
import { checkOptions, FLEET_DEFAULTS, type FleetFlags, type FleetOptions } from '../../src/fleet/options.js';
import { claimStartRate } from '../../src/fleet/run/provision-claim.js';
import { createFleetRunner } from '../../src/fleet/runner.js';
import { sim } from '../helpers.js';

/**
 * `pifleet-sim fleet --provision claim` against the in-process core on 127.0.0.1: the claim set up
 * with `pifleet claims create`, every device provisioning itself over MQTT (mqtt.js) with the
 * claim certificate through device-agent's flow and pifleet's pre-provisioning hook, then the
 * fleet run as usual with the identities it got.
 */
const out = mkdtempSync(path.join(os.tmpdir(), 'fleet-claim-'));
const kept: string[] = [];
afterAll(() => {
  rmSync(out, { recursive: true, force: true });
  for (const dir of kept) rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.unstubAllEnvs();
});

const claimFleet = (o: Partial<FleetOptions>): FleetOptions => ({
  ...FLEET_DEFAULTS,
  devices: 20,
  rampPerSecond: 100,
  durationS: 3,
  intervalMs: 1_000,
  batchReadings: 5,
  batchAgeMs: 2_000,
  transport: 'mqtt',
  outDir: out,
  latencyThings: 5,
  drainTimeoutS: 30,
  reconnectMaxMs: 2_000,
  provision: 'claim',
  provisionConcurrency: 8,
  seed: 'claim-test',
  ...o,
});

describe('fleet --provision claim', () => {
  it('20 devices provision over MQTT (thing pi-<serial> with its facts as attributes, in pifleet-claimed), then publish telemetry that is all stored; the report counts them', async () => {
    const r = await createFleetRunner({ options: claimFleet({ keep: true }) }).run();
    const dataDir = r.provisioning?.dataDir as string;
    kept.push(dataDir);
    const claim = r.provisioning?.claim;
    expect(claim).toMatchObject({
      templateName: 'pifleet-claim',
      hookArn: expect.stringMatching(/^arn:aws:lambda:[a-z0-9-]+:\d{12}:function:pifleet-provisioning-hook$/),
      method: 'csr',
      client: 'mqtt.js',
      devices: 20,
      provisioned: 20,
      failed: 0,
      failures: {},
      concurrency: 8,
      // --limits aws: 200 subscriptions/s per account over the 4 each device makes.
      pacedPerSecond: 50,
    });
    expect(claim?.latencyMs?.count).toBe(20);
    expect(claim?.devicesPerSecond).toBeGreaterThan(0);

    const p = r.phases.find((x) => x.name === 'local-core');
    expect(p?.connect.everConnected).toBe(20);
    expect(p?.telemetry.generated).toBeGreaterThan(0);
    expect(p?.telemetry.published).toBe(p?.telemetry.generated);
    expect(p?.telemetry.stored).toBe(p?.telemetry.generated);
    expect(p?.telemetry.lost).toBe(0);
    // Read back from the store by the claimed things' boot ids (pi-<serial>-…): latency of every reading.
    expect(p?.latency.sampleToStoredMs?.count).toBeGreaterThan(0);
    expect(p?.latency.sealedToStoredMs?.count).toBeGreaterThan(0);
    expect(r.zeroLoss).toBe(true);
    const lines = summaryLines(r).join('\n');
    expect(lines).toMatch(
      /^provisioned by claim \(template pifleet-claim, hook pifleet-provisioning-hook, .*\): 20\/20 in /m,
    );
    expect(lines).toMatch(/failed 0; retries \d+/);

    // What RegisterThing made, read from the kept registry: the template's thing (named after the
    // serial, its attributes from the device's facts, the model's spaces as _), in the claimed
    // group, its certificate ACTIVE with the device policy.
    const registry = openSqliteRegistry({
      file: localCorePaths(dataDir).registryFile,
      account: { region: 'us-east-1', accountId: '000000000000' },
      now: Date.now,
    });
    try {
      const names = claimedThingNames('claim-test', 20);
      const facts = simulatedPiFacts('claim-test', 3);
      const thing = registry.describeThing(names[3] as string);
      expect(thing.attributes).toEqual({
        serial: facts.SerialNumber,
        model: (facts.Model as string).replaceAll(' ', '_'),
        mac: facts.MacAddress,
      });
      expect(registry.listThingGroupsForThing(names[3] as string, {}).items.map((g) => g.groupName)).toContain(
        DEFAULT_CLAIMED_THING_GROUP,
      );
      const principals = registry.listThingPrincipals(names[3] as string, {}).items;
      expect(principals).toHaveLength(1);
      const certificateId = (principals[0] as string).slice((principals[0] as string).lastIndexOf('/') + 1);
      expect(registry.describeCertificate(certificateId).status).toBe('ACTIVE');
      expect(registry.listAttachedPolicies(principals[0] as string, {}).items.map((x) => x.policyName)).toEqual([
        RECOMMENDED_POLICY_NAME,
      ]);
    } finally {
      registry.close();
    }
  }, 120_000);

  it('a claim the hook denies (the core allows all serials but one) fails the run in one line with the count and AccessDenied, exit 69, no report', async () => {
    const allowed = Array.from({ length: 4 }, (_, i) => simulatedSerial('claim-deny', i));
    // pifleet's hook reads its allow-list from the core's environment when the core starts.
    vi.stubEnv('PIFLEET_ALLOWED_SERIALS', allowed.join(','));
    const dir = path.join(out, 'deny');
    const r = await sim([
      'fleet',
      '--provision',
      'claim',
      '--devices',
      '5',
      '--seed',
      'claim-deny',
      '--transport',
      'mqtt',
      '--duration',
      '2',
      '--limits',
      'off',
      '--out',
      dir,
    ]);
    expect(r.code).toBe(EXIT.unavailable);
    expect(r.stdout).toBe('');
    const last = r.stderr.trim().split('\n').at(-1);
    expect(last).toMatch(
      new RegExp(
        `^pifleet-sim fleet: provisioning by claim failed for 1 of 5 devices \\(AccessDenied ×1\\); first: pi-${simulatedSerial('claim-deny', 4)}: RegisterThing rejected: AccessDenied: `,
      ),
    );
    // No report for a run that never started its fleet.
    expect(() => readdirSync(dir)).toThrow();
  }, 60_000);
});

describe('fleet --provision claim under the quotas', () => {
  it("--limits aws with a limits file, the devices in a device-host process: they start at the account's subscription rate over their 4 subscriptions; what the core still refused is retried and counted", async () => {
    const limitsFile = path.join(out, 'limits.json');
    writeFileSync(limitsFile, JSON.stringify({ subscriptionsPerSecondPerAccount: 8 }));
    const r = await createFleetRunner({
      options: claimFleet({ devices: 6, durationS: 2, limits: 'aws', limitsFile, seed: 'claim-quota', workers: 1 }),
    }).run();
    const claim = r.provisioning?.claim;
    expect(claim).toMatchObject({ pacedPerSecond: 2, workers: 1, provisioned: 6, failed: 0 });
    // A subscription refused for the quota fails the request, which the flow sends again.
    expect(claim?.retries !== 0).toBe(Object.keys(claim?.coreThrottles ?? {}).length > 0);
    expect(r.zeroLoss).toBe(true);
    expect(summaryLines(r)[0]).toMatch(/ in 1 device hosts, ≤ 2 claim connects\/s\): 6\/6 in /);
  }, 60_000);
});

describe('claimStartRate', () => {
  it.each<[number | null, number | null, number | null]>([
    // IoT Core's defaults: 500 CONNECT/s, 200 subscriptions/s = 50 devices of 4 subscriptions.
    [500, 200, 50],
    [3, 200, 3],
    [null, 8, 2],
    [500, null, 500],
    [null, null, null],
  ])('connects %j/s, subscriptions %j/s: %j devices/s', (connects, subscriptions, rate) => {
    expect(
      claimStartRate({ connectsPerSecondPerAccount: connects, subscriptionsPerSecondPerAccount: subscriptions }),
    ).toBe(rate);
  });
});

describe('countingIdentity', () => {
  const port = (fails: { csr: number; register: number }): IdentityPort => ({
    async createCertificateFromCsr() {
      if (fails.csr-- > 0) throw new Error('no answer');
      return { certificateId: 'c', certificatePem: 'p', certificateOwnershipToken: 't' };
    },
    async createKeysAndCertificate() {
      throw new Error('not used');
    },
    async registerThing() {
      if (fails.register-- > 0) throw new Error('no answer');
      return { thingName: 'pi-x', deviceConfiguration: {} };
    },
    close() {},
  });

  it.each<[string, { csr: number; register: number }, boolean, number]>([
    ['first tries only', { csr: 0, register: 0 }, true, 0],
    ['a certificate asked for 3 times', { csr: 2, register: 0 }, true, 2],
    ['RegisterThing sent twice', { csr: 0, register: 1 }, true, 1],
    ['one request that failed, never sent again', { csr: 1, register: 0 }, false, 0],
  ])('%s: %j → %j retries', async (_what, fails, register, retries) => {
    const c = countingIdentity(port(fails));
    for (;;) {
      try {
        await c.identity.createCertificateFromCsr('csr');
        break;
      } catch {
        if (!register) break;
      }
    }
    if (register) {
      for (;;) {
        try {
          await c.identity.registerThing('t', { certificateOwnershipToken: 't' });
          break;
        } catch {}
      }
    }
    expect(c.retries()).toBe(retries);
  });
});

describe('--provision and --provision-concurrency', () => {
  const flags = (o: Partial<FleetFlags>): FleetFlags => ({ ...FLEET_DEFAULTS, ...o });

  it.each<[Partial<FleetFlags>, string]>([
    [{ provision: 'csr' }, '--provision must be in-process or claim'],
    [{ provision: '__proto__' }, '--provision must be in-process or claim'],
    [{ provision: '' }, '--provision must be in-process or claim'],
    [
      { provision: 'claim', target: 'external', dataDir: '/tmp/x' },
      '--provision claim needs --target local without --data-dir (a fresh core: claimed things are named pi-<serial>, not after the run)',
    ],
    [
      { provision: 'claim', dataDir: '/tmp/x' },
      '--provision claim needs --target local without --data-dir (a fresh core: claimed things are named pi-<serial>, not after the run)',
    ],
    [{ provision: 'claim', provisionConcurrency: 0 }, '--provision-concurrency must be an integer in [1, 1000]'],
    [{ provision: 'claim', provisionConcurrency: 2.5 }, '--provision-concurrency must be an integer in [1, 1000]'],
    [{ provision: 'claim', provisionConcurrency: 1e9 }, '--provision-concurrency must be an integer in [1, 1000]'],
    [{ provisionConcurrency: 4 }, '--provision-concurrency needs --provision claim'],
  ])('%j is refused: %s', (o, message) => {
    expect(checkOptions(flags(o))).toEqual([message]);
  });

  it.each<Partial<FleetFlags>>([{}, { provision: 'in-process' }, { provision: 'claim', provisionConcurrency: 64 }])(
    '%j is accepted',
    (o) => {
      expect(checkOptions(flags(o))).toEqual([]);
    },
  );

  it('a bad --provision is a usage error (64) in one line, before anything starts', async () => {
    const r = await sim(['fleet', '--provision', 'jitp']);
    expect(r).toEqual({
      code: EXIT.usage,
      stdout: '',
      stderr: 'pifleet-sim fleet: --provision must be in-process or claim\n',
    });
  });
});

describe('simulated Pis', () => {
  it('a serial is 16 lower-case hex digits, the same for a seed and index, and differs between devices and seeds', () => {
    const a = simulatedSerial('s', 0);
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(simulatedSerial('s', 0)).toBe(a);
    expect(simulatedSerial('s', 1)).not.toBe(a);
    expect(simulatedSerial('t', 0)).not.toBe(a);
    const names = claimedThingNames('s', 1_000);
    expect(new Set(names).size).toBe(1_000);
    expect(names[0]).toBe(`pi-${a}`);
  });

  it('facts are the template parameters a Pi sends: its serial, a Pi model and a MAC of Raspberry Pi OUI', () => {
    const f = simulatedPiFacts('s', 7);
    expect(Object.keys(f).sort()).toEqual(['MacAddress', 'Model', 'SerialNumber']);
    expect(f.SerialNumber).toBe(simulatedSerial('s', 7));
    expect(f.Model).toMatch(/^Raspberry Pi [345] Model B/);
    expect(f.MacAddress).toMatch(/^(b8:27:eb|dc:a6:32|2c:cf:67)(:[0-9a-f]{2}){3}$/);
  });
});

describe('summarizeClaim', () => {
  it('counts failures by code, and devices per second and latency over the provisioned ones only', () => {
    const c = summarizeClaim({
      setup: {
        templateName: 't',
        hookArn: 'arn:aws:lambda:r:000000000000:function:h',
        protocol: '5',
        concurrency: 4,
        workers: 2,
        pacedPerSecond: null,
      },
      setupMs: 250,
      devices: 5,
      startedAt: 1_000,
      endedAt: 3_000,
      latenciesMs: [100, 200, 300],
      failureCodes: ['AccessDenied', 'PROVISIONING_TIMEOUT', 'AccessDenied'],
      retries: 7,
      coreThrottles: {},
    });
    expect(c).toMatchObject({
      provisioned: 3,
      failed: 3,
      seconds: 2,
      devicesPerSecond: 1.5,
      setupSeconds: 0.25,
      failures: { AccessDenied: 2, PROVISIONING_TIMEOUT: 1 },
      retries: 7,
    });
    expect(c.latencyMs).toMatchObject({ count: 3, p50: 200, max: 300 });
    expect(claimLine(c)).toBe(
      'provisioned by claim (template t, hook h, MQTT 5, mqtt.js, 4 at once in 2 device hosts): 3/5 in 2 s (1.5/s); per device p50/p99/max 200/300/300 ms; failed 3 (AccessDenied 2, PROVISIONING_TIMEOUT 1); retries 7; core throttled nothing; setup 0.25 s',
    );
  });

  it('an empty step: no latency, 0 per second', () => {
    const c = summarizeClaim({
      setup: { templateName: 't', hookArn: 'h', protocol: '3.1.1', concurrency: 1, workers: 0, pacedPerSecond: 50 },
      setupMs: 0,
      devices: 0,
      startedAt: 5,
      endedAt: 5,
      latenciesMs: [],
      failureCodes: [],
      retries: 0,
      coreThrottles: {},
    });
    expect(c.latencyMs).toBeUndefined();
    expect(c.devicesPerSecond).toBe(0);
  });
});
