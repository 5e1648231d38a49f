import { generateKeyPairSync } from 'node:crypto';
import { makeReleaseManifest, serializeReleaseManifest, signReleaseManifest } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebConsole } from '../../src/console/console.js';
import { singleCredentialStore } from '../../src/http/credentials.js';
import { createHttpServer } from '../../src/http/server.js';
import { type RunningCore, removeDir, startCore, tempDir } from '../http/harness.js';
import { http } from '../http/plain-request.js';
import { openSse } from './harness.js';

/**
 * The console's jobs view on the composed local core: list, a job's page and its live stream,
 * create (config, reboot, agent-update) and cancel, behind the console's session and Origin rules;
 * every kind of bad input refused with 400 and the field it concerns. The device side of each
 * execution is the jobs service's device API (what the MQTT and HTTP transports call).
 */

let dir: string;
let run: RunningCore;
let base: string;
let cookie: string;
/** Headers a same-origin page's fetch carries (a POST adds Origin). */
let page: Record<string, string>;
let post: Record<string, string>;

beforeAll(async () => {
  dir = tempDir('console-jobs');
  run = await startCore(dir);
  base = run.info.http;
  const opened = await http(base, 'GET', `/console/?token=${encodeURIComponent(run.core.services.console.token)}`);
  cookie = String(opened.headers['set-cookie']?.[0]).split(';')[0] as string;
  page = { cookie, 'sec-fetch-site': 'same-origin' };
  post = { ...page, origin: base };
  const { registry } = run.core.services;
  for (const thingName of ['pi-a', 'pi-b', 'pi-c', 'pi-d']) registry.createThing({ thingName });
  registry.createThingGroup({ thingGroupName: 'site-1' });
  registry.addThingToThingGroup({ thingGroupName: 'site-1', thingName: 'pi-c' });
  registry.addThingToThingGroup({ thingGroupName: 'site-1', thingName: 'pi-d' });
});
afterAll(async () => {
  await run?.stop();
  removeDir(dir);
});

const create = (body: unknown, headers = post) =>
  http(base, 'POST', '/console/api/jobs', headers, typeof body === 'string' ? body : JSON.stringify(body));

interface Issue {
  path: string;
  message: string;
}

describe('console jobs: create, list, follow, cancel', () => {
  it('creates a config job for a thing and lists it with its type, status and counts', async () => {
    const r = await create({
      type: 'config',
      jobId: 'cfg-1',
      things: ['pi-a'],
      config: '{"logLevel":"debug"}',
      rolloutPerMinute: 10,
      abortFailurePercent: 20.5,
      description: 'more logs',
    });
    expect(r.status).toBe(200);
    expect(r.json()).toMatchObject({ jobId: 'cfg-1', status: 'IN_PROGRESS' });

    const job = run.core.services.jobs.describeJob('cfg-1').job;
    expect(JSON.parse(job.document)).toEqual({ operation: 'pifleet.config', config: { logLevel: 'debug' } });
    expect(job.targets).toEqual([run.core.services.registry.describeThing('pi-a').thingArn]);
    expect(job.rollout).toEqual({ maximumPerMinute: 10 });
    expect(job.abort).toEqual([
      { failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 20.5, minNumberOfExecutedThings: 10 },
    ]);
    expect(job.description).toBe('more logs');

    const list = await http(base, 'GET', '/console/api/jobs', page);
    expect(list.status).toBe(200);
    const item = list.json<{ jobs: Array<Record<string, unknown>> }>().jobs.find((j) => j.jobId === 'cfg-1');
    expect(item).toMatchObject({
      status: 'IN_PROGRESS',
      operation: 'pifleet.config',
      counts: { QUEUED: 1, IN_PROGRESS: 0, SUCCEEDED: 0, FAILED: 0 },
    });
  });

  it("follows a job's executions live: progress with statusDetails, then SUCCEEDED and the job COMPLETED", async () => {
    const stream = await openSse(base, '/console/events/jobs?job=cfg-1', page);
    const list = await openSse(base, '/console/events/jobs', page);
    try {
      expect(stream.status).toBe(200);
      const first = (await stream.waitFor((e) => e.event === 'job')).data as { job: Record<string, unknown> };
      expect(first.job).toMatchObject({
        jobId: 'cfg-1',
        operation: 'pifleet.config',
        rollout: { maximumPerMinute: 10 },
        executions: [{ thingName: 'pi-a', status: 'QUEUED', statusDetails: null }],
        executionsTruncated: false,
      });
      await list.waitFor((e) => e.event === 'jobs');

      const { jobs } = run.core.services;
      await jobs.startNext('pi-a', { statusDetails: { step: 'applying' } });
      const progress = await stream.waitFor((e) => {
        const ex = (e.data as { job?: { executions: Array<Record<string, unknown>> } }).job?.executions[0];
        return ex?.status === 'IN_PROGRESS';
      });
      expect(progress.data).toMatchObject({
        job: {
          counts: { IN_PROGRESS: 1, QUEUED: 0 },
          executions: [{ thingName: 'pi-a', status: 'IN_PROGRESS', statusDetails: { step: 'applying' } }],
        },
      });

      await jobs.update('pi-a', 'cfg-1', { status: 'SUCCEEDED', statusDetails: { step: 'done', changed: 'logLevel' } });
      const done = await stream.waitFor((e) => (e.data as { job?: { status: string } }).job?.status === 'COMPLETED');
      expect(done.data).toMatchObject({
        job: {
          counts: { SUCCEEDED: 1, IN_PROGRESS: 0 },
          executions: [{ status: 'SUCCEEDED', statusDetails: { step: 'done', changed: 'logLevel' } }],
        },
      });
      // The list stream sees the job complete too.
      await list.waitFor((e) =>
        (e.data as { jobs: Array<{ jobId: string; status: string }> }).jobs.some(
          (j) => j.jobId === 'cfg-1' && j.status === 'COMPLETED',
        ),
      );
    } finally {
      stream.close();
      list.close();
    }
  });

  it('creates a reboot job for a thing group and a thing together', async () => {
    const r = await create({ type: 'reboot', jobId: 'reboot-1', things: ['pi-a'], group: 'site-1', reason: 'stuck' });
    expect(r.status).toBe(200);
    const page1 = await http(base, 'GET', '/console/api/jobs/reboot-1', page);
    const job = page1.json<{ job: { executions: Array<{ thingName: string }>; targets: string[] } }>().job;
    expect(job.executions.map((e) => e.thingName).sort()).toEqual(['pi-a', 'pi-c', 'pi-d']);
    expect(job.targets).toEqual([
      run.core.services.registry.describeThing('pi-a').thingArn,
      run.core.services.registry.describeThingGroup('site-1').thingGroupArn,
    ]);
  });

  it('gives a job without a jobId an id of its type and time', async () => {
    const r = await create({ type: 'reboot', things: ['pi-b'] });
    expect(r.status).toBe(200);
    expect(r.json<{ jobId: string }>().jobId).toMatch(/^reboot-\d{8}T\d{6}-[0-9a-f]{6}$/);
  });

  it('creates an agent-update job from a signed release: an S3 URL becomes the presign placeholder', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const manifest = serializeReleaseManifest(
      makeReleaseManifest({ version: '1.4.0', sha256: 'a'.repeat(64), size: 1234, key: pem }),
    );
    const signature = signReleaseManifest(manifest, pem);
    const url = 'https://s3.eu-west-1.amazonaws.com/fleet-artifacts/releases/pifleet-agent-1.4.0.tar.gz';
    const r = await create({
      type: 'agent-update',
      jobId: 'update-1',
      things: ['pi-b'],
      url,
      manifest: Buffer.from(manifest).toString('base64'),
      signature: Buffer.from(signature).toString('base64'),
    });
    expect(r.status).toBe(200);
    const job = run.core.services.jobs.describeJob('update-1').job;
    expect(JSON.parse(job.document)).toEqual({
      operation: 'pifleet.agent-update',
      version: '1.4.0',
      release: {
        url: `\${aws:iot:s3-presigned-url:${url}}`,
        manifest: Buffer.from(manifest).toString('base64'),
        signature: Buffer.from(signature).toString('base64'),
      },
    });
    expect(job.presignedUrlConfig?.roleArn).toMatch(/^arn:aws:iam::\d{12}:role\/pifleet-local-presign$/);

    // The version, when given, must be the signed manifest's.
    const wrong = await create({
      type: 'agent-update',
      things: ['pi-b'],
      url,
      version: '1.5.0',
      manifest: Buffer.from(manifest).toString('base64'),
      signature: Buffer.from(signature).toString('base64'),
    });
    expect(wrong.status).toBe(400);
    expect(wrong.json<{ issues: Issue[] }>().issues).toEqual([
      expect.objectContaining({ path: 'version', message: expect.stringContaining('1.4.0') }),
    ]);
  });

  it('cancels a job: without force the in-progress execution goes on, with force it is canceled', async () => {
    expect((await create({ type: 'reboot', jobId: 'cancel-me', things: ['pi-c', 'pi-d'] })).status).toBe(200);
    const { jobs } = run.core.services;
    // pi-c has an older reboot job pending; finish it so this job's execution comes next.
    await jobs.startNext('pi-c', {});
    await jobs.update('pi-c', 'reboot-1', { status: 'SUCCEEDED' });
    const started = await jobs.startNext('pi-c', {});
    expect(started?.jobId).toBe('cancel-me');

    const soft = await http(base, 'POST', '/console/api/jobs/cancel-me/cancel', post, '{}');
    expect(soft.status).toBe(200);
    expect(soft.json()).toMatchObject({ status: 'CANCELED', forceCanceled: false });
    expect(jobs.describeExecution('cancel-me', 'pi-c').execution.status).toBe('IN_PROGRESS');
    expect(jobs.describeExecution('cancel-me', 'pi-d').execution.status).toBe('CANCELED');

    const forced = await http(
      base,
      'POST',
      '/console/api/jobs/cancel-me/cancel',
      post,
      JSON.stringify({ force: true, comment: 'wrong target' }),
    );
    expect(forced.status).toBe(200);
    expect(forced.json()).toMatchObject({ status: 'CANCELED', forceCanceled: true });
    expect(jobs.describeExecution('cancel-me', 'pi-c').execution.status).toBe('CANCELED');
    expect(jobs.describeJob('cancel-me').job.comment).toBe('wrong target');
  });

  it('answers an unknown job with 404 on its page, its cancel and a gone event on its stream', async () => {
    expect((await http(base, 'GET', '/console/api/jobs/nope', page)).status).toBe(404);
    expect((await http(base, 'POST', '/console/api/jobs/nope/cancel', post, '{}')).status).toBe(404);
    const stream = await openSse(base, '/console/events/jobs?job=nope', page);
    try {
      const gone = await stream.waitFor((e) => e.event === 'gone');
      expect(gone.data).toMatchObject({ jobId: 'nope' });
    } finally {
      stream.close();
    }
    expect((await http(base, 'GET', '/console/events/jobs?job=a%20b', page)).status).toBe(400);
  });

  it('refuses a job id that is already taken with 409, creating nothing', async () => {
    const r = await create({ type: 'reboot', jobId: 'cfg-1', things: ['pi-b'] });
    expect(r.status).toBe(409);
    expect(r.json().message).toMatch(/already exists/);
  });
});

describe('console jobs: bounded pages', () => {
  it("shows a job's full counts and at most its first maxExecutions executions, each stream frame only on change", async () => {
    const { registry, broker, shadows, jobs, credentials } = run.core.services;
    registry.createThingGroup({ thingGroupName: 'big' });
    for (let i = 0; i < 120; i++) {
      const thingName = `big-${String(i).padStart(3, '0')}`;
      registry.createThing({ thingName });
      registry.addThingToThingGroup({ thingGroupName: 'big', thingName });
    }
    expect((await create({ type: 'reboot', jobId: 'big-1', group: 'big', rolloutPerMinute: 100 })).status).toBe(200);

    // A second console on the same services, bounded at 50 executions and refreshed every 50 ms.
    const bounded = createWebConsole({
      registry,
      broker,
      shadows,
      jobs,
      now: Date.now,
      token: 'bounded',
      jobsView: { maxExecutions: 50, pollMs: 50 },
    });
    const server = createHttpServer({
      host: '127.0.0.1',
      port: 0,
      region: run.info.region,
      credentials: singleCredentialStore(credentials),
      routes: [bounded.routes],
      now: Date.now,
    });
    const bound = await server.start();
    await bounded.start();
    try {
      const signIn = await http(bound.url, 'GET', '/console/?token=bounded');
      const headers = { cookie: String(signIn.headers['set-cookie']?.[0]).split(';')[0] as string };
      const r = await http(bound.url, 'GET', '/console/api/jobs/big-1', headers);
      expect(r.status).toBe(200);
      const { job } = r.json<{
        job: {
          counts: Record<string, number>;
          executions: unknown[];
          executionsTruncated: boolean;
          isConcurrent: boolean;
        };
      }>();
      expect(job.counts.QUEUED).toBe(120);
      expect(job.executions).toHaveLength(50);
      expect(job.executionsTruncated).toBe(true);
      // 100 a minute out of 120: still rolling out.
      expect(job.isConcurrent).toBe(true);

      // Nothing changes for 10 refreshes: the stream holds its first frame only; a change is sent.
      const stream = await openSse(bound.url, '/console/events/jobs?job=big-1', headers);
      try {
        await stream.waitFor((e) => e.event === 'job');
        await new Promise((resolve) => setTimeout(resolve, 500));
        expect(stream.events.filter((e) => e.event === 'job')).toHaveLength(1);
        jobs.cancelJob('big-1', { force: true });
        await stream.waitFor((e) => (e.data as { job?: { status: string } }).job?.status === 'CANCELED');
      } finally {
        stream.close();
      }
    } finally {
      await bounded.stop();
      await server.stop();
    }
  });
});

describe('console jobs: the console session and Origin rules', () => {
  it('refuses the jobs API and streams without a session (401)', async () => {
    for (const path of ['/console/api/jobs', '/console/api/jobs/cfg-1', '/console/events/jobs']) {
      expect((await http(base, 'GET', path)).status).toBe(401);
    }
    expect((await create({ type: 'reboot', things: ['pi-a'] }, { origin: base })).status).toBe(401);
  });

  it.each<[string, Record<string, string>]>([
    ['no Origin', {}],
    ['a foreign Origin', { origin: 'http://evil.example' }],
    ['a cross-site fetch from this origin', { origin: 'same', 'sec-fetch-site': 'cross-site' }],
  ])('refuses a create or cancel with %s (403) and creates nothing', async (_name, extra) => {
    // `base` is known once the core runs, after the table is built.
    const headers = { cookie, ...extra, ...(extra.origin === 'same' ? { origin: base } : {}) };
    const before = run.core.services.jobs.listJobs({ limit: 250 }).items.length;
    expect((await create({ type: 'reboot', jobId: 'csrf', things: ['pi-a'] }, headers)).status).toBe(403);
    expect((await http(base, 'POST', '/console/api/jobs/cfg-1/cancel', headers, '{}')).status).toBe(403);
    expect(run.core.services.jobs.listJobs({ limit: 250 }).items.length).toBe(before);
  });
});

const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;

describe('console jobs: bad input is a 400 naming the field, and creates nothing', () => {
  it.each<[string, string | Record<string, unknown>, string | RegExp]>([
    ['an unknown type', { type: 'pifleet.firmware', things: ['pi-a'] }, 'type'],
    ['no type', { things: ['pi-a'] }, 'type'],
    ['no targets', { type: 'reboot' }, 'things'],
    ['an empty thing list', { type: 'reboot', things: [] }, 'things'],
    ['a thing that does not exist', { type: 'reboot', things: ['pi-zz'] }, 'things'],
    ['a thing name that is not one', { type: 'reboot', things: ['a b'] }, 'things'],
    ['things that are not a list', { type: 'reboot', things: 'pi-a' }, 'things'],
    ['a group that does not exist', { type: 'reboot', group: 'site-9' }, 'group'],
    ['a bad job id', { type: 'reboot', things: ['pi-a'], jobId: 'a/b' }, 'jobId'],
    ['a rollout rate of 0', { type: 'reboot', things: ['pi-a'], rolloutPerMinute: 0 }, 'rolloutPerMinute'],
    ['a rollout rate over 1,000', { type: 'reboot', things: ['pi-a'], rolloutPerMinute: 1001 }, 'rolloutPerMinute'],
    ['an abort percent of 0', { type: 'reboot', things: ['pi-a'], abortFailurePercent: 0 }, 'abortFailurePercent'],
    [
      'an abort percent with three decimals (IoT: two at most)',
      { type: 'reboot', things: ['pi-a'], abortFailurePercent: 10.999 },
      'abortFailurePercent',
    ],
    ['a minimum without a percent', { type: 'reboot', things: ['pi-a'], abortMinExecuted: 5 }, 'abortMinExecuted'],
    ['a field of another job type', { type: 'reboot', things: ['pi-a'], config: '{}' }, 'config'],
    ['a __proto__ key', '{"type":"reboot","things":["pi-a"],"__proto__":{"admin":true}}', '__proto__'],
    ['a config that is not JSON', { type: 'config', things: ['pi-a'], config: '{"logLevel":' }, 'config'],
    ['a config that is not an object', { type: 'config', things: ['pi-a'], config: '[1]' }, 'config'],
    ['an empty config', { type: 'config', things: ['pi-a'], config: {} }, 'config'],
    [
      'an invalid setting',
      { type: 'config', things: ['pi-a'], config: { sampling: { env: 5 } } },
      'config.sampling.env',
    ],
    ['an unknown setting', { type: 'config', things: ['pi-a'], config: '{"shell":"rm -rf /"}' }, /^config/],
    [
      'a __proto__ setting',
      { type: 'config', things: ['pi-a'], config: '{"__proto__":{"logLevel":"debug"}}' },
      /^config/,
    ],
    ['a config nested too deep', { type: 'config', things: ['pi-a'], config: deep(40) }, 'config'],
    ['a reason with control characters', { type: 'reboot', things: ['pi-a'], reason: 'a\u0007b' }, 'reason'],
    [
      'an agent update without a manifest',
      { type: 'agent-update', things: ['pi-a'], url: 'https://x.example/r.tgz', signature: 'AAAA' },
      'manifest',
    ],
    [
      'an agent update whose manifest is not one',
      { type: 'agent-update', things: ['pi-a'], url: 'https://x.example/r', manifest: 'e30=', signature: 'AAAA' },
      'manifest',
    ],
    [
      'an agent update whose signature is not base64',
      { type: 'agent-update', things: ['pi-a'], url: 'https://x.example/r', manifest: 'e30=', signature: 'n*t' },
      'signature',
    ],
    [
      'an agent update over ftp',
      { type: 'agent-update', things: ['pi-a'], url: 'ftp://x.example/r', manifest: 'e30=', signature: 'AAAA' },
      'url',
    ],
    [
      'a presign placeholder that names no S3 object',
      {
        type: 'agent-update',
        things: ['pi-a'],
        url: '${aws:iot:s3-presigned-url:https://x.example/r}',
        manifest: 'e30=',
        signature: 'AAAA',
      },
      'url',
    ],
  ])('refuses %s', async (_name, body, path) => {
    const before = run.core.services.jobs.listJobs({ limit: 250 }).items.length;
    const r = await create(body);
    expect(r.status).toBe(400);
    const reply = r.json<{ message: string; issues: Issue[] }>();
    expect(reply.message).toMatch(/not valid|must be one of/);
    expect(reply.issues.map((i) => i.path)).toContainEqual(
      typeof path === 'string' ? path : expect.stringMatching(path),
    );
    expect(run.core.services.jobs.listJobs({ limit: 250 }).items.length).toBe(before);
  });

  it.each([
    ['a body that is not JSON', '{"type":'],
    ['a body that is not an object', '["reboot"]'],
    ['a body nested too deep', deep(100)],
    ['an empty body', ''],
  ])('refuses %s with a reason', async (_name, body) => {
    const r = await create(body);
    expect(r.status).toBe(400);
    expect(r.json().message).toMatch(/^The body (is not valid JSON|must be a JSON object)/);
  });

  it('refuses a config whose job document would pass IoT 32,768 characters (400), and a body past 64 KB (413)', async () => {
    const many = Object.fromEntries(Array.from({ length: 3_000 }, (_, i) => [`s${i}`, 1000]));
    const big = await create({ type: 'config', things: ['pi-a'], config: JSON.stringify({ sampling: many }) });
    expect(big.status).toBe(400);
    expect(big.json<{ issues: Issue[] }>().issues).toContainEqual(
      expect.objectContaining({ path: 'config', message: expect.stringMatching(/IoT allows 32768/) }),
    );
    const huge = await create({ type: 'config', things: ['pi-a'], config: JSON.stringify({ x: 'y'.repeat(70_000) }) });
    expect(huge.status).toBe(413);
  });

  it.each([
    ['force that is not a boolean', '{"force":"yes"}', 'force'],
    ['an unknown field', '{"forced":true}', 'forced'],
    ['a comment with control characters', '{"comment":"a\\u0000b"}', 'comment'],
  ])('refuses a cancel with %s', async (_name, body, path) => {
    const r = await http(base, 'POST', '/console/api/jobs/cfg-1/cancel', post, body);
    expect(r.status).toBe(400);
    expect(r.json<{ issues: Issue[] }>().issues.map((i) => i.path)).toEqual([path]);
  });
});
