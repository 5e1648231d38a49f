import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {
  CreateProvisioningTemplateCommand,
  DescribeProvisioningTemplateCommand,
  type IoTClient,
} from '@aws-sdk/client-iot';
import { EXIT, formatLocalEndpoint, type LocalEndpoint, pifleetClaimTemplateBody } from '@pifleet/protocol';
import { type RunningCoreProcess, removeDir, tempDir } from '@pifleet/testkit';
import { describe, expect, it } from 'vitest';
import { cli, localCoreWithIotForFile } from '../helpers.js';

/** `templates list | describe | delete` in-process against the real local core through the real @aws-sdk/client-iot. */

let core: RunningCoreProcess;
let iot: IoTClient;
const { cwd } = localCoreWithIotForFile((started, client) => {
  core = started;
  iot = client;
});

const ROLE = 'arn:aws:iam::123456789012:role/pifleet-test-provisioning';
const HOOK = 'arn:aws:lambda:us-east-1:123456789012:function:pifleet-provisioning-hook';
const run = (...args: string[]) => cli(['--local', core.dataDir, ...args], { cwd: cwd() });
const json = <T>(s: string) => JSON.parse(s) as T;

async function createTemplate(templateName: string, extra: { enabled?: boolean; hook?: boolean } = {}) {
  await iot.send(
    new CreateProvisioningTemplateCommand({
      templateName,
      templateBody: pifleetClaimTemplateBody({ thingGroup: `group-${templateName}` }),
      provisioningRoleArn: ROLE,
      enabled: extra.enabled ?? true,
      description: `test ${templateName}`,
      ...(extra.hook ? { preProvisioningHook: { targetArn: HOOK, payloadVersion: '2020-04-01' } } : {}),
    }),
  );
}

/** One line on stderr, the exit code, nothing on stdout. */
function expectOneLineFailure(r: { code: number; stdout: string; stderr: string }, code: number, message: RegExp) {
  expect(r.code).toBe(code);
  expect(r.stdout).toBe('');
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(message);
}

describe('templates list', () => {
  it('pages through every template (3 at a page size of 1) and shows enabled/disabled', async () => {
    await createTemplate('tl-a');
    await createTemplate('tl-b', { enabled: false });
    await createTemplate('tl-c');
    const text = await run('templates', 'list', '--page-size', '1');
    expect(text.stderr).toBe('');
    expect(text.code).toBe(EXIT.ok);
    const lines = text.stdout.trim().split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'tl-a  enabled  FLEET_PROVISIONING  test tl-a',
        'tl-b  disabled  FLEET_PROVISIONING  test tl-b',
        'tl-c  enabled  FLEET_PROVISIONING  test tl-c',
      ]),
    );
    expect(lines.at(-1)).toMatch(/^\d+ templates$/);

    const data = json<{ templates: { templateName: string; enabled: boolean; templateArn: string }[] }>(
      (await run('templates', 'list', '--page-size', '1', '--json')).stdout,
    );
    const names = data.templates.map((t) => t.templateName);
    expect(names).toEqual(expect.arrayContaining(['tl-a', 'tl-b', 'tl-c']));
    expect(new Set(names).size).toBe(names.length);
    expect(data.templates.find((t) => t.templateName === 'tl-b')).toMatchObject({
      enabled: false,
      templateArn: expect.stringMatching(/:provisioningtemplate\/tl-b$/),
    });
  });

  it.each(['0', '251', 'x'])('refuses --page-size %s as a usage error (64)', async (size) => {
    expectOneLineFailure(await run('templates', 'list', '--page-size', size), EXIT.usage, /--page-size must be/);
  });
});

describe('templates describe', () => {
  it('prints the settings and the body; --json gives them as data', async () => {
    await createTemplate('td-hook', { hook: true });
    const r = await run('templates', 'describe', 'td-hook');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.ok);
    const lines = r.stdout.split('\n');
    expect(lines).toEqual(
      expect.arrayContaining([
        'enabled: yes',
        'type: FLEET_PROVISIONING',
        'description: test td-hook',
        `role: ${ROLE}`,
        `pre-provisioning hook: ${HOOK} (payload 2020-04-01)`,
        'default version: 1',
        'body:',
      ]),
    );
    // The body, indented, after the settings.
    const body = r.stdout.slice(r.stdout.indexOf('body:\n') + 'body:\n'.length);
    expect(JSON.parse(body)).toEqual(JSON.parse(pifleetClaimTemplateBody({ thingGroup: 'group-td-hook' })));
    expect(body).toContain('\n  "Resources": {');

    const data = json<Record<string, unknown>>((await run('templates', 'describe', 'td-hook', '--json')).stdout);
    expect(data).toMatchObject({
      templateName: 'td-hook',
      enabled: true,
      provisioningRoleArn: ROLE,
      preProvisioningHook: { targetArn: HOOK, payloadVersion: '2020-04-01' },
      defaultVersionId: 1,
    });
    expect(JSON.parse(data.templateBody as string)).toEqual(
      JSON.parse(pifleetClaimTemplateBody({ thingGroup: 'group-td-hook' })),
    );
  });

  it('a template that does not exist: exit 65, one line, and how to list them', async () => {
    expectOneLineFailure(
      await run('templates', 'describe', 'td-missing'),
      EXIT.dataError,
      /^pifleet: provisioning template td-missing not found \(hint: .*templates list\)$/m,
    );
    const asJson = await run('templates', 'describe', 'td-missing', '--json');
    expect(asJson.code).toBe(EXIT.dataError);
    expect(json<{ error: { code: string } }>(asJson.stderr).error.code).toBe('NOT_FOUND');
  });

  it('`__proto__` is a valid template name, looked up as one (not found), never a prototype', async () => {
    expectOneLineFailure(await run('templates', 'describe', '__proto__'), EXIT.dataError, /__proto__ not found/);
  });
});

describe('templates delete', () => {
  it('deletes a template; a second delete is not found (65)', async () => {
    await createTemplate('tdel-1');
    const r = await run('templates', 'delete', 'tdel-1');
    expect(r.code).toBe(EXIT.ok);
    expect(r.stdout.trim()).toBe('deleted template tdel-1');
    await expect(iot.send(new DescribeProvisioningTemplateCommand({ templateName: 'tdel-1' }))).rejects.toMatchObject({
      name: 'ResourceNotFoundException',
    });
    expectOneLineFailure(await run('templates', 'delete', 'tdel-1'), EXIT.dataError, /tdel-1 not found/);
  });
});

describe('bad template names', () => {
  it.each(['bad/name', 'has space', 'x'.repeat(37), 'ünïcode', 'a.b'])(
    '%j is refused before any request (65, one line)',
    async (name) => {
      for (const verb of ['describe', 'delete']) {
        expectOneLineFailure(
          await run('templates', verb, name),
          EXIT.dataError,
          /invalid provisioning template name .*\(hint: use 1-36 characters of a-z A-Z 0-9 _ -\)/,
        );
      }
    },
  );
});

describe('an unreachable local core', () => {
  it('is exit 69 with the hint to start it', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    // A data directory as a core that ran there left it: its CA, credentials and endpoint file.
    const dir = tempDir('templates-down');
    try {
      fs.mkdirSync(path.join(dir, 'ca'));
      fs.copyFileSync(core.info.caFile, path.join(dir, 'ca', 'ca.pem'));
      fs.copyFileSync(path.join(core.dataDir, 'credentials'), path.join(dir, 'credentials'));
      const endpoint: LocalEndpoint = {
        ready: true,
        caFile: path.join(dir, 'ca', 'ca.pem'),
        credentialsFile: path.join(dir, 'credentials'),
        region: core.info.region,
        accountId: core.info.accountId,
        console: `http://127.0.0.1:${port}/console/?token=t`,
        http: `http://127.0.0.1:${port}`,
        mqtt: core.info.mqtt,
      };
      fs.writeFileSync(path.join(dir, 'endpoint.json'), formatLocalEndpoint(endpoint));
      const r = await cli(['--local', dir, 'templates', 'list'], { cwd: cwd() });
      expectOneLineFailure(r, EXIT.unavailable, /cannot reach the local IoT Core \(ECONNREFUSED\).*start it with/);
    } finally {
      removeDir(dir);
    }
  });
});
