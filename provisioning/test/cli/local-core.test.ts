import fs from 'node:fs';
import path from 'node:path';
import {
  CreateThingCommand,
  DescribeCertificateCommand,
  DescribeThingCommand,
  DetachPolicyCommand,
  type IoTClient,
  ListThingPrincipalsCommand,
  ResourceNotFoundException,
} from '@aws-sdk/client-iot';
import { BINS, localProfileCredentials, REPO, type RunningCoreProcess } from '@pifleet/testkit';
import { describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli.js';
import { BUNDLE_FILES } from '../../src/core/bundle.js';
import { invocationOf } from '../../src/core/hints.js';
import { cli, localCoreWithIotForFile, sink } from '../helpers.js';

/** Every command in-process against the real local IoT Core through the real @aws-sdk/client-iot. */

let core: RunningCoreProcess;
let iot: IoTClient;
const { cwd } = localCoreWithIotForFile((started, client) => {
  core = started;
  iot = client;
});

const local = () => ['--local', core.dataDir];
const json = <T>(s: string) => JSON.parse(s) as T;

async function principals(thingName: string): Promise<string[]> {
  return (await iot.send(new ListThingPrincipalsCommand({ thingName }))).principals ?? [];
}

describe('things create', () => {
  it('creates thing, certificate, policy, attachments and a bundle; a re-run changes nothing', async () => {
    const dir = cwd();
    const first = await cli([...local(), 'things', 'create', 'pi-a1', '--attr', 'room=lab', '--json'], { cwd: dir });
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const r = json<{ status: string; certificateId: string; changes: string[]; bundleDir: string }>(first.stdout);
    expect(r.status).toBe('created');
    expect(r.changes).toEqual(
      expect.arrayContaining(['created thing', 'issued certificate', 'attached certificate to thing']),
    );
    expect(first.stdout).not.toContain('PRIVATE KEY');

    // Bundles hold private keys: by default under .pifleet/, which .gitignore keeps out of git.
    const bundle = path.join(dir, '.pifleet', 'bundles', 'pi-a1');
    expect(r.bundleDir).toBe(bundle);
    expect(fs.statSync(path.join(bundle, BUNDLE_FILES.privateKey)).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(path.join(bundle, BUNDLE_FILES.ca), 'utf8')).toBe(fs.readFileSync(core.info.caFile, 'utf8'));
    const agent = json<Record<string, unknown>>(fs.readFileSync(path.join(bundle, BUNDLE_FILES.agentConfig), 'utf8'));
    expect(agent).toMatchObject({
      thingName: 'pi-a1',
      port: core.info.mqtt.port,
      endpoint: core.info.mqtt.host,
      keyFile: path.join(bundle, BUNDLE_FILES.privateKey),
      // The local core serves MQTT 5 and 3.1.1 on one listener, as IoT Core does: bundles say 5.
      mqtt: { protocol: '5' },
    });
    expect(fs.readFileSync(path.join(bundle, BUNDLE_FILES.unit), 'utf8')).toContain(
      `--config ${path.join(bundle, 'agent.json')}`,
    );
    const ps = await principals('pi-a1');
    expect(ps).toHaveLength(1);
    expect(ps[0]).toContain(r.certificateId);

    const again = await cli([...local(), 'things', 'create', 'pi-a1'], { cwd: dir });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('thing pi-a1 is already complete; nothing changed');
    expect(await principals('pi-a1')).toEqual(ps);
  });

  it('completes a partly created thing (thing only, then a lost policy attachment and agent.json)', async () => {
    const dir = cwd();
    await iot.send(new CreateThingCommand({ thingName: 'pi-part' }));
    const r1 = await cli([...local(), 'things', 'create', 'pi-part', '--json'], { cwd: dir });
    expect(r1.code).toBe(0);
    const created = json<{ status: string; certificateId: string; certificateArn: string }>(r1.stdout);
    expect(created.status).toBe('completed');

    await iot.send(new DetachPolicyCommand({ policyName: 'pifleet-device', target: created.certificateArn }));
    fs.rmSync(path.join(dir, '.pifleet', 'bundles', 'pi-part', BUNDLE_FILES.agentConfig));
    const r2 = await cli([...local(), 'things', 'create', 'pi-part', '--json'], { cwd: dir });
    expect(r2.code).toBe(0);
    const completed = json<{ status: string; certificateId: string; changes: string[] }>(r2.stdout);
    expect(completed.status).toBe('completed');
    expect(completed.certificateId).toBe(created.certificateId);
    expect(completed.changes).toEqual(['attached policy pifleet-device', 'wrote agent.json']);
  });

  it('refuses to overwrite another thing’s bundle without --force', async () => {
    const dir = cwd();
    expect((await cli([...local(), 'things', 'create', 'pi-b1', '--out', 'shared'], { cwd: dir })).code).toBe(0);
    const refused = await cli([...local(), 'things', 'create', 'pi-b2', '--out', 'shared'], { cwd: dir });
    expect(refused.code).toBe(65);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toMatch(/holds the bundle of thing pi-b1 \(hint: .*--force/);
    const forced = await cli([...local(), 'things', 'create', 'pi-b2', '--out', 'shared', '--force'], { cwd: dir });
    expect(forced.code).toBe(0);
    expect(json<{ thingName: string }>(fs.readFileSync(path.join(dir, 'shared', 'agent.json'), 'utf8')).thingName).toBe(
      'pi-b2',
    );
  });

  it('a thing whose bundle is in the old default ./bundles/NAME keeps using it, with a note', async () => {
    const dir = cwd();
    expect((await cli([...local(), 'things', 'create', 'pi-old', '--out', 'bundles/pi-old'], { cwd: dir })).code).toBe(
      0,
    );
    const again = await cli([...local(), 'things', 'create', 'pi-old'], { cwd: dir });
    expect(again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('thing pi-old is already complete; nothing changed');
    expect(again.stdout).toContain('note: using the bundle in bundles/pi-old (the default before .pifleet/bundles)');
    expect(fs.existsSync(path.join(dir, '.pifleet'))).toBe(false);
    const deleted = await cli([...local(), 'things', 'delete', 'pi-old'], { cwd: dir });
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toContain('removed bundle');
    expect(fs.existsSync(path.join(dir, 'bundles', 'pi-old'))).toBe(false);
  });

  it('issues the certificate from a CSR and writes no private key', async () => {
    const dir = cwd();
    const { makeCsr } = await import('../csr.js');
    const { csrPem, publicKeyDer } = await makeCsr('pi-csr');
    fs.writeFileSync(path.join(dir, 'device.csr'), csrPem);
    const r = await cli([...local(), 'things', 'create', 'pi-csr', '--csr', 'device.csr', '--json'], { cwd: dir });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const bundle = path.join(dir, '.pifleet', 'bundles', 'pi-csr');
    expect(fs.existsSync(path.join(bundle, BUNDLE_FILES.privateKey))).toBe(false);
    const { X509Certificate } = await import('node:crypto');
    const cert = new X509Certificate(fs.readFileSync(path.join(bundle, BUNDLE_FILES.certificate)));
    expect(Buffer.from(cert.publicKey.export({ type: 'spki', format: 'der' }))).toEqual(publicKeyDer);
    const again = await cli([...local(), 'things', 'create', 'pi-csr', '--csr', 'device.csr'], { cwd: dir });
    expect(again.stdout).toContain('nothing changed');
  });

  it('--self-update: the bundle carries the unit for agent updates (boot guard, <stateDir>/current)', async () => {
    const dir = cwd();
    const r = await cli(
      [...local(), 'things', 'create', 'pi-su1', '--install-dir', '/etc/pifleet', '--self-update', '--json'],
      { cwd: dir },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const bundle = path.join(dir, '.pifleet', 'bundles', 'pi-su1');
    const unit = fs.readFileSync(path.join(bundle, BUNDLE_FILES.unit), 'utf8').split('\n');
    expect(unit).toContain(
      'ExecStartPre=-/usr/bin/env node /opt/pifleet/dist/update/boot-guard.js --state-dir /var/lib/pifleet --factory-dir /opt/pifleet',
    );
    expect(unit).toContain(
      'ExecStart=/usr/bin/env node /var/lib/pifleet/current/bin/pifleet-agent.js run --config /etc/pifleet/agent.json',
    );
    // The agent's default outbox (/var/lib/pifleet/outbox.db): the state directory is the outbox's.
    expect(
      json<Record<string, unknown>>(fs.readFileSync(path.join(bundle, BUNDLE_FILES.agentConfig), 'utf8')),
    ).not.toHaveProperty('outbox');
  });

  it.each([
    [['things', 'create', 'bad name'], 65, /invalid thing name/],
    [['things', 'create', 'ok', '--attr', 'novalue'], 65, /not key=value/],
    [['things', 'create', 'ok', '--csr', 'missing.csr'], 65, /cannot read CSR/],
    [['things', 'create'], 64, /missing required argument/],
  ])('%j → exit %i', async (argv, code, message) => {
    const r = await cli([...local(), ...argv], { cwd: cwd() });
    expect(r.code).toBe(code);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  // Under /proc Node's mkdir -p never settled; it was then exit 1 with Node's bare ENOENT, after the
  // thing and its certificate were created and the private key (only in that response) was lost.
  it.each<[string, (dir: string) => string, string]>([
    ['through a file', (dir) => path.join(dir, 'a-file', 'bundle'), 'ENOTDIR'],
    ...(fs.existsSync('/proc/self')
      ? [
          ['under /proc', () => `/proc/pifleet-things-${process.pid}/bundle`, 'ENOENT'] as [
            string,
            () => string,
            string,
          ],
        ]
      : []),
  ])('refuses an --out %s it cannot make: exit 65, one line and a hint, nothing created', async (_label, out, code) => {
    const dir = cwd();
    fs.writeFileSync(path.join(dir, 'a-file'), 'x');
    const thingName = `pi-out-${code.toLowerCase()}`;
    const target = out(dir);
    const r = await cli([...local(), 'things', 'create', thingName, '--out', target], { cwd: dir });
    expect(r.code).toBe(65);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      `pifleet: cannot write into ${target} (${code}) (hint: choose another --out directory, one this user can create and write)\n`,
    );
    await expect(iot.send(new DescribeThingCommand({ thingName }))).rejects.toBeInstanceOf(ResourceNotFoundException);
  });
});

describe('things list, describe, delete', () => {
  it('lists every page and one page with --next-token', async () => {
    const dir = cwd();
    for (const name of ['pi-l1', 'pi-l2', 'pi-l3']) {
      expect((await cli([...local(), 'things', 'create', name], { cwd: dir })).code).toBe(0);
    }
    const all = json<{ things: { thingName: string }[]; pages: number }>(
      (await cli([...local(), 'things', 'list', '--page-size', '2', '--json'], { cwd: dir })).stdout,
    );
    const names = all.things.map((t) => t.thingName);
    expect(names).toEqual(expect.arrayContaining(['pi-l1', 'pi-l2', 'pi-l3']));
    expect(all.pages).toBeGreaterThanOrEqual(2);
    const first = json<{ things: unknown[]; nextToken?: string }>(
      (await cli([...local(), 'things', 'list', '--page-size', '2', '--max', '2', '--json'], { cwd: dir })).stdout,
    );
    expect(first.things).toHaveLength(2);
    expect(first.nextToken).toBeDefined();
    const second = json<{ things: unknown[] }>(
      (
        await cli([...local(), 'things', 'list', '--page-size', '2', '--next-token', first.nextToken ?? '', '--json'], {
          cwd: dir,
        })
      ).stdout,
    );
    expect(second.things.length).toBeGreaterThan(0);
  });

  it('describes attributes, certificates, policies and the shadow', async () => {
    const dir = cwd();
    await cli([...local(), 'things', 'create', 'pi-d1', '--attr', 'room=attic'], { cwd: dir });
    const r = await cli([...local(), 'things', 'describe', 'pi-d1', '--json'], { cwd: dir });
    expect(r.code).toBe(0);
    const d = json<{
      attributes: Record<string, string>;
      certificates: { status: string; policies: string[] }[];
      shadow: { available: boolean; exists?: boolean };
    }>(r.stdout);
    expect(d.attributes).toEqual({ room: 'attic' });
    expect(d.certificates).toEqual([expect.objectContaining({ status: 'ACTIVE', policies: ['pifleet-device'] })]);
    expect(d.shadow).toEqual({ available: true, exists: false });
  });

  it('unknown thing: one line, exit 65, a hint that lists the things of the same core', async () => {
    const r = await cli([...local(), 'things', 'describe', 'pi-nope'], { cwd: cwd() });
    expect(r.code).toBe(65);
    expect(r.stderr).toBe(`pifleet: thing pi-nope not found (hint: pifleet --local ${core.dataDir} things list)\n`);
  });

  it('a re-run of an interrupted delete removes the leftovers and succeeds', async () => {
    const dir = cwd();
    expect((await cli([...local(), 'things', 'create', 'pi-x2'], { cwd: dir })).code).toBe(0);
    // A delete that stopped after the registry, before the bundle.
    expect((await cli([...local(), 'things', 'delete', 'pi-x2', '--keep-bundle'], { cwd: dir })).code).toBe(0);
    const rerun = await cli([...local(), 'things', 'delete', 'pi-x2', '--json'], { cwd: dir });
    expect(rerun.stderr).toBe('');
    expect(rerun.code).toBe(0);
    expect(json<{ status: string; changes: string[] }>(rerun.stdout)).toMatchObject({
      status: 'absent',
      changes: ['removed bundle'],
    });
  });

  it('deletes in IoT’s order, is safe to re-run, and finishes a partial teardown', async () => {
    const dir = cwd();
    const created = json<{ certificateId: string; certificateArn: string }>(
      (await cli([...local(), 'things', 'create', 'pi-x1', '--json'], { cwd: dir })).stdout,
    );
    // A teardown that stopped after detaching the certificate from the thing: the thing no longer lists it.
    const { DetachThingPrincipalCommand } = await import('@aws-sdk/client-iot');
    await iot.send(new DetachThingPrincipalCommand({ thingName: 'pi-x1', principal: created.certificateArn }));
    const del = await cli([...local(), 'things', 'delete', 'pi-x1', '--json'], { cwd: dir });
    expect(del.code).toBe(0);
    const r = json<{ status: string; deletedCertificates: string[]; changes: string[] }>(del.stdout);
    expect(r.status).toBe('deleted');
    expect(r.deletedCertificates).toEqual([created.certificateId]);
    await expect(iot.send(new DescribeCertificateCommand({ certificateId: created.certificateId }))).rejects.toThrow();
    expect(fs.existsSync(path.join(dir, '.pifleet', 'bundles', 'pi-x1'))).toBe(false);

    // Once nothing is left, the thing is unknown like to every other command.
    const again = await cli([...local(), 'things', 'delete', 'pi-x1'], { cwd: dir });
    expect(again.code).toBe(65);
    expect(again.stderr).toMatch(/^pifleet: thing pi-x1 not found/);
  });
});

describe('certs rotate', () => {
  it('issues a new certificate, keeps the old one until the device shows it restarted, or --force', async () => {
    const dir = cwd();
    const created = json<{ certificateId: string }>(
      (await cli([...local(), 'things', 'create', 'pi-r1', '--json'], { cwd: dir })).stdout,
    );
    const issued = await cli([...local(), 'certs', 'rotate', 'pi-r1', '--json'], { cwd: dir });
    expect(issued.code).toBe(0);
    const i = json<{ status: string; newCertificateId: string; oldCertificateIds: string[] }>(issued.stdout);
    expect(i.status).toBe('issued');
    expect(i.oldCertificateIds).toEqual([created.certificateId]);
    expect(await principals('pi-r1')).toHaveLength(2);

    const pending = await cli([...local(), 'certs', 'rotate', 'pi-r1', '--json'], { cwd: dir });
    expect(json<{ status: string }>(pending.stdout).status).toBe('pending');
    expect(await principals('pi-r1')).toHaveLength(2);

    // The agent reports its start time on every start: a start after the new certificate is the evidence.
    const desire = await cli(
      [...local(), 'shadow', 'desire', 'pi-r1', '--json', JSON.stringify({ logLevel: 'info' })],
      { cwd: dir },
    );
    expect(desire.code).toBe(0);
    const { IoTDataPlaneClient, UpdateThingShadowCommand } = await import('@aws-sdk/client-iot-data-plane');
    const credentials = localProfileCredentials(core.info);
    const data = new IoTDataPlaneClient({
      region: core.info.region,
      endpoint: core.info.http,
      credentials,
    });
    await data.send(
      new UpdateThingShadowCommand({
        thingName: 'pi-r1',
        payload: new TextEncoder().encode(
          JSON.stringify({ state: { reported: { agent: { startedAt: Date.now() + 1000 } } } }),
        ),
      }),
    );
    data.destroy();
    const retired = await cli([...local(), 'certs', 'rotate', 'pi-r1', '--json'], { cwd: dir });
    const t = json<{ status: string; evidence: string }>(retired.stdout);
    expect(t.status).toBe('retired');
    expect(t.evidence).toMatch(/agent started at/);
    const left = await principals('pi-r1');
    expect(left).toHaveLength(1);
    expect(left[0]).toContain(i.newCertificateId);

    const forced = await cli([...local(), 'certs', 'rotate', 'pi-r1', '--force', '--json'], { cwd: dir });
    const f = json<{ status: string; oldCertificateIds: string[] }>(forced.stdout);
    expect(f.status).toBe('retired');
    expect(f.oldCertificateIds).toEqual([i.newCertificateId]);
    expect(await principals('pi-r1')).toHaveLength(1);
  });
});

describe('shadow', () => {
  it('desire validates, applies with optimistic locking, and get prints the document', async () => {
    const dir = cwd();
    await cli([...local(), 'things', 'create', 'pi-s1'], { cwd: dir });
    const bad = await cli([...local(), 'shadow', 'desire', 'pi-s1', 'outputs.relay=maybe'], { cwd: dir });
    expect(bad.code).toBe(65);
    expect(bad.stderr).toMatch(/invalid desired state: outputs.relay/);

    const ok = await cli(
      [...local(), '--json', 'shadow', 'desire', 'pi-s1', 'outputs.relay=true', 'sampling.bme280=5000'],
      {
        cwd: dir,
      },
    );
    expect(ok.code).toBe(0);
    const version = json<{ version: number }>(ok.stdout).version;
    const got = json<{ state: { desired: unknown }; version: number }>(
      (await cli([...local(), 'shadow', 'get', 'pi-s1', '--json'], { cwd: dir })).stdout,
    );
    expect(got.state.desired).toEqual({ outputs: { relay: true }, sampling: { bme280: 5000 } });

    const stale = await cli(
      [...local(), 'shadow', 'desire', 'pi-s1', 'logLevel=debug', '--version', String(version - 1)],
      {
        cwd: dir,
      },
    );
    expect(stale.code).toBe(65);
    expect(stale.stderr).toMatch(/conflict.*\(hint: pifleet --local \S+ shadow get pi-s1/);
    const fresh = await cli([...local(), 'shadow', 'desire', 'pi-s1', 'logLevel=debug', '--version', String(version)], {
      cwd: dir,
    });
    expect(fresh.code).toBe(0);
  });

  it('get of a thing without a shadow: exit 65 with a hint that creates it', async () => {
    const dir = cwd();
    expect((await cli([...local(), 'things', 'create', 'pi-noshadow'], { cwd: dir })).code).toBe(0);
    const r = await cli([...local(), 'shadow', 'get', 'pi-noshadow'], { cwd: dir });
    expect(r.code).toBe(65);
    expect(r.stderr).toBe(
      `pifleet: thing pi-noshadow has no shadow (hint: pifleet --local ${core.dataDir} shadow desire pi-noshadow key=value creates it)\n`,
    );
  });
});

describe('a thing that does not exist', () => {
  // Every command that names a thing: exit 65, one line, a hint, and nothing written anywhere.
  it.each([
    [['shadow', 'desire', 'pi-ghost', 'outputs.relay=true']],
    [['shadow', 'desire', 'pi-ghost', '--json', '{"logLevel":"debug"}']],
    [['shadow', 'get', 'pi-ghost']],
    [['things', 'describe', 'pi-ghost']],
    [['things', 'delete', 'pi-ghost']],
    [['certs', 'rotate', 'pi-ghost']],
    [['certs', 'rotate', 'pi-ghost', '--force']],
  ])('%j → exit 65, nothing created', async (argv) => {
    const dir = cwd();
    const r = await cli([...local(), ...argv], { cwd: dir });
    expect(r.code).toBe(65);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`pifleet: thing pi-ghost not found (hint: pifleet --local ${core.dataDir} things list)\n`);
    expect(fs.readdirSync(dir)).toEqual([]);
    // No orphan shadow: the shadow service would have made one for any name.
    const { IoTDataPlaneClient, GetThingShadowCommand } = await import('@aws-sdk/client-iot-data-plane');
    const credentials = localProfileCredentials(core.info);
    const data = new IoTDataPlaneClient({
      region: core.info.region,
      endpoint: core.info.http,
      credentials,
      maxAttempts: 1,
    });
    try {
      await expect(data.send(new GetThingShadowCommand({ thingName: 'pi-ghost' }))).rejects.toMatchObject({
        name: 'ResourceNotFoundException',
      });
    } finally {
      data.destroy();
    }
    const things = json<{ things: { thingName: string }[] }>(
      (await cli([...local(), 'things', 'list', '--json'], { cwd: dir })).stdout,
    );
    expect(things.things.map((t) => t.thingName)).not.toContain('pi-ghost');
  });

  it('--json: the same error as one JSON line', async () => {
    const r = await cli([...local(), '--json', 'things', 'describe', 'pi-ghost'], { cwd: cwd() });
    expect(r.code).toBe(65);
    expect(JSON.parse(r.stderr)).toEqual({
      error: {
        code: 'NOT_FOUND',
        message: 'thing pi-ghost not found',
        hint: `pifleet --local ${core.dataDir} things list`,
        exitCode: 65,
      },
    });
  });
});

describe('--local', () => {
  const listed = (stdout: string) => json<{ things: unknown[] }>(stdout).things;

  it('a bare --local does not take the command after it as the directory ($PIFLEET_LOCAL, then the default)', async () => {
    const env = { PIFLEET_LOCAL: core.dataDir };
    for (const argv of [
      ['--local', 'things', 'list', '--json'],
      ['things', 'list', '--local', '--json'],
    ]) {
      const r = await cli(argv, { cwd: cwd(), env });
      expect(r.stderr, argv.join(' ')).toBe('');
      expect(r.code).toBe(0);
      expect(Array.isArray(listed(r.stdout))).toBe(true);
    }
    // The default directory, .pifleet/local-core, relative to the working directory.
    const dir = cwd();
    fs.mkdirSync(path.join(dir, '.pifleet'));
    fs.symlinkSync(core.dataDir, path.join(dir, '.pifleet', 'local-core'));
    expect((await cli(['--local', 'things', 'list', '--json'], { cwd: dir })).code).toBe(0);
  });

  it('a bare --local does not take a thing name or an assignment after it', async () => {
    const dir = cwd();
    const env = { PIFLEET_LOCAL: core.dataDir };
    expect((await cli(['things', 'create', 'pi-loc1'], { cwd: dir, env: { PIFLEET_LOCAL: core.dataDir } })).code).toBe(
      0,
    );
    const described = await cli(['things', 'describe', '--local', 'pi-loc1', '--json'], { cwd: dir, env });
    expect(described.stderr).toBe('');
    expect(json<{ thingName: string }>(described.stdout).thingName).toBe('pi-loc1');
    const desired = await cli(['shadow', 'desire', 'pi-loc1', '--local', 'logLevel=debug'], { cwd: dir, env });
    expect(desired.stderr).toBe('');
    expect(desired.code).toBe(0);
  });

  it('takes a directory as --local=DIR, as --local PATH, or as --local NAME of a core data directory', async () => {
    const parent = path.dirname(core.dataDir);
    const name = path.basename(core.dataDir);
    for (const argv of [
      [`--local=${core.dataDir}`, 'things', 'list', '--json'],
      ['--local', core.dataDir, 'things', 'list', '--json'],
      ['things', 'list', '--local', core.dataDir, '--json'],
      ['--local', `./${name}`, 'things', 'list', '--json'],
      ['--local', name, 'things', 'list', '--json'],
      [`--local=${name}`, 'things', 'list', '--json'],
    ]) {
      const r = await cli(argv, { cwd: parent });
      expect(stderrBesidesRetries(r.stderr), argv.join(' ')).toEqual([]);
      expect(r.code).toBe(0);
    }
  });

  it('a word after --local that is neither a command nor a directory: usage error saying how to name one', async () => {
    const r = await cli(['--local', 'mycore', 'things', 'list'], { cwd: cwd() });
    expect(r.code).toBe(64);
    expect(r.stderr).toBe(
      "pifleet: unknown command 'mycore' (hint: to use mycore as the local core's data directory, write --local=mycore or --local ./mycore)\n",
    );
    const excess = await cli(['things', 'list', '--local', 'mycore'], { cwd: cwd() });
    expect(excess.code).toBe(64);
    expect(excess.stderr).toMatch(/\(hint: to use mycore as the local core's data directory, write --local=mycore/);
  });
});

describe('hints run as printed', () => {
  it('from a checkout, a hint is a node command with the same target, and it runs', async () => {
    const dir = cwd();
    const invocation = invocationOf(BINS.pifleet, REPO, fs.existsSync);
    expect(invocation).toEqual({
      pifleet: 'node provisioning/bin/pifleet.js',
      localCore: 'node cloud/bin/pifleet-local-core.js',
    });
    const stdout = sink();
    const stderr = sink();
    const code = await runCli([...local(), 'things', 'describe', 'pi-hint'], { stdout, stderr, cwd: dir, invocation });
    expect(code).toBe(65);
    const hint = /\(hint: (.*)\)$/.exec(stderr.text.trim())?.[1] ?? '';
    expect(hint).toBe(`node provisioning/bin/pifleet.js --local ${core.dataDir} things list`);
    // The hint's command line, run: node and a path that exists, then arguments this CLI accepts.
    const [node, script, ...args] = hint.split(' ');
    expect(node).toBe('node');
    expect(fs.existsSync(path.join(REPO, script ?? ''))).toBe(true);
    const listed = await cli([...args, '--json'], { cwd: dir });
    expect(stderrBesidesRetries(listed.stderr)).toEqual([]);
    expect(listed.code).toBe(0);
  });
});

/**
 * The lines of a run's stderr other than the CLI's throttling retries. Separate runs back to back
 * (each its own client-side limiter) can pass ListThings' 10 per second, as against AWS: the core
 * throttles, the CLI retries and logs it, and that line is the only stderr a test may allow.
 */
function stderrBesidesRetries(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line !== '' && !line.includes('"msg":"retrying"'));
}
