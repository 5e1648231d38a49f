import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AGENT_INSTALL_PATHS,
  AGENT_NODE_COMMAND,
  AGENT_NODE_OPTIONS,
  AGENT_RESTART,
  renderAgentUnit,
} from '../src/deploy.js';

const lines = (unit: string) => unit.split('\n');
const pathLines = (unit: string) => lines(unit).filter((l) => /^(ReadWrite|ReadOnly)Paths=/.test(l));

/** The `key=value` settings of one section of a unit. */
function section(unit: string, name: string): Map<string, string> {
  const start = lines(unit).indexOf(`[${name}]`);
  if (start < 0) throw new Error(`no [${name}] section`);
  const settings = new Map<string, string>();
  for (const line of lines(unit).slice(start + 1)) {
    if (line.startsWith('[')) break;
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) settings.set(m[1] as string, m[2] as string);
  }
  return settings;
}

/**
 * How many times systemd 252 starts a unit whose every run lasts `runSec` before its start limit
 * refuses a start (Infinity: never, within 1000 starts). The rate limiter as src/basic/ratelimit.c
 * has it: a start more than the interval after the window began opens a new window; within a
 * window, at most `StartLimitBurst` starts.
 */
function startsBeforeGivingUp(unit: string, runSec: number): number {
  const unitSection = section(unit, 'Unit');
  const interval = Number(unitSection.get('StartLimitIntervalSec'));
  const burst = Number(unitSection.get('StartLimitBurst'));
  const restartSec = Number(section(unit, 'Service').get('RestartSec'));
  let begin: number | undefined;
  let num = 0;
  for (let start = 0, t = 0; start < 1000; start++, t += runSec + restartSec) {
    if (begin === undefined || t - begin > interval) {
      begin = t;
      num = 0;
    } else if (num >= burst) {
      return start;
    }
    num++;
  }
  return Number.POSITIVE_INFINITY;
}

describe('renderAgentUnit', () => {
  it('by default runs the agent where the README installs it, with node from the service PATH', () => {
    const unit = renderAgentUnit({ configPath: AGENT_INSTALL_PATHS.configFile });
    expect(AGENT_NODE_COMMAND).toBe('/usr/bin/env node');
    expect(lines(unit)).toContain(
      `ExecStart=/usr/bin/env node ${AGENT_INSTALL_PATHS.agentBin} run --config ${AGENT_INSTALL_PATHS.configFile}`,
    );
    expect(pathLines(unit)).toEqual([
      `ReadWritePaths=${AGENT_INSTALL_PATHS.stateDir}`,
      `ReadOnlyPaths=${AGENT_INSTALL_PATHS.configDir}`,
    ]);
    expect(AGENT_INSTALL_PATHS.agentBin.startsWith(`${AGENT_INSTALL_PATHS.agentDir}/`)).toBe(true);
    expect(AGENT_INSTALL_PATHS.configFile.startsWith(`${AGENT_INSTALL_PATHS.configDir}/`)).toBe(true);
  });

  it('passes the measured V8 flags in NODE_OPTIONS, which Node accepts there and applies', () => {
    const unit = renderAgentUnit({ configPath: AGENT_INSTALL_PATHS.configFile });
    const env = lines(unit).filter((l) => l.startsWith('Environment='));
    expect(env).toEqual(['Environment=NODE_ENV=production', `Environment="NODE_OPTIONS=${AGENT_NODE_OPTIONS}"`]);
    // Node refuses a flag NODE_OPTIONS may not carry (exit 9) before running anything.
    // Young objects kept for a while grow the new space: to 64 MiB without the flag, 2 MiB with it.
    const grow =
      'let keep = []; for (let i = 0; i < 3e6; i++) { keep.push({ i }); if (keep.length > 2e5) keep = []; }' +
      "console.log(require('node:v8').getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size)";
    const probe = (nodeOptions: string) =>
      spawnSync(process.execPath, ['-e', grow], {
        env: { PATH: process.env.PATH, NODE_OPTIONS: nodeOptions },
        encoding: 'utf8',
        timeout: 30_000,
      });
    const withFlags = probe(AGENT_NODE_OPTIONS);
    expect(withFlags.stderr).toBe('');
    expect(withFlags.status).toBe(0);
    expect(Number(withFlags.stdout)).toBeLessThanOrEqual(2 * 1024 ** 2);
    expect(Number(probe('').stdout)).toBeGreaterThan(4 * 1024 ** 2);
  });

  it.each([
    ['/usr/local/bin/pifleet-agent', undefined, 'ExecStart=/usr/local/bin/pifleet-agent run'],
    ['/srv/agent/bin/pifleet-agent.js', undefined, 'ExecStart=/usr/bin/env node /srv/agent/bin/pifleet-agent.js run'],
    ['/srv/agent/bin/pifleet-agent.js', '/usr/bin/node', 'ExecStart=/usr/bin/node /srv/agent/bin/pifleet-agent.js run'],
  ])('execPath %s, nodePath %s', (execPath, nodePath, start) => {
    const unit = renderAgentUnit({
      configPath: '/etc/pifleet/agent.json',
      execPath,
      ...(nodePath ? { nodePath } : {}),
    });
    expect(lines(unit).find((l) => l.startsWith('ExecStart='))).toMatch(new RegExp(`^${start.replace(/[.]/g, '\\.')}`));
  });

  // systemd keeps the read-only entry of a path listed twice: the outbox could not be written.
  it.each([
    ['/home/pi/bundle/agent.json', '/home/pi/bundle', ['ReadWritePaths=/home/pi/bundle']],
    ['/home/pi/bundle/agent.json', '/home/pi/bundle/', ['ReadWritePaths=/home/pi/bundle/']],
    ['/var/lib/pifleet/conf/agent.json', '/var/lib/pifleet', ['ReadWritePaths=/var/lib/pifleet']],
    // An outbox below the config directory: the deeper, writable entry wins there.
    [
      '/etc/pifleet/agent.json',
      '/etc/pifleet/state',
      ['ReadWritePaths=/etc/pifleet/state', 'ReadOnlyPaths=/etc/pifleet'],
    ],
    // A sibling whose name starts the same is not inside.
    [
      '/etc/pifleet-conf/agent.json',
      '/etc/pifleet',
      ['ReadWritePaths=/etc/pifleet', 'ReadOnlyPaths=/etc/pifleet-conf'],
    ],
  ])('config %s, outbox dir %s: each directory listed once', (configPath, outboxDir, expected) => {
    expect(pathLines(renderAgentUnit({ configPath, outboxDir }))).toEqual(expected);
  });

  it('restarts every failure but a configuration error, and sets its start limit in [Unit]', () => {
    const unit = renderAgentUnit({ configPath: AGENT_INSTALL_PATHS.configFile });
    expect(section(unit, 'Service').get('Restart')).toBe('always');
    expect(section(unit, 'Service').get('RestartSec')).toBe('5');
    // 69 restarts: /dev/i2c-N not there yet at boot is 69 too, and a restart fixes that.
    expect(section(unit, 'Service').get('RestartPreventExitStatus')).toBe('78');
    expect(AGENT_RESTART.preventExitStatus).toEqual([78]);
    expect(section(unit, 'Unit').get('StartLimitIntervalSec')).toBe('120');
    expect(section(unit, 'Unit').get('StartLimitBurst')).toBe('10');
    expect(section(unit, 'Service').has('StartLimitBurst')).toBe(false);
  });

  it.each([5, 10, 30, 120])(
    'watchdog %i s: an agent refusing at once (exit 69) stops after 10 starts; a watchdog kill restarts forever',
    (watchdogSec) => {
      const unit = renderAgentUnit({ configPath: AGENT_INSTALL_PATHS.configFile, watchdogSec });
      // A Node it does not support or 32-bit ARM: one line and exit 69 within a second of each start.
      expect(startsBeforeGivingUp(unit, 1)).toBe(10);
      // Killed by the watchdog (no earlier than WatchdogSec after READY): never gives up.
      expect(startsBeforeGivingUp(unit, watchdogSec)).toBe(Number.POSITIVE_INFINITY);
      // A failure well after start (a crash while connected) keeps being restarted.
      expect(startsBeforeGivingUp(unit, 60)).toBe(Number.POSITIVE_INFINITY);
    },
  );

  it('with the default watchdog, any agent failing within 7 s of every start stops after 10 starts (about 2 min at most)', () => {
    const unit = renderAgentUnit({ configPath: AGENT_INSTALL_PATHS.configFile });
    for (const runSec of [0, 1, 3, AGENT_RESTART.fastFailureSec]) expect(startsBeforeGivingUp(unit, runSec)).toBe(10);
    expect(startsBeforeGivingUp(unit, AGENT_RESTART.fastFailureSec + 1)).toBe(Number.POSITIVE_INFINITY);
  });

  // Debian and Raspberry Pi OS Bookworm ship systemd 252: verify reports unknown directives (one
  // from a later systemd, such as RestartSteps, is ignored with a warning) and a missing ExecStart program.
  it.runIf(existsSync('/usr/bin/systemd-analyze'))(
    'systemd-analyze verify accepts the unit with no warning (installed and in-place bundles)',
    () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'pifleet-unit-'));
      try {
        for (const [name, options] of [
          ['installed', { configPath: AGENT_INSTALL_PATHS.configFile }],
          ['in-place', { configPath: '/home/pi/bundle/agent.json', outboxDir: '/home/pi/bundle', watchdogSec: 5 }],
          ['self-update', { configPath: AGENT_INSTALL_PATHS.configFile, selfUpdate: {} }],
        ] as const) {
          const file = path.join(dir, `pifleet-agent-${name}.service`);
          writeFileSync(file, renderAgentUnit(options));
          const verify = spawnSync('/usr/bin/systemd-analyze', ['verify', file], { encoding: 'utf8', timeout: 20_000 });
          expect(verify.status, verify.stderr).toBe(0);
          expect(verify.stderr, name).toBe('');
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  describe('selfUpdate (pifleet.agent-update)', () => {
    const execStartPre = (unit: string) => lines(unit).filter((l) => l.startsWith('ExecStartPre='));

    it('guards every start from the factory install and runs the release `current` names', () => {
      const unit = renderAgentUnit({ configPath: AGENT_INSTALL_PATHS.configFile, selfUpdate: {} });
      const { agentDir, stateDir, bootGuard, currentLink, configFile } = AGENT_INSTALL_PATHS;
      expect(bootGuard.startsWith(`${agentDir}/`)).toBe(true);
      expect(currentLink).toBe(`${stateDir}/current`);
      expect(execStartPre(unit)).toEqual([
        `ExecStartPre=-/usr/bin/env node ${bootGuard} --state-dir ${stateDir} --factory-dir ${agentDir}`,
      ]);
      expect(lines(unit)).toContain(
        `ExecStart=/usr/bin/env node ${currentLink}/bin/pifleet-agent.js run --config ${configFile}`,
      );
      // The guard runs before ExecStart; the state dir is the only writable path, the factory install is not in it.
      expect(lines(unit).findIndex((l) => l.startsWith('ExecStartPre='))).toBeLessThan(
        lines(unit).findIndex((l) => l.startsWith('ExecStart=')),
      );
      expect(pathLines(unit)).toEqual([`ReadWritePaths=${stateDir}`, `ReadOnlyPaths=${AGENT_INSTALL_PATHS.configDir}`]);
      expect(section(unit, 'Service').get('ProtectSystem')).toBe('strict');
      // A release crashing at start, 78 included (it refuses the device's config), is restarted, so
      // the guard runs and rolls it back at its 4th start, before systemd's start limit (10) stops
      // the service; a config no release accepts stops at that limit.
      expect(section(unit, 'Service').has('RestartPreventExitStatus')).toBe(false);
      expect(section(unit, 'Service').get('Restart')).toBe('always');
      expect(startsBeforeGivingUp(unit, 1)).toBe(AGENT_RESTART.startLimitBurst);
      expect(startsBeforeGivingUp(unit, 1)).toBeGreaterThan(1 + 3 + 1);
    });

    it('the guard the unit names is built from the agent package (dist/update/boot-guard.js ← src/update/boot-guard.ts)', () => {
      const relative = path.relative(AGENT_INSTALL_PATHS.agentDir, AGENT_INSTALL_PATHS.bootGuard);
      expect(relative).toBe('dist/update/boot-guard.js');
      const source = path.join(import.meta.dirname, '../../device-agent/src/update/boot-guard.ts');
      expect(existsSync(source)).toBe(true);
    });

    it('a state directory outside the outbox directory is writable too; other directories stay read-only', () => {
      const unit = renderAgentUnit({
        configPath: '/etc/pifleet/agent.json',
        outboxDir: '/var/lib/pifleet-outbox',
        selfUpdate: { stateDir: '/srv/pifleet/', factoryDir: '/usr/lib/pifleet' },
      });
      expect(pathLines(unit)).toEqual([
        'ReadWritePaths=/var/lib/pifleet-outbox /srv/pifleet',
        'ReadOnlyPaths=/etc/pifleet',
      ]);
      expect(execStartPre(unit)).toEqual([
        'ExecStartPre=-/usr/bin/env node /usr/lib/pifleet/dist/update/boot-guard.js --state-dir /srv/pifleet --factory-dir /usr/lib/pifleet',
      ]);
      expect(lines(unit)).toContain(
        'ExecStart=/usr/bin/env node /srv/pifleet/current/bin/pifleet-agent.js run --config /etc/pifleet/agent.json',
      );
    });

    it.each([
      [{ execPath: '/opt/x/bin/pifleet-agent.js', selfUpdate: {} }, /no execPath/],
      [{ selfUpdate: { stateDir: 'var/lib/pifleet' } }, /absolute/],
      [{ selfUpdate: { stateDir: '/opt/pifleet/state' } }, /must not contain each other/],
      [{ selfUpdate: { factoryDir: '/var/lib/pifleet/factory' } }, /must not contain each other/],
    ])('refuses %o', (options, message) => {
      expect(() => renderAgentUnit({ configPath: '/etc/pifleet/agent.json', ...options })).toThrow(message);
    });

    it('without selfUpdate the unit has no guard', () => {
      expect(execStartPre(renderAgentUnit({ configPath: AGENT_INSTALL_PATHS.configFile }))).toEqual([]);
    });
  });
});
