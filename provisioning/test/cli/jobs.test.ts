import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  AddThingToThingGroupCommand,
  CreateThingCommand,
  CreateThingGroupCommand,
  DescribeJobCommand,
  GetJobDocumentCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type InProcessCore, localProfileCredentials, sdkClients, startInProcessCore } from '@pifleet/cloud';
import {
  checkReleaseArtifact,
  EXIT,
  JOB_OPERATIONS,
  parseJobDocument,
  releaseFileNames,
  verifyReleaseManifest,
} from '@pifleet/protocol';
import { removeDir, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { KEY_FILES } from '../../src/core/release-keys.js';
import type { Clock } from '../../src/ports/clock.js';
import { cli, sink } from '../helpers.js';

/**
 * `release upload` and `jobs …` against the in-process local core: the real `@aws-sdk/client-s3`
 * and `@aws-sdk/client-iot` the CLI uses, the core's S3 subset, jobs service and presigner. The
 * device side is driven through the core's jobs service (its MQTT and HTTP transports have their
 * own suites), and reads the release from the presigned URL as a device does.
 */

let dir: string;
let work: string;
let core: InProcessCore;
/** The test's own control-plane client: the core enforces IoT's API rates, so it retries a throttled call as the SDK does. */
let iot: IoTClient;
let n = 0;
beforeAll(async () => {
  dir = tempDir('jobs-cli-core');
  work = tempDir('jobs-cli-work');
  core = await startInProcessCore(dir);
  iot = sdkClients(core.info, 8).iot;
});
afterAll(async () => {
  iot?.destroy();
  await core?.stop();
  if (dir) removeDir(dir);
  if (work) removeDir(work);
});

const fresh = () => {
  const d = path.join(work, `w${++n}`);
  fs.mkdirSync(d);
  return d;
};
const local = () => ['--local', dir];
/**
 * The CLI against the core, which enforces IoT's API rates: a run that meets them logs a retry
 * line (JSON, `retrying`) before it goes on. Those lines are taken out of `stderr` (`raw` keeps
 * them) so an assertion sees what the run said; a run of this file meets them now and then.
 */
const run = async (cwd: string, ...args: string[]) => {
  const r = await cli([...local(), ...args], { cwd });
  const kept = r.stderr.split('\n').filter((line) => {
    if (!line.startsWith('{')) return true;
    return (JSON.parse(line) as { msg?: string }).msg !== 'retrying';
  });
  return { ...r, stderr: kept.join('\n'), raw: r.stderr };
};
const json = <T>(s: string) => JSON.parse(s) as T;
const device = () => core.core.services.jobs;
const thingArn = (t: string) => `arn:aws:iot:${core.info.region}:${core.info.accountId}:thing/${t}`;
const makeThings = async (...names: string[]) => {
  for (const thingName of names) await iot.send(new CreateThingCommand({ thingName }));
  return names;
};
const describeJob = async (jobId: string) => {
  const { job } = await iot.send(new DescribeJobCommand({ jobId }));
  if (!job) throw new Error('no job');
  return job;
};

/** A directory shaped like the agent's `pnpm deploy` output. */
function agentDir(root: string): string {
  fs.mkdirSync(path.join(root, 'bin'), { recursive: true });
  fs.writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: '@pifleet/device-agent' }));
  fs.writeFileSync(path.join(root, 'bin/pifleet-agent.js'), 'console.log("agent")\n');
  return root;
}

describe('a release from build to the device: keys, build, upload, agent-update job, presigned download', () => {
  let cwd: string;
  let url: string;
  let manifestFile: string;
  let publicPem: string;
  const names = releaseFileNames('2.1.0');

  beforeAll(async () => {
    cwd = fresh();
    expect((await cli(['keys', 'create'], { cwd })).code).toBe(EXIT.ok);
    publicPem = fs.readFileSync(path.join(cwd, '.pifleet/keys', KEY_FILES.publicKey), 'utf8');
    const built = await cli(
      [
        'release',
        'build',
        '--from',
        agentDir(path.join(cwd, 'agent')),
        '--version',
        '2.1.0',
        '--key',
        path.join(cwd, '.pifleet/keys', KEY_FILES.privateKey),
      ],
      { cwd },
    );
    expect(built.code).toBe(EXIT.ok);
    manifestFile = path.join(cwd, '.pifleet/releases', names.manifest);
  });

  it('uploads the three files with client-s3 (making the local bucket) and prints the S3 URL a job names', async () => {
    const files = Object.values(names).map((f) => `.pifleet/releases/${f}`);
    const r = await run(cwd, 'release', 'upload', ...files, '--bucket', 'pifleet-artifacts', '--json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    const out = json<{ url: string; objects: { key: string; url: string; uploaded: boolean }[] }>(r.stdout);
    url = out.url;
    expect(url).toBe(`https://s3.${core.info.region}.amazonaws.com/pifleet-artifacts/releases/${names.tarball}`);
    expect(out.objects.map((o) => [o.key, o.uploaded])).toEqual(
      Object.values(names).map((f) => [`releases/${f}`, true]),
    );

    // The bytes are in the local store, as client-s3 reads them back.
    const s3 = new S3Client({
      region: core.info.region,
      endpoint: core.info.http,
      credentials: localProfileCredentials(core.info),
      forcePathStyle: true,
    });
    try {
      const got = await s3.send(
        new GetObjectCommand({ Bucket: 'pifleet-artifacts', Key: `releases/${names.tarball}` }),
      );
      const bytes = Buffer.from(
        await (got.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
      );
      expect(bytes.equals(fs.readFileSync(path.join(cwd, '.pifleet/releases', names.tarball)))).toBe(true);
    } finally {
      s3.destroy();
    }
  });

  it('a re-run leaves the same bytes as they are; other bytes under a published key are refused (65)', async () => {
    const files = Object.values(names).map((f) => `.pifleet/releases/${f}`);
    const again = await run(cwd, 'release', 'upload', ...files, '--bucket', 'pifleet-artifacts');
    expect(again.code).toBe(EXIT.ok);
    expect(again.stdout).toContain(`unchanged s3://pifleet-artifacts/releases/${names.tarball}`);

    const other = path.join(fresh(), names.tarball);
    fs.writeFileSync(other, 'other bytes');
    const r = await run(cwd, 'release', 'upload', other, '--bucket', 'pifleet-artifacts');
    expect(r.code).toBe(EXIT.dataError);
    expect(r.stderr).toBe(
      `pifleet: s3://pifleet-artifacts/releases/${names.tarball} exists with other bytes (hint: a published release is never replaced: build a new --version)\n`,
    );
  });

  it.each<[string, () => string, RegExp]>([
    [
      'a URL with no object',
      () => url.replace(names.tarball, 'pifleet-agent-9.9.9.tar.gz'),
      /^pifleet: no object at https:\/\/s3\.[a-z0-9-]+\.amazonaws\.com\/pifleet-artifacts\/releases\/pifleet-agent-9\.9\.9\.tar\.gz \(hint: upload the release first: pifleet --local .* release upload TARBALL MANIFEST SIGNATURE --bucket pifleet-artifacts\)$/,
    ],
    [
      'a URL of another object than the manifest’s tarball',
      () => url.replace(names.tarball, names.manifest),
      /^pifleet: the object at .*\.manifest\.json is \d+ bytes; the manifest names \d+ \(hint: give the URL of the tarball this manifest was built with\)$/,
    ],
  ])('refuses %s with exit 65, creating no job', async (_label, badUrl, message) => {
    await makeThings('upd-x');
    const jobId = `bad-url-${++n}`;
    const r = await run(
      cwd,
      'jobs',
      'create',
      '--type',
      'agent-update',
      '--things',
      'upd-x',
      '--release',
      manifestFile,
      '--url',
      badUrl(),
      '--job-id',
      jobId,
    );
    expect(r.code).toBe(EXIT.dataError);
    expect(r.stderr.trim()).toMatch(message);
    expect(await iot.send(new DescribeJobCommand({ jobId })).catch((e: Error) => e.name)).toBe(
      'ResourceNotFoundException',
    );
  });

  it('--public-key: a release the devices’ key does not verify is refused (65) before any job', async () => {
    const other = fresh();
    expect((await cli(['keys', 'create', '--out', '.'], { cwd: other })).code).toBe(EXIT.ok);
    await makeThings('upd-k');
    const args = [
      'jobs',
      'create',
      '--type',
      'agent-update',
      '--things',
      'upd-k',
      '--release',
      manifestFile,
      '--url',
      url,
    ];
    const refused = await run(cwd, ...args, '--public-key', path.join(other, KEY_FILES.publicKey), '--job-id', 'key-1');
    expect(refused.code).toBe(EXIT.dataError);
    expect(refused.stderr).toMatch(
      /^pifleet: devices trusting release-signing\.pub\.pem would refuse this release: release is signed by key [0-9a-f]{16}, which this device does not trust/,
    );
    expect(await iot.send(new DescribeJobCommand({ jobId: 'key-1' })).catch((e: Error) => e.name)).toBe(
      'ResourceNotFoundException',
    );
    const own = path.join(cwd, '.pifleet/keys', KEY_FILES.publicKey);
    const accepted = await run(cwd, ...args, '--public-key', own, '--job-id', 'key-2');
    expect(accepted.code).toBe(EXIT.ok);
  });

  it('creates the job with its configurations; the device gets a presigned URL to the bytes the signed manifest names', async () => {
    await makeThings('upd-1', 'upd-2');
    const r = await run(
      cwd,
      'jobs',
      'create',
      '--type',
      'agent-update',
      '--things',
      'upd-1,upd-2',
      '--release',
      path.relative(cwd, manifestFile),
      '--url',
      url,
      '--rollout-per-minute',
      '100',
      '--abort-failure-percent',
      '50',
      '--abort-min-executed',
      '2',
      '--in-progress-timeout-minutes',
      '30',
      '--retries',
      '1',
      '--job-id',
      'update-2-1-0',
      '--json',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    expect(json<{ jobId: string; version: string }>(r.stdout)).toMatchObject({
      jobId: 'update-2-1-0',
      version: '2.1.0',
    });

    const job = await describeJob('update-2-1-0');
    expect(job).toMatchObject({
      status: 'IN_PROGRESS',
      targetSelection: 'SNAPSHOT',
      targets: [thingArn('upd-1'), thingArn('upd-2')],
      jobExecutionsRolloutConfig: { maximumPerMinute: 100 },
      abortConfig: {
        criteriaList: [{ failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 50, minNumberOfExecutedThings: 2 }],
      },
      timeoutConfig: { inProgressTimeoutInMinutes: 30 },
      jobExecutionsRetryConfig: { criteriaList: [{ failureType: 'ALL', numberOfRetries: 1 }] },
      presignedUrlConfig: {
        roleArn: `arn:aws:iam::${core.info.accountId}:role/pifleet-local-presign`,
        expiresInSec: 3600,
      },
    });
    const { document } = await iot.send(new GetJobDocumentCommand({ jobId: 'update-2-1-0' }));
    expect(document).toContain(`\${aws:iot:s3-presigned-url:${url}}`);

    // The device's view: the placeholder replaced, the document valid, the manifest signed, the bytes matching.
    const execution = await device().startNext('upd-1', {});
    const parsed = parseJobDocument(execution?.jobDocument ?? '');
    if (!parsed.ok || parsed.document.operation !== JOB_OPERATIONS.agentUpdate) throw new Error(JSON.stringify(parsed));
    const { release, version } = parsed.document;
    expect(version).toBe('2.1.0');
    expect(release.url.startsWith(`${core.info.http}/`)).toBe(true);
    const verified = verifyReleaseManifest(
      Buffer.from(release.manifest, 'base64'),
      Buffer.from(release.signature, 'base64'),
      [publicPem],
      version,
    );
    if (!verified.ok) throw new Error(verified.rejection.message);
    const response = await fetch(release.url);
    expect(response.status).toBe(200);
    const bytes = Buffer.from(await response.arrayBuffer());
    expect(
      checkReleaseArtifact(verified.manifest, {
        sha256: createHash('sha256').update(bytes).digest('hex'),
        size: bytes.length,
      }),
    ).toBeUndefined();
  });
});

describe('jobs create: config and reboot, things and groups', () => {
  it('a config job carries the validated settings; a group target includes its things', async () => {
    const cwd = fresh();
    await makeThings('cfg-1');
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'cfg-lab' }));
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'cfg-lab', thingName: 'cfg-1' }));
    fs.writeFileSync(path.join(cwd, 'settings.json'), '{"sampling":{"bme280":5000},"logLevel":"debug"}');
    const r = await run(
      cwd,
      'jobs',
      'create',
      '--type',
      'config',
      '--group',
      'cfg-lab',
      '--config',
      '@settings.json',
      '--continuous',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    const jobId = /^created job (\S+): config for group cfg-lab \(CONTINUOUS\)$/m.exec(r.stdout)?.[1];
    expect(jobId).toMatch(/^config-\d{8}T\d{6}-[0-9a-f]{6}$/);
    expect(r.stdout).toContain(`follow it: pifleet --local ${dir} jobs describe ${jobId} --watch`);
    const execution = await device().startNext('cfg-1', {});
    expect(execution?.jobId).toBe(jobId);
    expect(JSON.parse(execution?.jobDocument ?? '')).toEqual({
      operation: JOB_OPERATIONS.config,
      config: { sampling: { bme280: 5000 }, logLevel: 'debug' },
    });
  });

  it.each<[string, string[], RegExp]>([
    [
      'an unknown thing',
      ['--things', 'nobody'],
      /^pifleet: thing nobody not found \(hint: pifleet --local .* things list\)$/,
    ],
    [
      'an unknown group',
      ['--group', 'nogroup'],
      /^pifleet: thing group nogroup not found \(hint: pifleet --local .* groups list\)$/,
    ],
  ])('refuses %s with exit 65, creating no job', async (_label, target, message) => {
    const r = await run(fresh(), 'jobs', 'create', '--type', 'reboot', ...target, '--job-id', `never-${n}`);
    expect(r.code).toBe(EXIT.dataError);
    expect(r.stderr.trim()).toMatch(message);
    expect(await iot.send(new DescribeJobCommand({ jobId: `never-${n}` })).catch((e: Error) => e.name)).toBe(
      'ResourceNotFoundException',
    );
  });

  it('refuses a job id that exists with exit 65 and a hint', async () => {
    await makeThings('dup-1');
    const cwd = fresh();
    expect((await run(cwd, 'jobs', 'create', '--type', 'reboot', '--things', 'dup-1', '--job-id', 'dup')).code).toBe(
      EXIT.ok,
    );
    const r = await run(cwd, 'jobs', 'create', '--type', 'reboot', '--things', 'dup-1', '--job-id', 'dup', '--json');
    expect(r.code).toBe(EXIT.dataError);
    expect(json<{ error: unknown }>(r.stderr).error).toMatchObject({ code: 'JOB_EXISTS', message: 'job dup exists' });
  });
});

/**
 * A CLI clock whose every poll of `--watch` (a sleep of the poll interval) is a step the test takes
 * (a device acting) before the next poll. Other sleeps are a retry's backoff after IoT's API rates
 * throttled a call: the core enforces them in real time, so the backoff is waited for real.
 */
const backoff = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function steppingClock(steps: (() => Promise<void>)[], intervalMs = 5_000): Clock & { slept: number[] } {
  let now = Date.now();
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    async sleep(ms) {
      now += ms;
      if (ms !== intervalMs) return backoff(ms);
      slept.push(ms);
      await steps.shift()?.();
    },
  };
}

async function watchRun(argv: string[], clock: Clock, isTTY: boolean) {
  const stdout = sink();
  const stderr = sink();
  const code = await runCli([...local(), ...argv], { stdout, stderr, cwd: fresh(), clock, isTTY, random: () => 0.5 });
  // A retry line (IoT's API rates met) may come between two progress writes: taken out, as in run().
  const progress = stderr.text.replace(/\{[^\n]*"msg":"retrying"[^\n]*\}\n/g, '');
  return { code, stdout: stdout.text, stderr: progress };
}

describe('jobs describe --watch, list and cancel', () => {
  it('follows a job to COMPLETED with a line per change; a failed execution makes the watch exit 1', async () => {
    const [a, b] = await makeThings('w-1', 'w-2');
    const cwd = fresh();
    expect(
      (await run(cwd, 'jobs', 'create', '--type', 'reboot', '--things', `${a},${b}`, '--job-id', 'watch-1')).code,
    ).toBe(0);
    const finish = (thing: string, status: 'SUCCEEDED' | 'FAILED') => async () => {
      await device().startNext(thing, {});
      await device().update(thing, 'watch-1', {
        status,
        ...(status === 'FAILED' ? { statusDetails: { step: 'health', detail: 'not connected within 120 s' } } : {}),
      });
    };
    const clock = steppingClock(
      [finish(a as string, 'SUCCEEDED'), async () => undefined, finish(b as string, 'FAILED')],
      2_000,
    );
    const r = await watchRun(['jobs', 'describe', 'watch-1', '--watch', '--interval', '2'], clock, false);
    expect(clock.slept).toEqual([2000, 2000, 2000]);
    expect(r.stderr.split('\n')).toEqual([
      'watch-1 IN_PROGRESS: succeeded 0, failed 0, rejected 0, timed out 0, in progress 0, queued 2, canceled 0, removed 0',
      'watch-1 IN_PROGRESS: succeeded 1, failed 0, rejected 0, timed out 0, in progress 0, queued 1, canceled 0, removed 0',
      'watch-1 COMPLETED: succeeded 1, failed 1, rejected 0, timed out 0, in progress 0, queued 0, canceled 0, removed 0',
      `pifleet: job watch-1 completed with 1 failed execution (hint: pifleet --local ${dir} jobs describe watch-1 --executions)`,
      '',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^job watch-1: COMPLETED \(SNAPSHOT\)\n/);

    const shown = await run(cwd, 'jobs', 'describe', 'watch-1', '--executions');
    expect(shown.code).toBe(EXIT.ok);
    // A failed execution with the reason its device reported (DescribeJobExecution's statusDetails).
    expect(shown.stdout.split('\n')).toEqual(
      expect.arrayContaining(['  w-1  SUCCEEDED', '  w-2  FAILED  step=health detail=not connected within 120 s']),
    );
  });

  it('draws a bar redrawn in place on a terminal, and exits 0 when every execution succeeded', async () => {
    const [a] = await makeThings('tty-1');
    const cwd = fresh();
    expect(
      (await run(cwd, 'jobs', 'create', '--type', 'reboot', '--things', a as string, '--job-id', 'tty-1')).code,
    ).toBe(0);
    const clock = steppingClock([
      async () => {
        await device().startNext(a as string, {});
        await device().update(a as string, 'tty-1', { status: 'SUCCEEDED' });
      },
    ]);
    const r = await watchRun(['jobs', 'describe', 'tty-1', '--watch'], clock, true);
    expect(r.code).toBe(EXIT.ok);
    expect(r.stderr).toBe(
      '\rtty-1 [------------------------] 0/1  succeeded 0  in progress 0  queued 1\x1b[K' +
        '\rtty-1 [########################] 1/1  succeeded 1  in progress 0  queued 0  COMPLETED\x1b[K\n',
    );
  });

  it('a CONTINUOUS job: the watch stops once every execution so far finished; the job stays open', async () => {
    const [a] = await makeThings('cont-1');
    await iot.send(new CreateThingGroupCommand({ thingGroupName: 'cont-lab' }));
    await iot.send(new AddThingToThingGroupCommand({ thingGroupName: 'cont-lab', thingName: a as string }));
    const cwd = fresh();
    const created = await run(
      cwd,
      'jobs',
      'create',
      '--type',
      'reboot',
      '--group',
      'cont-lab',
      '--continuous',
      '--job-id',
      'cont-1',
    );
    expect(created.code).toBe(EXIT.ok);
    const clock = steppingClock([
      async () => {
        await device().startNext(a as string, {});
        await device().update(a as string, 'cont-1', { status: 'SUCCEEDED' });
      },
    ]);
    const r = await watchRun(['jobs', 'describe', 'cont-1', '--watch', '--json'], clock, false);
    expect(r.code).toBe(EXIT.ok);
    expect(clock.slept).toHaveLength(1);
    expect(JSON.parse(r.stdout)).toMatchObject({
      status: 'IN_PROGRESS',
      targetSelection: 'CONTINUOUS',
      counts: { succeeded: 1 },
    });
  });

  it('an interrupt ends the watch, not the job (exit 130)', async () => {
    await makeThings('int-1');
    const cwd = fresh();
    expect((await run(cwd, 'jobs', 'create', '--type', 'reboot', '--things', 'int-1', '--job-id', 'int-1')).code).toBe(
      0,
    );
    const controller = new AbortController();
    const clock: Clock = {
      now: () => Date.now(),
      // The first poll is interrupted (Ctrl-C); a retry's backoff, should one come first, is waited.
      sleep: (ms, signal) =>
        ms !== 5_000
          ? backoff(ms)
          : new Promise((_resolve, reject) => {
              signal?.addEventListener('abort', () => reject(signal.reason));
              controller.abort();
            }),
    };
    const stdout = sink();
    const stderr = sink();
    const code = await runCli([...local(), 'jobs', 'describe', 'int-1', '--watch'], {
      stdout,
      stderr,
      cwd,
      clock,
      signal: controller.signal,
    });
    expect(code).toBe(EXIT.interrupted);
    expect(stderr.text).toMatch(/pifleet: stopped watching job int-1 \(it goes on\)/);
    expect((await describeJob('int-1')).status).toBe('IN_PROGRESS');
  });

  it('lists jobs, by status', async () => {
    const cwd = fresh();
    const all = await run(cwd, 'jobs', 'list', '--json');
    expect(all.code).toBe(EXIT.ok);
    const ids = json<{ jobs: { jobId: string; status: string }[] }>(all.stdout).jobs.map((j) => j.jobId);
    expect(ids).toEqual(expect.arrayContaining(['watch-1', 'tty-1', 'update-2-1-0']));
    const done = await run(cwd, 'jobs', 'list', '--status', 'COMPLETED', '--json');
    const statuses = json<{ jobs: { jobId: string; status: string }[] }>(done.stdout).jobs;
    expect(statuses.map((j) => j.jobId)).toEqual(expect.arrayContaining(['watch-1', 'tty-1']));
    expect(new Set(statuses.map((j) => j.status))).toEqual(new Set(['COMPLETED']));
    const text = await run(cwd, 'jobs', 'list', '--status', 'COMPLETED');
    expect(text.stdout).toMatch(/^watch-1 +COMPLETED +SNAPSHOT +\d{4}-/m);
  });

  it('cancels: queued executions at once, in-progress ones only with --force; a re-run changes nothing', async () => {
    const [a, b] = await makeThings('c-1', 'c-2');
    const cwd = fresh();
    expect(
      (await run(cwd, 'jobs', 'create', '--type', 'reboot', '--things', `${a},${b}`, '--job-id', 'cancel-1')).code,
    ).toBe(0);
    await device().startNext(a as string, {});
    const first = await run(cwd, 'jobs', 'cancel', 'cancel-1', '--comment', 'wrong devices', '--json');
    expect(first.code).toBe(EXIT.ok);
    expect(json<{ status: string; counts: { inProgress: number; canceled: number } }>(first.stdout)).toMatchObject({
      status: 'CANCELED',
      counts: { inProgress: 1, canceled: 1 },
    });
    const again = await run(cwd, 'jobs', 'cancel', 'cancel-1');
    expect(again.stdout).toBe('job cancel-1 is already canceled\n');
    const forced = await run(cwd, 'jobs', 'cancel', 'cancel-1', '--force', '--json');
    expect(forced.code).toBe(EXIT.ok);
    expect(json<{ counts: { inProgress: number; canceled: number } }>(forced.stdout).counts).toMatchObject({
      inProgress: 0,
      canceled: 2,
    });
    expect(await describeJob('cancel-1')).toMatchObject({
      status: 'CANCELED',
      forceCanceled: true,
      comment: 'wrong devices',
    });
  });

  it.each<[string, string[], RegExp]>([
    [
      'describe',
      ['jobs', 'describe', 'no-such-job'],
      /^pifleet: job no-such-job not found \(hint: pifleet --local .* jobs list\)$/,
    ],
    ['cancel', ['jobs', 'cancel', 'no-such-job'], /^pifleet: job no-such-job not found/],
    [
      'cancel of a completed job',
      ['jobs', 'cancel', 'tty-1'],
      /^pifleet: job tty-1 is COMPLETED; only a job in progress can be canceled/,
    ],
  ])('%s: exit 65 with a hint', async (_label, args, message) => {
    const r = await run(fresh(), ...args);
    expect(r.code).toBe(EXIT.dataError);
    expect(r.stderr.trim()).toMatch(message);
  });

  // IoT refused these with InvalidRequestException: exit 65 and no hint, after a job lookup.
  it.each<[string, string[], RegExp]>([
    [
      'a description with a control character',
      [
        'jobs',
        'create',
        '--type',
        'reboot',
        '--things',
        'tty-a',
        '--job-id',
        'never-text',
        '--description',
        'a\u0001b',
      ],
      /^pifleet: --description must be 1 to 2028 characters without control characters, got 3 characters \(hint: /,
    ],
    [
      'a description over 2,028 characters',
      [
        'jobs',
        'create',
        '--type',
        'reboot',
        '--things',
        'tty-a',
        '--job-id',
        'never-text',
        '--description',
        'x'.repeat(2029),
      ],
      /^pifleet: --description must be 1 to 2028 characters/,
    ],
    ['a comment with a newline', ['jobs', 'cancel', 'tty-1', '--comment', 'two\nlines'], /^pifleet: --comment must be/],
    [
      'a reason code IoT refuses',
      ['jobs', 'cancel', 'tty-1', '--reason-code', 'bad code'],
      /^pifleet: --reason-code "bad code" is not a reason code \(hint: use 1-128 upper-case letters/,
    ],
  ])('%s: exit 64 with a hint, nothing sent', async (_label, args, message) => {
    const r = await run(fresh(), ...args);
    expect(r.code).toBe(EXIT.usage);
    expect(r.stderr.trim()).toMatch(message);
    expect(await iot.send(new DescribeJobCommand({ jobId: 'never-text' })).catch((e: Error) => e.name)).toBe(
      'ResourceNotFoundException',
    );
  });
});

describe('throttling', () => {
  it('ListJobs over the core’s 10 requests/s: ThrottlingException is retried with backoff, every run succeeds', async () => {
    const runs = await Promise.all(Array.from({ length: 24 }, () => run(fresh(), 'jobs', 'list', '--max', '1')));
    expect(runs.map((r) => r.code)).toEqual(runs.map(() => EXIT.ok));
    const retries = runs.flatMap((r) =>
      r.raw
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { msg: string; operation: string; errName: string }),
    );
    // 24 at once against 10/s: the core throttled some, the CLI paced them until they passed.
    expect(retries.length).toBeGreaterThan(0);
    for (const line of retries)
      expect(line).toMatchObject({ msg: 'retrying', operation: 'ListJobs', errName: 'ThrottlingException' });
  });
});

describe('release upload refusals', () => {
  it.each<[string, string[], number, RegExp]>([
    [
      'a bucket name S3 refuses',
      ['--bucket', 'Bad_Bucket'],
      EXIT.usage,
      /--bucket "Bad_Bucket" is not an S3 bucket name/,
    ],
    ['an absolute prefix', ['--bucket', 'b-1', '--prefix', '/abs'], EXIT.usage, /--prefix "\/abs" is not a key prefix/],
    [
      'a prefix with ..',
      ['--bucket', 'b-1', '--prefix', 'a/../b'],
      EXIT.usage,
      /--prefix "a\/\.\.\/b" is not a key prefix/,
    ],
  ])('%s', async (_label, args, code, message) => {
    const cwd = fresh();
    fs.writeFileSync(path.join(cwd, 'f.tar.gz'), 'x');
    const r = await run(cwd, 'release', 'upload', 'f.tar.gz', ...args);
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
  });

  it('a missing file: exit 65, nothing uploaded', async () => {
    const cwd = fresh();
    fs.writeFileSync(path.join(cwd, 'a.tar.gz'), 'x');
    const r = await run(cwd, 'release', 'upload', 'a.tar.gz', 'missing.json', '--bucket', 'refused-1');
    expect(r.code).toBe(EXIT.dataError);
    expect(r.stderr).toMatch(/cannot read .*missing\.json \(ENOENT\)/);
    expect(fs.existsSync(path.join(dir, 'artifacts', 'refused-1'))).toBe(false);
  });

  it('credentials the core does not know: S3 refuses the upload, exit 77', async () => {
    // A copy of the core's data directory whose credentials are wrong: the same endpoint, another secret.
    const copy = fresh();
    const endpoint = JSON.parse(fs.readFileSync(path.join(dir, 'endpoint.json'), 'utf8')) as Record<string, unknown>;
    const credentials = fs
      .readFileSync(path.join(dir, 'credentials'), 'utf8')
      .replace(/aws_secret_access_key\s*=\s*\S+/, 'aws_secret_access_key = wrong');
    fs.writeFileSync(path.join(copy, 'credentials'), credentials);
    fs.writeFileSync(
      path.join(copy, 'endpoint.json'),
      JSON.stringify({ ...endpoint, credentialsFile: path.join(copy, 'credentials') }),
    );
    const cwd = fresh();
    fs.writeFileSync(path.join(cwd, 'a.tar.gz'), 'x');
    const r = await cli(['--local', copy, 'release', 'upload', 'a.tar.gz', '--bucket', 'refused-2'], { cwd });
    expect(r.code, r.stderr).toBe(EXIT.noPermission);
    // The first request is HeadBucket: a HEAD answer has no body, so its 403 is all S3 says.
    expect(r.stderr).toBe(
      'pifleet: S3 refused the request (HTTP 403): check the credentials (hint: check that the credentials may s3:PutObject and s3:GetObject on the bucket)\n',
    );
    expect(fs.existsSync(path.join(dir, 'artifacts', 'refused-2'))).toBe(false);
  });
});
