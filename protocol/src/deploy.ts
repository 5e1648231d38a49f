/**
 * Deployment artefacts shared by the packages that produce them (provisioning writes the unit into
 * a device bundle) and the agent that runs under them (`pifleet-agent print-unit`). Pure text.
 */

/**
 * Where the README's "Installing on a Raspberry Pi" steps put things on a device. The unit's
 * defaults are these paths, so the unit `print-unit` writes and the one a bundle carries run the
 * agent the README installed, with the config it installed (a test holds the README to them).
 */
export const AGENT_INSTALL_PATHS = {
  /** The `pnpm deploy` output of @pifleet/device-agent, copied to the device. */
  agentDir: '/opt/pifleet',
  /** The agent's launcher inside it, a Node.js script. */
  agentBin: '/opt/pifleet/bin/pifleet-agent.js',
  /** The bundle (`pifleet things create NAME --install-dir /etc/pifleet`): certificates, key, config. */
  configDir: '/etc/pifleet',
  configFile: '/etc/pifleet/agent.json',
  /** The agent's state: the outbox database (the agent's default `outbox.path` is in it). */
  stateDir: '/var/lib/pifleet',
  /**
   * With updates (`selfUpdate`): the boot guard, in the factory install (built from
   * device-agent/src/update/boot-guard.ts), run before every start; it never changes with updates.
   */
  bootGuard: '/opt/pifleet/dist/update/boot-guard.js',
  /** With updates: the link to the running release (`releases/<version>/`, or the factory install). */
  currentLink: '/var/lib/pifleet/current',
} as const;

/**
 * How the unit runs the agent's script: `node` from the service's PATH. systemd gives a service
 * `/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` (systemd 252, Raspberry Pi OS
 * Bookworm), the order of sudo's `secure_path` too, so the node the README's `sudo -u pifleet node …
 * check-config` runs is the node the service runs: NodeSource's package puts Node 24 in
 * `/usr/bin/node`, the README's tarball install links it into `/usr/local/bin`, which comes first. A
 * fixed `/usr/bin/node` would run Debian's own nodejs (Node 18) after a tarball install, or fail
 * with 203/EXEC when there is none. The copied script needs no executable bit either way.
 */
export const AGENT_NODE_COMMAND = '/usr/bin/env node';

/**
 * V8 flags the unit passes in `NODE_OPTIONS` (`bench agent-runtime` measured them on the deployed
 * agent, 5 sensors at 1 Hz): `--max-semi-space-size=1` caps the young generation at 1 MiB per
 * semi-space (Node 24 grows it to 16 MiB for throughput the agent does not need): −10 MiB RSS at
 * the same CPU; `--v8-pool-size=1` keeps one V8 worker thread instead of one per core. Both are
 * allowed in `NODE_OPTIONS`, so `ExecStart=` stays a plain node command.
 */
export const AGENT_NODE_OPTIONS = '--max-semi-space-size=1 --v8-pool-size=1';

/**
 * Restart policy of the unit. Every failure restarts after {@link AGENT_RESTART.restartSec}
 * except a configuration error (78), which no restart can fix. Exit 69 (unavailable) does
 * restart: it is also what an agent started before the device is ready exits with (`/dev/i2c-N`
 * appears only once the bus driver's module has loaded at boot), which a restart fixes. What 69 also means — a Node older than
 * the agent needs, 32-bit ARM (aws-crt has no binary for it), I2C disabled, a native module not
 * built — never fixes itself, and such an agent exits within seconds of every start; so systemd
 * stops trying after `startLimitBurst` starts within the unit's start-limit interval instead of
 * starting it every 5 s forever (the reason stays in the journal; `systemctl reset-failed` and a
 * start, or a reboot, try again). A failure slower than `fastFailureSec` after each start, or a
 * watchdog kill, never uses the burst up: such an agent is restarted as long as it fails.
 */
export const AGENT_RESTART = {
  /** Delay before a restart (`RestartSec`). */
  restartSec: 5,
  /** Starts allowed within the interval (`StartLimitBurst`). */
  startLimitBurst: 10,
  /** An agent whose every run ends within this many seconds stops after `startLimitBurst` starts. */
  fastFailureSec: 7,
  /** Exit codes that never restart (`RestartPreventExitStatus`). */
  preventExitStatus: [78],
} as const;

/**
 * `StartLimitIntervalSec` for a watchdog interval. systemd refuses a start when `startLimitBurst`
 * starts were made within the interval, so an agent whose every run lasts `t` seconds gives up
 * when `startLimitBurst × (restartSec + t)` fits in the interval: wide enough for
 * `t = fastFailureSec`, and narrower than that product for a run ended by the watchdog (which
 * kills no earlier than `watchdogSec` after READY), so watchdog restarts go on. A watchdog shorter
 * than `fastFailureSec` narrows what counts as fast to what it leaves.
 */
export function agentStartLimitIntervalSec(watchdogSec: number): number {
  const { restartSec, startLimitBurst, fastFailureSec } = AGENT_RESTART;
  const fast = startLimitBurst * (restartSec + fastFailureSec);
  const watchdogKilled = startLimitBurst * (restartSec + watchdogSec);
  return Math.min(fast, watchdogKilled - 1);
}

export interface AgentUnitOptions {
  /** Absolute path of the agent's JSON config on the device. */
  readonly configPath: string;
  /** Absolute path of the `pifleet-agent` executable or script. Default {@link AGENT_INSTALL_PATHS}`.agentBin`. */
  readonly execPath?: string;
  /**
   * Command that runs `execPath` when it is a script. Default for a `.js`/`.mjs` file:
   * {@link AGENT_NODE_COMMAND}; none otherwise.
   */
  readonly nodePath?: string;
  /** Directory holding the outbox database, writable by the service. Default `/var/lib/pifleet`. */
  readonly outboxDir?: string;
  /** System user the agent runs as (in the `gpio` and `i2c` groups). Default `pifleet`. */
  readonly user?: string;
  /** systemd watchdog interval; the agent notifies at half of it. Default 30. */
  readonly watchdogSec?: number;
  /**
   * Run the agent through the updater's layout (`pifleet.agent-update` jobs): `ExecStartPre=` the
   * boot guard from the factory install, `ExecStart=` the launcher of `<stateDir>/current`, and the
   * state directory writable. Not with `execPath`.
   */
  readonly selfUpdate?: {
    /** Where releases, `current` and `update.json` live. Default {@link AGENT_INSTALL_PATHS}`.stateDir`. */
    readonly stateDir?: string;
    /** The read-only factory install. Default {@link AGENT_INSTALL_PATHS}`.agentDir`. */
    readonly factoryDir?: string;
  };
}

function dirname(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function trimSlashes(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, '') : p;
}

/** `dir` is `parent` or below it. */
function within(dir: string, parent: string): boolean {
  const d = trimSlashes(dir);
  const p = trimSlashes(parent);
  return d === p || d.startsWith(p === '/' ? '/' : `${p}/`);
}

/**
 * The systemd unit (`pifleet-agent.service`) that runs the agent on a device: `Type=notify` with a
 * watchdog, restart on any failure except a configuration error (exit 78) and up to a start
 * limit for failures at every start ({@link AGENT_RESTART}), a dedicated unprivileged user in the
 * gpio and i2c groups, and a read-only system except the outbox directory. Only directives systemd
 * 252 (Debian and Raspberry Pi OS Bookworm) knows.
 */
export function renderAgentUnit(o: AgentUnitOptions): string {
  if (!o.configPath.startsWith('/')) throw new TypeError('configPath must be absolute');
  const user = o.user ?? 'pifleet';
  const update = o.selfUpdate && {
    stateDir: trimSlashes(o.selfUpdate.stateDir ?? AGENT_INSTALL_PATHS.stateDir),
    factoryDir: trimSlashes(o.selfUpdate.factoryDir ?? AGENT_INSTALL_PATHS.agentDir),
  };
  if (update && o.execPath !== undefined) throw new TypeError('selfUpdate runs <stateDir>/current: no execPath');
  if (update && !(update.stateDir.startsWith('/') && update.factoryDir.startsWith('/'))) {
    throw new TypeError('selfUpdate directories must be absolute');
  }
  if (update && (within(update.factoryDir, update.stateDir) || within(update.stateDir, update.factoryDir))) {
    // The factory install must stay read-only: it is the fallback no update can break.
    throw new TypeError('the factory install and the state directory must not contain each other');
  }
  const execPath = update
    ? `${update.stateDir}/current/bin/pifleet-agent.js`
    : (o.execPath ?? AGENT_INSTALL_PATHS.agentBin);
  const nodePath = o.nodePath ?? (/\.m?js$/.test(execPath) ? AGENT_NODE_COMMAND : undefined);
  const watchdogSec = o.watchdogSec ?? 30;
  const exec = [nodePath, execPath].filter(Boolean).join(' ');
  const outboxDir = o.outboxDir ?? AGENT_INSTALL_PATHS.stateDir;
  const configDir = dirname(o.configPath);
  // systemd keeps the most restrictive mode for a path listed twice: a config directory that is
  // also the outbox directory (a bundle used in place) listed read-only would make the outbox
  // read-only too. A config directory inside the writable one needs no entry of its own.
  const writable = update && !within(update.stateDir, outboxDir) ? [outboxDir, update.stateDir] : [outboxDir];
  const readOnly = writable.some((dir) => within(configDir, dir)) ? '' : `ReadOnlyPaths=${configDir}\n`;
  // With updates, a configuration error (78) restarts too: a new release that refuses the device's
  // config (a stricter schema) exits 78 at every start, and without a restart the boot guard never
  // runs again to roll it back, leaving the device with no agent. The guard rolls such a release
  // back at its 4th start; a config that no release accepts stops at the start limit instead.
  const preventRestart = update
    ? '# 78 (invalid configuration) restarts too: the boot guard rolls back a release that refuses the config.\n'
    : `# 78 = invalid configuration: restarting cannot fix it.\nRestartPreventExitStatus=${AGENT_RESTART.preventExitStatus.join(' ')}\n`;
  // The guard runs from the factory install (read-only, never updated) and never loads a release's
  // code; `-`: a guard that fails must not keep the service from starting what `current` names.
  const guard = update
    ? `# Before every start: finish an interrupted switch or rollback, roll back a release that keeps failing
# at start or missed its health deadline, repair a missing or dangling \`current\` (see the README).
ExecStartPre=-${[nodePath ?? AGENT_NODE_COMMAND, `${update.factoryDir}/dist/update/boot-guard.js`].join(' ')} --state-dir ${update.stateDir} --factory-dir ${update.factoryDir}
`
    : '';
  return `[Unit]
Description=pifleet device agent (sensors, telemetry, Device Shadow)
Wants=network-online.target time-sync.target
After=network-online.target time-sync.target
# An agent that fails within seconds of every start (69: a Node it does not support, 32-bit ARM,
# I2C disabled, a native module not built) stops after ${AGENT_RESTART.startLimitBurst} starts; a slower failure or a watchdog kill keeps restarting.
StartLimitIntervalSec=${agentStartLimitIntervalSec(watchdogSec)}
StartLimitBurst=${AGENT_RESTART.startLimitBurst}

[Service]
Type=notify
# READY/WATCHDOG/STOPPING come from systemd-notify child processes (Node has no AF_UNIX datagram sockets).
NotifyAccess=all
${guard}ExecStart=${exec} run --config ${o.configPath}
WatchdogSec=${watchdogSec}
Restart=always
RestartSec=${AGENT_RESTART.restartSec}
${preventRestart}TimeoutStopSec=20
KillSignal=SIGTERM
User=${user}
Group=${user}
SupplementaryGroups=gpio i2c
Environment=NODE_ENV=production
Environment="NODE_OPTIONS=${AGENT_NODE_OPTIONS}"
StandardOutput=journal
StandardError=journal

# Hardening
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
RestrictNamespaces=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
CapabilityBoundingSet=
AmbientCapabilities=
UMask=0077
ReadWritePaths=${writable.join(' ')}
${readOnly}# GPIO (sysfs and gpiochip) and I2C device nodes stay reachable; DevicePolicy is left open on purpose.
PrivateDevices=no

[Install]
WantedBy=multi-user.target
`;
}
