import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { AGENT_INSTALL_PATHS, EXIT, type StatusMessage, shadowTopics } from '@pifleet/protocol';
import { BUNDLE_FILES, runCli } from '@pifleet/provisioning';
import { BINS, launchBin, REPO, type RunningCore, removeDir, startCore, tempDir } from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The operator's path with no edits in between: `pifleet things create --local` writes a bundle,
 * `pifleet-agent check-config` accepts its agent.json, and `pifleet-agent run --config` with that
 * file connects to the local IoT Core, goes online and reports its shadow.
 */

let dir: string;
let core: RunningCore;

beforeAll(async () => {
  dir = tempDir('bundle');
  core = await startCore(path.join(dir, 'core'));
});

afterAll(async () => {
  await core?.stop();
  removeDir(dir);
});

function sink() {
  let text = '';
  return {
    write: (s: string) => {
      text += s;
    },
    text: () => text,
  };
}

describe('a bundle from pifleet things create', () => {
  it('passes check-config and lets pifleet-agent connect to the local core unedited', async () => {
    const bundleDir = path.join(dir, 'bundles', 'bundle-pi');
    const out = sink();
    const err = sink();
    const code = await runCli(
      ['--local', path.join(dir, 'core'), 'things', 'create', 'bundle-pi', '--out', bundleDir],
      { stdout: out, stderr: err, cwd: dir },
    );
    expect(code, err.text()).toBe(EXIT.ok);
    const config = path.join(bundleDir, BUNDLE_FILES.agentConfig);

    const check = spawnSync(process.execPath, [BINS.agent, 'check-config', config], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(check.status, check.stderr).toBe(EXIT.ok);

    // The agent goes online (retained status) and reports its shadow.
    const online = new Promise<StatusMessage>((resolve) => {
      void core.core.services.broker.bus.subscribe('pifleet/bundle-pi/status', (m) => {
        const status = JSON.parse(m.payload.toString('utf8')) as StatusMessage;
        if (status.state === 'online') resolve(status);
      });
    });
    const reported = new Promise<void>((resolve) => {
      void core.core.services.broker.bus.subscribe(shadowTopics('bundle-pi').updateAccepted, () => resolve());
    });
    const agent = launchBin(BINS.agent, { args: ['run', '--config', config] });
    try {
      const timeout = (what: string) =>
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`${what} within 30 s:\n${agent.output()}`)), 30_000),
        );
      const status = await Promise.race([online, timeout('no online status')]);
      expect(status.thingName).toBe('bundle-pi');
      await Promise.race([reported, timeout('no shadow report')]);
    } finally {
      agent.child.kill('SIGTERM');
    }
    expect((await agent.exited).code).toBe(EXIT.ok);
  });

  it('an installed bundle (--install-dir /etc/pifleet) carries the unit print-unit writes for the README install', async () => {
    const out = sink();
    const err = sink();
    const code = await runCli(
      [
        '--local',
        path.join(dir, 'core'),
        'things',
        'create',
        'bundle-inst',
        '--install-dir',
        AGENT_INSTALL_PATHS.configDir,
      ],
      { stdout: out, stderr: err, cwd: dir },
    );
    expect(code, err.text()).toBe(EXIT.ok);
    // Without --out, under .pifleet/bundles (git-ignored: the bundle holds a private key).
    const bundleDir = path.join(dir, '.pifleet', 'bundles', 'bundle-inst');
    expect(existsSync(path.join(bundleDir, BUNDLE_FILES.privateKey))).toBe(true);
    // Both the default and the old ./bundles location: git check-ignore names every ignored path.
    const paths = ['.pifleet/bundles/bundle-inst/private.pem.key', 'bundles/x/private.pem.key'];
    const ignored = spawnSync('git', ['check-ignore', ...paths], { cwd: REPO, encoding: 'utf8' });
    expect(ignored.stdout.trim().split('\n'), ignored.stderr).toEqual(paths);

    const config = JSON.parse(readFileSync(path.join(bundleDir, BUNDLE_FILES.agentConfig), 'utf8')) as Record<
      string,
      unknown
    >;
    expect(config.keyFile).toBe(`${AGENT_INSTALL_PATHS.configDir}/${BUNDLE_FILES.privateKey}`);
    expect(config).not.toHaveProperty('outbox'); // the agent's default, in the state directory
    const printed = spawnSync(
      process.execPath,
      [BINS.agent, 'print-unit', '--config', AGENT_INSTALL_PATHS.configFile],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect(printed.status, printed.stderr).toBe(EXIT.ok);
    expect(readFileSync(path.join(bundleDir, BUNDLE_FILES.unit), 'utf8')).toBe(printed.stdout);
    const unit = printed.stdout.split('\n');
    expect(unit).toContain(
      `ExecStart=/usr/bin/env node ${AGENT_INSTALL_PATHS.agentBin} run --config ${AGENT_INSTALL_PATHS.configFile}`,
    );
    // The restart policy travels with the bundle: no restart on a bad config (78); an agent failing
    // at every start (69: a Node it does not support, 32-bit ARM) stops after 10 starts.
    for (const line of ['RestartPreventExitStatus=78', 'StartLimitIntervalSec=120', 'StartLimitBurst=10']) {
      expect(unit).toContain(line);
    }
  });

  it('a bundle used in place keeps its outbox beside it and lists its directory once, writable', async () => {
    const bundleDir = path.join(dir, 'in-place');
    const err = sink();
    const code = await runCli(
      ['--local', path.join(dir, 'core'), 'things', 'create', 'bundle-here', '--out', bundleDir],
      {
        stdout: sink(),
        stderr: err,
        cwd: dir,
      },
    );
    expect(code, err.text()).toBe(EXIT.ok);
    const config = JSON.parse(readFileSync(path.join(bundleDir, BUNDLE_FILES.agentConfig), 'utf8')) as {
      outbox?: { path?: string };
    };
    expect(config.outbox?.path).toBe(path.join(bundleDir, 'outbox.db'));
    const unit = readFileSync(path.join(bundleDir, BUNDLE_FILES.unit), 'utf8').split('\n');
    expect(unit.filter((l) => /^(ReadWrite|ReadOnly)Paths=/.test(l))).toEqual([`ReadWritePaths=${bundleDir}`]);
  });
});
