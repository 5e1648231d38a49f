import { createPrivateKey, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  AttachPolicyCommand,
  CreateKeysAndCertificateCommand,
  CreatePolicyCommand,
  CreateProvisioningTemplateCommand,
  CreateThingGroupCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  ListThingPrincipalsCommand,
} from '@aws-sdk/client-iot';
import { type InProcessCore, startInProcessCore } from '@pifleet/cloud';
import {
  type FactSources,
  type IdentityPort,
  type IdentitySessionFactory,
  openMqttJsSession,
  type ProvisioningTransportKind,
  provisionFromConfigFile,
  readAndCheckConfigFile,
  type StoreStep,
} from '@pifleet/device-agent';
import {
  appTopics,
  claimPolicyDocument,
  DEFAULT_CLAIMED_THING_GROUP,
  EXIT,
  type MqttProtocol,
  pifleetClaimTemplateBody,
  RECOMMENDED_POLICY_NAME,
  recommendedDevicePolicy,
} from '@pifleet/protocol';
import { SIM_ADDRESSES } from '@pifleet/simulator';
import {
  BINS,
  killLaunched,
  launchBin,
  launchSimAgent,
  REPO,
  removeDir,
  startRelay,
  tempDir,
  until,
  waitForShadow,
  waitForStored,
} from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The agent's provisioning by claim against the local IoT Core in-process: the account as
 * `pifleet claims create` leaves it (pifleet's claim template with pifleet's pre-provisioning hook,
 * the device policy, the thing group, a claim certificate with only the claim policy, made with the
 * real @aws-sdk/client-iot), and an agent config with a `provisioning` section and no thing name.
 * Both transports (aws-crt's IotIdentityClientv2, mqtt.js on the reserved topics) over both MQTT
 * versions; the command line and `run` as processes, as a device runs them.
 */

const TEMPLATE = 'pifleet-claim';
const AGENT_SOURCE = path.join(REPO, 'device-agent/src/main.ts');
const DENIED = 'pifleet-denied';

let dir: string;
let core: InProcessCore;
let claim: { certFile: string; keyFile: string; caFile: string };

beforeAll(async () => {
  dir = tempDir('agent-provisioning');
  core = await startInProcessCore(path.join(dir, 'core'), {
    maxAttempts: 2,
    provisioningHooks: {
      // A hook that refuses every device (an allow-list the device is not on).
      'deny-everyone': async () => ({ allowProvisioning: false }),
    },
  });
  const { region, accountId } = core.info;
  const lambda = (name: string) => `arn:aws:lambda:${region}:${accountId}:function:${name}`;
  await core.iot.send(
    new CreatePolicyCommand({
      policyName: RECOMMENDED_POLICY_NAME,
      policyDocument: JSON.stringify(recommendedDevicePolicy(region, accountId)),
    }),
  );
  await core.iot.send(new CreateThingGroupCommand({ thingGroupName: DEFAULT_CLAIMED_THING_GROUP }));
  for (const [templateName, hook] of [
    [TEMPLATE, 'pifleet-provisioning-hook'],
    [DENIED, 'deny-everyone'],
  ] as const) {
    await core.iot.send(
      new CreateProvisioningTemplateCommand({
        templateName,
        templateBody: pifleetClaimTemplateBody(),
        provisioningRoleArn: `arn:aws:iam::${accountId}:role/pifleet-provisioning`,
        enabled: true,
        preProvisioningHook: { targetArn: lambda(hook) },
      }),
    );
  }
  const cert = await core.iot.send(new CreateKeysAndCertificateCommand({ setAsActive: true }));
  for (const templateName of [TEMPLATE, DENIED]) {
    await core.iot.send(
      new CreatePolicyCommand({
        policyName: `claim-${templateName}`,
        policyDocument: JSON.stringify(claimPolicyDocument({ region, accountId, templateName })),
      }),
    );
    await core.iot.send(new AttachPolicyCommand({ policyName: `claim-${templateName}`, target: cert.certificateArn }));
  }
  const claimDir = path.join(dir, 'claim');
  mkdirSync(claimDir);
  claim = {
    certFile: path.join(claimDir, 'claim.pem.crt'),
    keyFile: path.join(claimDir, 'claim.pem.key'),
    caFile: path.join(claimDir, 'ca.pem'),
  };
  writeFileSync(claim.certFile, cert.certificatePem as string);
  writeFileSync(claim.keyFile, cert.keyPair?.PrivateKey as string, { mode: 0o600 });
  writeFileSync(claim.caFile, readFileSync(core.info.caFile));
});

afterAll(async () => {
  await killLaunched();
  await core?.stop();
  if (dir) removeDir(dir);
});

let serials = 0;
/** A serial no other case uses (16 hex digits, as a Pi prints it). */
const nextSerial = () => `10000000${(0xe1f20000 + ++serials).toString(16)}`;

interface Device {
  readonly dir: string;
  readonly configFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly serial: string;
  readonly facts: FactSources;
}

/** A device's image: a config with the provisioning section and no thing name, and Pi fact files. */
function device(
  label: string,
  o: {
    protocol?: MqttProtocol;
    method?: 'csr' | 'create-keys';
    port?: number;
    serialInConfig?: boolean;
    /** Top-level keys added to the config (sensors, simulated hardware, batch settings). */
    extra?: Record<string, unknown>;
  } = {},
): Device {
  const serial = nextSerial();
  const devDir = path.join(dir, label);
  mkdirSync(path.join(devDir, 'facts/net/eth0'), { recursive: true });
  writeFileSync(
    path.join(devDir, 'facts/cpuinfo'),
    `Revision\t: c03114\nSerial\t\t: ${serial}\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n`,
  );
  writeFileSync(path.join(devDir, 'facts/net/eth0/address'), 'DC:A6:32:01:02:03\n');
  const certFile = path.join(devDir, 'id/certificate.pem.crt');
  const keyFile = path.join(devDir, 'id/private.pem.key');
  const configFile = path.join(devDir, 'agent.json');
  writeFileSync(
    configFile,
    `${JSON.stringify(
      {
        endpoint: core.info.mqtt.host,
        port: o.port ?? core.info.mqtt.port,
        certFile,
        keyFile,
        caFile: claim.caFile,
        mqtt: { protocol: o.protocol ?? '5', reconnectMinMs: 200, reconnectMaxMs: 2_000 },
        hardware: 'none',
        outbox: { path: path.join(devDir, 'state/outbox.db') },
        provisioning: {
          templateName: TEMPLATE,
          claimCertFile: claim.certFile,
          claimKeyFile: claim.keyFile,
          ...(o.method ? { method: o.method } : {}),
          ...(o.serialInConfig ? { parameters: { SerialNumber: serial } } : {}),
          timeoutSeconds: 30,
        },
        ...o.extra,
      },
      null,
      2,
    )}\n`,
  );
  return {
    dir: devDir,
    configFile,
    certFile,
    keyFile,
    serial,
    facts: {
      cpuinfo: path.join(devDir, 'facts/cpuinfo'),
      deviceTreeModel: path.join(devDir, 'facts/model'),
      netDir: path.join(devDir, 'facts/net'),
    },
  };
}

const configOf = (d: Device) => JSON.parse(readFileSync(d.configFile, 'utf8')) as Record<string, unknown>;
const mode = (file: string) => statSync(file).mode & 0o777;

/** What the registry says of a provisioned device: its thing and the certificate attached to it. */
async function expectRegistered(d: Device, certPem: string) {
  const thingName = `pi-${d.serial}`;
  const thing = await core.iot.send(new DescribeThingCommand({ thingName }));
  // The device sends its model as the Pi prints it; pifleet's hook makes it a valid attribute value.
  expect(thing.attributes).toEqual({
    serial: d.serial,
    model: 'Raspberry_Pi_4_Model_B_Rev_1.4',
    mac: 'dc:a6:32:01:02:03',
  });
  const principals = await core.iot.send(new ListThingPrincipalsCommand({ thingName }));
  const certificateId = new X509Certificate(certPem).fingerprint256.replaceAll(':', '').toLowerCase();
  expect(principals.principals?.some((p) => p.endsWith(`/${certificateId}`))).toBe(true);
  const described = await core.iot.send(new DescribeCertificateCommand({ certificateId }));
  expect(described.certificateDescription?.status).toBe('ACTIVE');
}

const CASES: { transport: ProvisioningTransportKind; protocol: MqttProtocol }[] = [
  { transport: 'crt', protocol: '5' },
  { transport: 'crt', protocol: '3.1.1' },
  { transport: 'mqttjs', protocol: '5' },
  { transport: 'mqttjs', protocol: '3.1.1' },
];

describe.each(CASES)('provisioning over $transport, MQTT $protocol', ({ transport, protocol }) => {
  it('csr: a key made on the device, its certificate ACTIVE on the thing pi-<serial>, files and config written', async () => {
    const d = device(`csr-${transport}-${protocol.replaceAll('.', '')}`, { protocol });
    const out = await provisionFromConfigFile({ configFile: d.configFile }, { transport, facts: d.facts });
    expect(out.status).toBe('provisioned');
    const thingName = `pi-${d.serial}`;
    expect(out.status === 'provisioned' && out.identity.thingName).toBe(thingName);
    const certPem = readFileSync(d.certFile, 'utf8');
    const keyPem = readFileSync(d.keyFile, 'utf8');
    expect(keyPem).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
    expect(new X509Certificate(certPem).checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem))).toBe(
      true,
    );
    expect(mode(d.keyFile)).toBe(0o600);
    expect(configOf(d)).toMatchObject({ thingName, provisioning: { templateName: TEMPLATE } });
    await expectRegistered(d, certPem);
    // What `run` checks before it starts: the config, the key matching the certificate, the chain.
    const config = await readAndCheckConfigFile(d.configFile);
    expect(config.thingName).toBe(thingName);
  });
});

describe.each([
  { transport: 'crt' as const, protocol: '5' as const },
  { transport: 'mqttjs' as const, protocol: '3.1.1' as const },
])('create-keys over $transport, MQTT $protocol', ({ transport, protocol }) => {
  it('the key AWS IoT made is stored 0600 with its certificate', async () => {
    const d = device(`keys-${transport}`, { protocol, method: 'create-keys' });
    const out = await provisionFromConfigFile({ configFile: d.configFile }, { transport, facts: d.facts });
    expect(out.status).toBe('provisioned');
    expect(readFileSync(d.keyFile, 'utf8')).toMatch(/^-----BEGIN RSA PRIVATE KEY-----/);
    expect(mode(d.keyFile)).toBe(0o600);
    await expectRegistered(d, readFileSync(d.certFile, 'utf8'));
  });
});

describe('a provisioned device', () => {
  it('provisioning again is a no-op that says so; --force is needed to provision again', async () => {
    const d = device('again');
    await provisionFromConfigFile({ configFile: d.configFile }, { facts: d.facts });
    const before = [
      readFileSync(d.configFile, 'utf8'),
      readFileSync(d.certFile, 'utf8'),
      readFileSync(d.keyFile, 'utf8'),
    ];
    const again = await provisionFromConfigFile({ configFile: d.configFile }, { facts: d.facts });
    expect(again).toEqual({ status: 'already-provisioned', thingName: `pi-${d.serial}` });
    expect([
      readFileSync(d.configFile, 'utf8'),
      readFileSync(d.certFile, 'utf8'),
      readFileSync(d.keyFile, 'utf8'),
    ]).toEqual(before);
  });

  it('an ownership token used already (RegisterThing consumed it first): starts over with a new certificate', async () => {
    const d = device('token-used');
    let certificates = 0;
    let registrations = 0;
    // The real mqtt.js session, with the token of the first certificate spent behind the flow's back:
    // the core consumes a token before the hook runs, so a RegisterThing on the denying template uses it up.
    const openSession: IdentitySessionFactory = async (connection) => {
      const session = await openMqttJsSession(connection);
      const real = session.identity;
      const identity: IdentityPort = {
        createCertificateFromCsr: (csr) => {
          certificates += 1;
          return real.createCertificateFromCsr(csr);
        },
        createKeysAndCertificate: () => real.createKeysAndCertificate(),
        registerThing: async (templateName, request) => {
          registrations += 1;
          if (registrations === 1) await real.registerThing(DENIED, request).catch(() => undefined);
          return real.registerThing(templateName, request);
        },
        close: () => real.close(),
      };
      return { identity, close: () => session.close() };
    };
    const out = await provisionFromConfigFile(
      { configFile: d.configFile },
      { openSession, facts: d.facts, random: () => 0 },
    );
    expect(out.status).toBe('provisioned');
    expect({ certificates, registrations }).toEqual({ certificates: 2, registrations: 2 });
    await expectRegistered(d, readFileSync(d.certFile, 'utf8'));
  });

  it.each<StoreStep>(['key', 'config'])(
    'a crash after the %s is written leaves a device that provisions again and then runs',
    async (step) => {
      const d = device(`crash-${step}`);
      class Crash extends Error {}
      await expect(
        provisionFromConfigFile(
          { configFile: d.configFile },
          {
            facts: d.facts,
            afterStore: (s) => {
              if (s === step) throw new Crash(s);
            },
          },
        ),
      ).rejects.toBeInstanceOf(Crash);
      expect(existsSync(d.certFile)).toBe(false);
      const out = await provisionFromConfigFile({ configFile: d.configFile }, { facts: d.facts });
      expect(out.status).toBe('provisioned');
      // The thing existed already (the first run registered it): the new certificate is attached too.
      await expectRegistered(d, readFileSync(d.certFile, 'utf8'));
      expect((await readAndCheckConfigFile(d.configFile)).thingName).toBe(`pi-${d.serial}`);
    },
  );
});

describe('pifleet-agent provision (the process)', () => {
  const run = async (args: readonly string[]) => {
    const bin = launchBin(BINS.agent, { args: [...args], cwd: dir });
    const exit = await bin.exited;
    return { ...exit, stdout: bin.stdout(), stderr: bin.stderr() };
  };

  it('a template whose hook denies: exit 78, one line with AccessDenied and the reason, nothing written', async () => {
    const d = device('denied', { serialInConfig: true });
    const before = readFileSync(d.configFile, 'utf8');
    const out = await run(['provision', '--config', d.configFile, '--template', DENIED]);
    expect(out.code, out.stderr).toBe(EXIT.config);
    expect(out.stderr).toMatch(/^pifleet-agent: provisioning refused: RegisterThing 403 AccessDenied: .+$/m);
    expect(out.stderr).toContain(`hint: check the template and its pre-provisioning hook; the parameters sent: `);
    expect(out.stderr).toContain(`SerialNumber="${d.serial}"`);
    expect(readFileSync(d.configFile, 'utf8')).toBe(before);
    expect(existsSync(d.certFile)).toBe(false);
    expect(existsSync(d.keyFile)).toBe(false);
  });

  it('a claim key that is not the claim certificate’s: exit 78 naming provisioning.claimKeyFile, before connecting', async () => {
    const d = device('wrong-claim-key', { serialInConfig: true });
    const otherKey = path.join(d.dir, 'other.key');
    writeFileSync(otherKey, await otherKeyPem(), { mode: 0o600 });
    const out = await run(['provision', '--config', d.configFile, '--claim-key', otherKey]);
    expect(out.code, out.stderr).toBe(EXIT.config);
    expect(out.stderr).toMatch(/provisioning\.claimKeyFile: .*not the private key of/);
  });

  it('killed (SIGKILL) at any moment, it leaves the old state or the new one, and the next run finishes', async () => {
    /** Either not provisioned (no certificate) or wholly: the config names the thing and the key is the certificate's. */
    const consistent = (d: Device) => {
      const config = configOf(d); // parses: never half-written
      if (!existsSync(d.certFile)) return 'old';
      expect(config.thingName).toBe(`pi-${d.serial}`);
      const cert = new X509Certificate(readFileSync(d.certFile, 'utf8'));
      expect(cert.checkPrivateKey(createPrivateKey(readFileSync(d.keyFile, 'utf8')))).toBe(true);
      expect(mode(d.keyFile)).toBe(0o600);
      return 'new';
    };
    const launch = (d: Device) =>
      // The source entry, one process: the bin's launcher runs the agent in a child a SIGKILL would miss.
      launchBin(AGENT_SOURCE, { args: ['provision', '--config', d.configFile], cwd: REPO });
    // One whole run, timed: the kills fall at fractions of it, wherever this machine spends its time
    // (a run took 2.3-2.7 s here; kills at these fractions left both states, before and after the store).
    const timed = device('killed-timed', { serialInConfig: true });
    const started = Date.now();
    const first = launch(timed);
    expect((await first.exited).code, first.stderr()).toBe(EXIT.ok);
    const runMs = Date.now() - started;
    for (const fraction of [0.6, 0.8, 0.9, 0.97]) {
      const d = device(`killed-${Math.round(fraction * 100)}`, { serialInConfig: true });
      const bin = launch(d);
      await new Promise((resolve) => setTimeout(resolve, Math.round(runMs * fraction)));
      bin.child.kill('SIGKILL');
      await bin.exited;
      consistent(d);
      // The next start finishes what the killed one began, or finds it done.
      const again = launch(d);
      expect((await again.exited).code, again.stderr()).toBe(EXIT.ok);
      expect(consistent(d)).toBe('new');
    }
  });

  it('--csr with --create-keys, and a --param without "=", are usage errors (64)', async () => {
    const d = device('usage');
    expect((await run(['provision', '--config', d.configFile, '--csr', '--create-keys'])).code).toBe(EXIT.usage);
    expect((await run(['provision', '--config', d.configFile, '--param', 'SerialNumber'])).code).toBe(EXIT.usage);
  });

  it('a broker that is down at first: it keeps trying, and provisions once the broker is reachable', async () => {
    const relay = await startRelay(core.info.mqtt.port);
    relay.down();
    try {
      const d = device('late-broker', { port: relay.port, serialInConfig: true });
      const bin = launchBin(BINS.agent, { args: ['provision', '--config', d.configFile, '--json'], cwd: dir });
      // Refused connections for a while (the transport's backoff), then the network comes up.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      expect(bin.child.exitCode).toBe(null);
      relay.up();
      const exit = await bin.exited;
      expect(exit.code, bin.stderr()).toBe(EXIT.ok);
      expect(JSON.parse(bin.stdout())).toMatchObject({ ok: true, status: 'provisioned', thingName: `pi-${d.serial}` });
    } finally {
      await relay.close();
    }
  });

  it('a broker that never comes: exit 69 after the timeout, with the last failure', async () => {
    const relay = await startRelay(core.info.mqtt.port);
    relay.down();
    try {
      const d = device('no-broker', { port: relay.port, serialInConfig: true });
      const out = await run(['provision', '--config', d.configFile, '--timeout', '10', '--json']);
      expect(out.code, out.stderr).toBe(EXIT.unavailable);
      // --json: the failure on stdout as one JSON object, for scripts.
      expect(JSON.parse(out.stdout)).toEqual({
        ok: false,
        errorCode: 'PROVISIONING_TIMEOUT',
        reason: expect.stringMatching(
          /^provisioning did not finish within 10 s \(connecting to 127\.0\.0\.1:\d+; last failure: /,
        ),
        hint: expect.stringMatching(/provisioning\.timeoutSeconds/),
      });
      expect(existsSync(d.keyFile)).toBe(false);
    } finally {
      await relay.close();
    }
  });
});

describe('pifleet-agent run stopped while it provisions', () => {
  it('SIGTERM while the broker is unreachable ends it at once (exit 0), with nothing written', async () => {
    const relay = await startRelay(core.info.mqtt.port);
    relay.down();
    try {
      const d = device('stopped', { port: relay.port, serialInConfig: true });
      const before = readFileSync(d.configFile, 'utf8');
      const agent = launchBin(BINS.agent, { args: ['run', '--config', d.configFile], cwd: dir });
      await agent.waitForLine((l) => l.includes('not provisioned yet'), 20_000, 'provisioning to start');
      const exit = await agent.stop('SIGTERM', 10_000);
      expect(exit.code, agent.output()).toBe(EXIT.ok);
      expect(readFileSync(d.configFile, 'utf8')).toBe(before);
      expect(existsSync(d.keyFile)).toBe(false);
    } finally {
      await relay.close();
    }
  });
});

describe('a device provisioned by claim, then run on simulated hardware', () => {
  it('publishes telemetry as its new thing, stored by the core under that name', async () => {
    const d = device('telemetry', {
      serialInConfig: true,
      extra: {
        hardware: 'simulated',
        sensors: [{ id: 'env', driver: 'bme280', address: SIM_ADDRESSES.bme280, intervalMs: 200 }],
        batch: { maxAgeMs: 1_000 },
      },
    });
    const bin = launchBin(BINS.agent, { args: ['provision', '--config', d.configFile], cwd: dir });
    expect((await bin.exited).code, bin.stderr()).toBe(EXIT.ok);
    const thingName = `pi-${d.serial}`;
    // `pifleet-sim agent`: the agent's runtime with simulated chips, on the config provisioning wrote.
    const agent = launchSimAgent(d.configFile);
    try {
      expect(await waitForStored(core, thingName, 3, 20_000)).toBeGreaterThanOrEqual(3);
    } finally {
      await agent.stop('SIGTERM');
    }
  });
});

describe('pifleet-agent run on a device not provisioned yet', () => {
  it('provisions first, then runs as the new thing: its shadow and its retained online status', async () => {
    const d = device('first-boot', { serialInConfig: true });
    const thingName = `pi-${d.serial}`;
    const statuses: string[] = [];
    const off = await core.core.services.broker.bus.subscribe(appTopics.status(thingName), (m) => {
      statuses.push(Buffer.from(m.payload).toString());
    });
    const agent = launchBin(BINS.agent, { args: ['run', '--config', d.configFile], cwd: dir, name: thingName });
    try {
      await waitForShadow(core, thingName, (s) => s.state.reported?.logLevel === 'info', 30_000);
      await until(() => statuses.some((s) => JSON.parse(s).state === 'online'), {
        within: 10_000,
        what: 'the online status',
      });
      expect(configOf(d).thingName).toBe(thingName);
    } finally {
      agent.child.kill('SIGTERM');
      await agent.exited;
      await off();
    }
  });
});

/** A private key of another pair (not the claim certificate's). */
async function otherKeyPem(): Promise<string> {
  const { generateKeyPairSync } = await import('node:crypto');
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    .privateKey.export({ format: 'pem', type: 'sec1' })
    .toString();
}
