import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { EXIT } from '@pifleet/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliIo, runCli } from '../../src/main.js';
import { makePki, startTlsBroker, type TestPki, waitFor } from '../transport/tls-broker.js';

/**
 * What `pifleet-agent` loads. `run` on a provisioned device without self-update (every Pi, at
 * every start) loads neither the claim flow nor the updater; the commands and starts that need
 * them still load them and work. Each process runs with a module hook that writes every module it
 * loads to a file, so "not loaded" is observed, not inferred.
 */

const bin = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bin/pifleet-agent.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-lazy-'));
let pki: TestPki;
let hook: string;
beforeAll(async () => {
  pki = await makePki('pi-lazy');
  // The launcher runs src/main.ts in a child node: NODE_OPTIONS carries the hook into it.
  const hooks = `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.LAZY_LOADED_FILE, url + '\\n');
  return next(url, context);
}`;
  hook = path.join(dir, 'hook.mjs');
  writeFileSync(
    hook,
    `import { register } from 'node:module';\nregister(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});\n`,
  );
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  pki?.cleanup();
});

let n = 0;
/** Runs `pifleet-agent ARGS` as a process with the hook; `until` decides when to send SIGTERM. */
async function agent(args: string[], until?: () => Promise<void>) {
  const loadedFile = path.join(dir, `loaded-${++n}.txt`);
  const child = spawn(process.execPath, [bin, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      NODE_OPTIONS: `--import ${pathToFileURL(hook).href}`,
      LAZY_LOADED_FILE: loadedFile,
    },
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  if (until) {
    try {
      await until();
    } finally {
      child.kill('SIGTERM');
    }
  }
  const code = await waitFor<number | null>('the agent to exit', (done) => void exited.then(done), 30_000);
  const loaded = existsSync(loadedFile) ? readFileSync(loadedFile, 'utf8').split('\n') : [];
  const has = (suffix: string) => loaded.some((url) => url.includes(suffix));
  return { code, out, has };
}

const CLAIM_FLOW = ['/src/provisioning/provision.ts', '/src/provisioning/flow.ts', '/src/provisioning/keys.ts'];
const UPDATER = ['/src/update/updater.ts', '/src/update/unpack.ts', '/node_modules/tar/'];

describe('pifleet-agent loads what a command needs', () => {
  it('run on a provisioned device: connects and stops cleanly without loading the claim flow or the updater', async () => {
    const broker = await startTlsBroker(pki);
    const online = waitFor<void>(
      'online status',
      (done) => broker.aedes.on('publish', (p) => p.topic === 'pifleet/pi-lazy/status' && done()),
      30_000,
    );
    const file = path.join(dir, 'run.json');
    writeFileSync(
      file,
      JSON.stringify({
        thingName: 'pi-lazy',
        endpoint: '127.0.0.1',
        port: broker.port,
        certFile: pki.certFile,
        keyFile: pki.keyFile,
        caFile: pki.caFile,
        hardware: 'none',
        mqtt: { protocol: '3.1.1' },
        shadow: { requestTimeoutMs: 2000 },
        outbox: { path: path.join(dir, 'run-state', 'outbox.db') },
      }),
    );
    const r = await agent(['run', '--config', file], () => online);
    await broker.close();
    expect(r.code, r.out).toBe(EXIT.ok);
    // The hook saw the agent's own modules (it works)…
    expect(r.has('/src/main.ts')).toBe(true);
    expect(r.has('/src/provisioning/needs.ts')).toBe(true);
    expect(r.has('/src/app/runtime.ts')).toBe(true);
    // …and none of what a provisioned device without self-update never uses.
    for (const m of [...CLAIM_FLOW, ...UPDATER]) expect(r.has(m), m).toBe(false);
  });

  it('check-config on an image (not provisioned yet) loads the claim flow and answers', async () => {
    const file = path.join(dir, 'image.json');
    writeFileSync(
      file,
      JSON.stringify({
        endpoint: '127.0.0.1',
        certFile: path.join(dir, 'image', 'cert.pem'),
        keyFile: path.join(dir, 'image', 'key.pem'),
        caFile: pki.caFile,
        hardware: 'none',
        provisioning: { templateName: 'pifleet-claim', claimCertFile: pki.certFile, claimKeyFile: pki.keyFile },
      }),
    );
    const r = await agent(['check-config', file]);
    expect(r.code, r.out).toBe(EXIT.ok);
    expect(r.out).toMatch(/ok, not provisioned yet \(template pifleet-claim/);
    expect(r.has('/src/provisioning/provision.ts')).toBe(true);
  });

  it('provision loads the claim flow and reports a claim it cannot make in time with 69', async () => {
    const file = path.join(dir, 'image-provision.json');
    writeFileSync(
      file,
      JSON.stringify({
        endpoint: '127.0.0.1',
        // Nothing listens here: the claim connection never comes up.
        port: 1,
        certFile: path.join(dir, 'image-p', 'cert.pem'),
        keyFile: path.join(dir, 'image-p', 'key.pem'),
        caFile: pki.caFile,
        hardware: 'none',
        provisioning: {
          templateName: 'pifleet-claim',
          claimCertFile: pki.certFile,
          claimKeyFile: pki.keyFile,
          timeoutSeconds: 10,
        },
      }),
    );
    const r = await agent(['provision', '--config', file]);
    expect(r.code, r.out).toBe(EXIT.unavailable);
    expect(r.out).toMatch(/pifleet-agent: .*\nhint: check the endpoint/);
    for (const m of CLAIM_FLOW) expect(r.has(m), m).toBe(true);
  });

  it('run from an updatable install (<state dir>/current) loads the updater it imports lazily, runs and stops cleanly', async () => {
    const broker = await startTlsBroker(pki);
    const online = waitFor<void>(
      'online status',
      (done) => broker.aedes.on('publish', (p) => p.topic === 'pifleet/pi-lazy/status' && done()),
      30_000,
    );
    // The layout `print-unit --self-update` makes: the running release is <state dir>/current.
    const stateDir = path.join(dir, 'updatable');
    mkdirSync(path.join(dir, 'release-1', 'bin'), { recursive: true });
    mkdirSync(stateDir, { recursive: true });
    symlinkSync(path.join(dir, 'release-1'), path.join(stateDir, 'current'));
    const file = path.join(dir, 'updatable.json');
    writeFileSync(
      file,
      JSON.stringify({
        thingName: 'pi-lazy',
        endpoint: '127.0.0.1',
        port: broker.port,
        certFile: pki.certFile,
        keyFile: pki.keyFile,
        caFile: pki.caFile,
        hardware: 'none',
        mqtt: { protocol: '3.1.1' },
        shadow: { requestTimeoutMs: 2000 },
        outbox: { path: path.join(stateDir, 'outbox.db') },
        logLevel: 'warn',
      }),
    );
    let stop: (signal: 'SIGTERM') => void = () => undefined;
    const stopped = new Promise<'SIGTERM'>((resolve) => {
      stop = resolve;
    });
    const err: string[] = [];
    const io: CliIo = {
      stdout: () => undefined,
      stderr: (t) => err.push(t),
      env: {},
      waitForStop: () => stopped,
      launcher: path.join(stateDir, 'current', 'bin', 'pifleet-agent.js'),
    };
    const exit = runCli(['run', '--config', file], io);
    let stopping = false;
    try {
      // A failed lazy import ends `run` (with 1) before it connects: said at once, with its message.
      await Promise.race([
        online,
        exit.then((code) => {
          if (!stopping) throw new Error(`run ended with ${code} before connecting: ${err.join('')}`);
        }),
      ]);
      stopping = true;
      stop('SIGTERM');
      expect(await exit, err.join('')).toBe(EXIT.ok);
    } finally {
      stopping = true;
      stop('SIGTERM');
      await exit;
      await broker.close();
    }
  });
});
