import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSystemdNotifier } from '../../src/systemd/notify.js';
import { renderUnit } from '../../src/systemd/unit.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-systemd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in for systemd-notify that appends its arguments and NOTIFY_SOCKET to a file. */
function recorder(): { command: string; lines: () => string[] } {
  const log = path.join(dir, `calls-${Math.random().toString(36).slice(2)}.txt`);
  const command = path.join(dir, `notify-${Math.random().toString(36).slice(2)}.sh`);
  writeFileSync(command, `#!/bin/sh\necho "$NOTIFY_SOCKET $*" >> ${log}\n`);
  chmodSync(command, 0o755);
  return { command, lines: () => readFileSync(log, 'utf8').trim().split('\n') };
}

describe('sd_notify', () => {
  it('sends READY, WATCHDOG and STOPPING with the agent pid when NOTIFY_SOCKET is set', async () => {
    const r = recorder();
    const n = createSystemdNotifier({
      env: { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '4242' },
      pid: 4242,
      command: r.command,
    });
    expect(n.enabled).toBe(true);
    expect(n.watchdogIntervalMs).toBe(15_000);
    await n.ready('running');
    await n.watchdog();
    await n.stopping();
    expect(r.lines()).toEqual([
      '/run/systemd/notify --pid=4242 --ready STATUS=running',
      '/run/systemd/notify --pid=4242 WATCHDOG=1',
      '/run/systemd/notify --pid=4242 STOPPING=1',
    ]);
  });

  it.each([
    [{}, false, undefined],
    [{ NOTIFY_SOCKET: '/run/x' }, true, undefined],
    [{ NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '10000000', WATCHDOG_PID: '1' }, true, undefined],
    [{ NOTIFY_SOCKET: '/run/x', WATCHDOG_USEC: '10000000' }, true, 5000],
  ])('env %j → enabled %s, watchdog %s', async (env, enabled, interval) => {
    const n = createSystemdNotifier({ env, pid: 99, command: '/nonexistent/systemd-notify' });
    expect(n.enabled).toBe(enabled);
    expect(n.watchdogIntervalMs).toBe(interval);
    // Outside systemd a no-op; inside, a missing helper is logged, never thrown.
    await expect(n.ready()).resolves.toBeUndefined();
  });
});

describe('renderUnit', () => {
  it('writes a hardened notify unit that does not restart on a config error and stops a crash loop at start', () => {
    const unit = renderUnit({
      execPath: '/opt/pifleet/bin/pifleet-agent',
      configPath: '/etc/pifleet/agent.json',
      outboxDir: '/var/lib/pifleet',
      watchdogSec: 20,
    });
    for (const line of [
      'Type=notify',
      'NotifyAccess=all',
      'WatchdogSec=20',
      'Restart=always',
      'RestartPreventExitStatus=78',
      'StartLimitIntervalSec=120',
      'StartLimitBurst=10',
      'User=pifleet',
      'SupplementaryGroups=gpio i2c',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/pifleet',
      'ExecStart=/opt/pifleet/bin/pifleet-agent run --config /etc/pifleet/agent.json',
    ]) {
      expect(unit.split('\n')).toContain(line);
    }
  });
});
