import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CreateJobCommand, DescribeJobExecutionCommand } from '@aws-sdk/client-iot';
import {
  type AgentRuntime,
  type AwsIotTransport,
  createAgentRuntime,
  createIotJobsService,
  createSystemClock,
  createTopicJobsService,
  JobsRejectedError,
  type JobsService,
  loadConfig,
  type RebootPort,
  type RuntimeTransport,
} from '@pifleet/device-agent';
import { configDocument, type MqttProtocol, rebootDocument } from '@pifleet/protocol';
import { type DeviceFiles, provisionDevice, type RunningCore, until } from '@pifleet/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { coreForFile } from './suite-core.js';

/**
 * The agent's job runner against the local core's jobs service: jobs created with the real
 * `@aws-sdk/client-iot` CreateJob, executed by a real agent runtime over the device SDK's
 * IotJobsClientv2 (MQTT 5 and 3.1.1) and over the reserved topics with mqtt.js, the execution's
 * end read back with DescribeJobExecution.
 */

let core: RunningCore;
let dir: string;
const runtimes: AgentRuntime[] = [];
coreForFile(
  'e2e-agent-jobs',
  (s) => {
    core = s.core;
    dir = s.dir;
  },
  async () => {
    for (const r of runtimes.splice(0)) await r.stop().catch(() => undefined);
  },
);
afterAll(async () => {
  for (const r of runtimes.splice(0)) await r.stop().catch(() => undefined);
});

const CASES: { name: string; transport: 'crt' | 'mqtt'; protocol: MqttProtocol }[] = [
  { name: 'device SDK, MQTT 5', transport: 'crt', protocol: '5' },
  { name: 'device SDK, MQTT 3.1.1', transport: 'crt', protocol: '3.1.1' },
  { name: 'mqtt.js topics, MQTT 5', transport: 'mqtt', protocol: '5' },
];

let seq = 0;
const nextName = (prefix: string) => {
  seq += 1;
  return `${prefix}-${seq}`;
};

function fakeReboot(bootId: string): RebootPort & { reboots: number } {
  return {
    reboots: 0,
    async reboot() {
      this.reboots += 1;
    },
    bootId: () => bootId,
  };
}

async function agentFor(
  files: DeviceFiles,
  c: (typeof CASES)[number],
  options: { allowReboot?: boolean; reboot?: RebootPort; stateDir?: string } = {},
): Promise<AgentRuntime> {
  const stateDir = options.stateDir ?? path.join(dir, files.thingName);
  const overlayFile = path.join(stateDir, 'config-overlay.json');
  const loaded = loadConfig({
    ...(existsSync(overlayFile) ? { overlayText: readFileSync(overlayFile, 'utf8') } : {}),
    fileText: JSON.stringify({
      thingName: files.thingName,
      endpoint: core.info.mqtt.host,
      port: core.info.mqtt.port,
      certFile: files.certFile,
      keyFile: files.keyFile,
      caFile: files.caFile,
      hardware: 'none',
      mqtt: { protocol: c.protocol, reconnectMinMs: 100, reconnectMaxMs: 1_000 },
      outbox: { path: path.join(stateDir, 'outbox.db') },
      jobs: { allowReboot: options.allowReboot ?? false, requestTimeoutMs: 5_000 },
      shutdownTimeoutMs: 500,
    }),
  });
  if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
  const runtime = createAgentRuntime({
    config: loaded.value,
    clock: createSystemClock(),
    transport: c.transport as RuntimeTransport,
    ...(options.reboot ? { jobs: { reboot: options.reboot } } : {}),
  });
  runtimes.push(runtime);
  await runtime.start();
  await until(() => runtime.transport?.isConnected === true, { within: 10_000, what: 'agent connected' });
  return runtime;
}

async function stop(runtime: AgentRuntime): Promise<void> {
  runtimes.splice(runtimes.indexOf(runtime), 1);
  await runtime.stop();
}

async function createJob(thingName: string, jobId: string, document: unknown): Promise<void> {
  const thingArn = `arn:aws:iot:${core.info.region}:${core.info.accountId}:thing/${thingName}`;
  await core.iot.send(new CreateJobCommand({ jobId, targets: [thingArn], document: JSON.stringify(document) }));
}

async function execution(thingName: string, jobId: string) {
  const r = await core.iot.send(new DescribeJobExecutionCommand({ thingName, jobId }));
  return r.execution;
}

async function ended(thingName: string, jobId: string) {
  let last: Awaited<ReturnType<typeof execution>>;
  await until(
    async () => {
      last = await execution(thingName, jobId);
      return last?.status !== undefined && !['QUEUED', 'IN_PROGRESS'].includes(last.status);
    },
    { within: 20_000, what: `${jobId} ended` },
  );
  return last;
}

describe.each(CASES)('agent jobs over $name', (c) => {
  it('applies a config job, keeps it for the next start, and REJECTS an invalid one naming each key', async () => {
    const thing = nextName(`jobs-cfg-${c.transport}-${c.protocol.replaceAll('.', '')}`);
    const files = await provisionDevice(core, thing, dir);
    const runtime = await agentFor(files, c);
    await createJob(thing, `${thing}-ok`, configDocument({ logLevel: 'debug', batch: { maxReadings: 7 } }));
    const ok = await ended(thing, `${thing}-ok`);
    expect(ok?.status).toBe('SUCCEEDED');
    expect(ok?.statusDetails?.detailsMap).toMatchObject({
      operation: 'pifleet.config',
      changed: 'batch.maxReadings, logLevel',
    });
    expect(runtime.status().actual).toMatchObject({ logLevel: 'debug', batch: { maxReadings: 7 } });

    await createJob(
      thing,
      `${thing}-bad`,
      configDocument({ sampling: { ghost: 5 }, batch: { maxBytes: 1 }, colour: 'red', logLevel: 'warn' }),
    );
    const bad = await ended(thing, `${thing}-bad`);
    expect(bad?.status).toBe('REJECTED');
    expect(bad?.statusDetails?.detailsMap?.rejected?.split(', ').sort()).toEqual(
      ['batch.maxBytes', 'colour', 'sampling.ghost'].sort(),
    );
    expect(runtime.status().actual.logLevel).toBe('debug');
    await stop(runtime);

    // The config directory is read-only on a device: the overlay in the state directory keeps it.
    const again = await agentFor(files, c);
    expect(again.status().actual).toMatchObject({ logLevel: 'debug', batch: { maxReadings: 7 } });
    await stop(again);
  });

  it('refuses a reboot unless allowed; allowed, reports rebooting, and SUCCEEDS after the restart', async () => {
    const thing = nextName(`jobs-rb-${c.transport}-${c.protocol.replaceAll('.', '')}`);
    const files = await provisionDevice(core, thing, dir);
    const refusing = await agentFor(files, c);
    await createJob(thing, `${thing}-no`, rebootDocument());
    const no = await ended(thing, `${thing}-no`);
    expect(no?.status).toBe('REJECTED');
    expect(no?.statusDetails?.detailsMap?.detail).toContain('jobs.allowReboot');
    await stop(refusing);

    const before = fakeReboot('boot-before');
    const rebooting = await agentFor(files, c, { allowReboot: true, reboot: before });
    await createJob(thing, `${thing}-yes`, rebootDocument('maintenance'));
    await until(() => before.reboots === 1, { within: 20_000, what: 'reboot asked for' });
    await until(async () => (await execution(thing, `${thing}-yes`))?.statusDetails?.detailsMap?.step === 'rebooting', {
      within: 10_000,
      what: 'rebooting reported',
    });
    await stop(rebooting); // the reboot ends the process

    const after = fakeReboot('boot-after');
    const back = await agentFor(files, c, { allowReboot: true, reboot: after });
    const yes = await ended(thing, `${thing}-yes`);
    expect(yes).toMatchObject({ status: 'SUCCEEDED', statusDetails: { detailsMap: { step: 'rebooted' } } });
    expect(after.reboots).toBe(0);
    await stop(back);
  });

  it('REJECTS an unknown operation and hostile documents with the reason', async () => {
    const thing = nextName(`jobs-doc-${c.transport}-${c.protocol.replaceAll('.', '')}`);
    const files = await provisionDevice(core, thing, dir);
    const runtime = await agentFor(files, c);
    const docs: [string, unknown, string][] = [
      ['unknown', { operation: 'firmware.flash' }, 'unknown operation "firmware.flash"'],
      ['proto', JSON.parse('{"operation":"pifleet.reboot","__proto__":{"polluted":true}}'), 'Unrecognized key'],
      ['deep', { operation: 'pifleet.config', config: nest(20) }, 'levels deep'],
    ];
    for (const [suffix, doc, reason] of docs) {
      await createJob(thing, `${thing}-${suffix}`, doc);
      const e = await ended(thing, `${thing}-${suffix}`);
      expect(e?.status, suffix).toBe('REJECTED');
      expect(e?.statusDetails?.detailsMap?.detail, suffix).toContain(reason);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await stop(runtime);
  });
});

function nest(levels: number): Record<string, unknown> {
  let d: Record<string, unknown> = { leaf: 1 };
  for (let i = 0; i < levels; i += 1) d = { a: d };
  return d;
}

describe.each(CASES)('jobs client adapter over $name', (c) => {
  it('start-next, update with expectedVersion (VersionMismatch carries the state), describe, notify-next', async () => {
    const thing = nextName(`jobs-port-${c.transport}-${c.protocol.replaceAll('.', '')}`);
    const files = await provisionDevice(core, thing, dir);
    // An agent with jobs off: the test drives the adapter on the agent's own connection.
    const stateDir = path.join(dir, thing);
    const loaded = loadConfig({
      fileText: JSON.stringify({
        thingName: thing,
        endpoint: core.info.mqtt.host,
        port: core.info.mqtt.port,
        certFile: files.certFile,
        keyFile: files.keyFile,
        caFile: files.caFile,
        hardware: 'none',
        mqtt: { protocol: c.protocol },
        outbox: { path: path.join(stateDir, 'outbox.db') },
        jobs: { enabled: false },
      }),
    });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.issues));
    const runtime = createAgentRuntime({
      config: loaded.value,
      clock: createSystemClock(),
      transport: c.transport as RuntimeTransport,
    });
    runtimes.push(runtime);
    await runtime.start();
    await until(() => runtime.transport?.isConnected === true, { within: 10_000, what: 'connected' });
    const transport = runtime.transport;
    if (!transport) throw new Error('no transport');
    const common = { thingName: thing, requestTimeoutMs: 5_000, clock: createSystemClock() };
    const native = c.transport === 'crt' ? (transport as AwsIotTransport).native() : undefined;
    const service: JobsService = native
      ? createIotJobsService({ ...common, native })
      : createTopicJobsService({ ...common, transport });
    try {
      const notified: (string | undefined)[] = [];
      service.onNextChanged((e) => notified.push(e?.jobId));
      expect(await service.startNext()).toBeUndefined();
      await createJob(thing, `${thing}-a`, configDocument({ logLevel: 'debug' }));
      await until(() => notified.includes(`${thing}-a`), { within: 10_000, what: 'notify-next' });
      const started = await service.startNext();
      expect(started).toMatchObject({
        jobId: `${thing}-a`,
        status: 'IN_PROGRESS',
        jobDocument: { operation: 'pifleet.config', config: { logLevel: 'debug' } },
      });
      const version = started?.versionNumber ?? -1;
      const progressed = await service.update(`${thing}-a`, {
        status: 'IN_PROGRESS',
        statusDetails: { step: 'one' },
        expectedVersion: version,
      });
      expect(progressed).toMatchObject({ status: 'IN_PROGRESS', versionNumber: version + 1 });
      const mismatch = await service.update(`${thing}-a`, { status: 'SUCCEEDED', expectedVersion: version }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(mismatch).toBeInstanceOf(JobsRejectedError);
      expect(mismatch).toMatchObject({
        serviceCode: 'VersionMismatch',
        executionState: { status: 'IN_PROGRESS', versionNumber: version + 1, statusDetails: { step: 'one' } },
      });
      expect(await service.describe(`${thing}-a`)).toMatchObject({ status: 'IN_PROGRESS', versionNumber: version + 1 });
      expect(await service.describe('no-such-job')).toBeUndefined();
      await service.update(`${thing}-a`, { status: 'SUCCEEDED', expectedVersion: version + 1 });
      await until(() => notified.at(-1) === undefined && notified.length >= 2, {
        within: 10_000,
        what: 'notify-next: none left',
      });
      expect((await execution(thing, `${thing}-a`))?.status).toBe('SUCCEEDED');
    } finally {
      service.close();
      await stop(runtime);
    }
  });
});
