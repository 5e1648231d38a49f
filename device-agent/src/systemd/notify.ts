import { spawn as nodeSpawn } from 'node:child_process';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';

/**
 * systemd readiness and watchdog notifications (sd_notify).
 *
 * The protocol is one datagram on the AF_UNIX socket named by `$NOTIFY_SOCKET`. Node has no
 * AF_UNIX datagram sockets and the agent avoids a native addon for this, so each notification
 * runs `systemd-notify --pid=<agent pid> …`. Because the message then comes from a child process,
 * the unit sets `NotifyAccess=all` (see `print-unit`). Notifications are rare (READY once,
 * WATCHDOG every WatchdogSec/2, STOPPING once), so a process per message costs nothing that
 * matters. Outside systemd (`$NOTIFY_SOCKET` unset) every call is a no-op.
 */
export interface Notifier {
  readonly enabled: boolean;
  /** From `$WATCHDOG_USEC` (when meant for this process): how often to ping, in ms (half the timeout). */
  readonly watchdogIntervalMs: number | undefined;
  ready(status?: string): Promise<void>;
  watchdog(): Promise<void>;
  stopping(status?: string): Promise<void>;
  status(text: string): Promise<void>;
}

export interface NotifierOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly pid?: number;
  /** The `systemd-notify` executable (tests point this at a recorder). */
  readonly command?: string;
  readonly logger?: Logger;
}

export function createSystemdNotifier(opts: NotifierOptions = {}): Notifier {
  const env = opts.env ?? process.env;
  const pid = opts.pid ?? process.pid;
  const command = opts.command ?? 'systemd-notify';
  const log = (opts.logger ?? silentLogger()).child({ component: 'systemd' });
  const socket = env.NOTIFY_SOCKET;
  const enabled = typeof socket === 'string' && socket.length > 0;
  const usec = Number(env.WATCHDOG_USEC);
  const forUs = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === pid;
  const watchdogIntervalMs =
    enabled && forUs && Number.isFinite(usec) && usec > 0 ? Math.max(1, Math.floor(usec / 2000)) : undefined;

  const send = (assignments: string[]): Promise<void> => {
    if (!enabled) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const child = nodeSpawn(command, [`--pid=${pid}`, ...assignments], {
        stdio: 'ignore',
        env: { ...process.env, NOTIFY_SOCKET: socket },
      });
      child.on('error', (err) => {
        log.warn({ err }, 'systemd-notify could not run');
        resolve();
      });
      child.on('exit', (code) => {
        if (code !== 0) log.warn({ code, what: assignments[0] }, 'systemd-notify failed');
        resolve();
      });
    });
  };

  return {
    enabled,
    watchdogIntervalMs,
    ready: (status) => send(['--ready', ...(status ? [`STATUS=${status}`] : [])]),
    watchdog: () => send(['WATCHDOG=1']),
    stopping: (status) => send(['STOPPING=1', ...(status ? [`STATUS=${status}`] : [])]),
    status: (text) => send([`STATUS=${text}`]),
  };
}
