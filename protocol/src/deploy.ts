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
} as const;

export interface AgentUnitOptions {
  /** Absolute path of the agent's JSON config on the device. */
  readonly configPath: string;
  /** Absolute path of the `pifleet-agent` executable or script. Default {@link AGENT_INSTALL_PATHS}`.agentBin`. */
  readonly execPath?: string;
  /**
   * Command that runs `execPath` when it is a script. Default for a `.js`/`.mjs` file: `/usr/bin/env
   * node` (node from the service's PATH, so the unit needs no executable bit on the copied script
   * and finds a NodeSource `/usr/bin/node` or a `/usr/local/bin/node` alike); none otherwise.
   */
  readonly nodePath?: string;
  /** Directory holding the outbox database, writable by the service. Default `/var/lib/pifleet`. */
  readonly outboxDir?: string;
  /** System user the agent runs as (in the `gpio` and `i2c` groups). Default `pifleet`. */
  readonly user?: string;
  /** systemd watchdog interval; the agent notifies at half of it. Default 30. */
  readonly watchdogSec?: number;
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
 * watchdog, restart on any failure except a configuration error (exit 78), a dedicated
 * unprivileged user in the gpio and i2c groups, and a read-only system except the outbox directory.
 */
export function renderAgentUnit(o: AgentUnitOptions): string {
  if (!o.configPath.startsWith('/')) throw new TypeError('configPath must be absolute');
  const user = o.user ?? 'pifleet';
  const execPath = o.execPath ?? AGENT_INSTALL_PATHS.agentBin;
  const nodePath = o.nodePath ?? (/\.m?js$/.test(execPath) ? '/usr/bin/env node' : undefined);
  const exec = [nodePath, execPath].filter(Boolean).join(' ');
  const outboxDir = o.outboxDir ?? AGENT_INSTALL_PATHS.stateDir;
  const configDir = dirname(o.configPath);
  // systemd keeps the most restrictive mode for a path listed twice: a config directory that is
  // also the outbox directory (a bundle used in place) listed read-only would make the outbox
  // read-only too. A config directory inside the writable one needs no entry of its own.
  const readOnly = within(configDir, outboxDir) ? '' : `ReadOnlyPaths=${configDir}\n`;
  return `[Unit]
Description=pifleet device agent (sensors, telemetry, Device Shadow)
Wants=network-online.target time-sync.target
After=network-online.target time-sync.target

[Service]
Type=notify
# READY/WATCHDOG/STOPPING come from systemd-notify child processes (Node has no AF_UNIX datagram sockets).
NotifyAccess=all
ExecStart=${exec} run --config ${o.configPath}
WatchdogSec=${o.watchdogSec ?? 30}
Restart=always
RestartSec=5
# 78 = invalid configuration: restarting cannot fix it.
RestartPreventExitStatus=78
TimeoutStopSec=20
KillSignal=SIGTERM
User=${user}
Group=${user}
SupplementaryGroups=gpio i2c
Environment=NODE_ENV=production
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
ReadWritePaths=${outboxDir}
${readOnly}# GPIO (sysfs and gpiochip) and I2C device nodes stay reachable; DevicePolicy is left open on purpose.
PrivateDevices=no

[Install]
WantedBy=multi-user.target
`;
}
