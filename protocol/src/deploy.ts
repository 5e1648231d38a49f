/**
 * Deployment artefacts shared by the packages that produce them (provisioning writes the unit into
 * a device bundle) and the agent that runs under them (`pifleet-agent print-unit`). Pure text.
 */

export interface AgentUnitOptions {
  /** Absolute path of the agent's JSON config on the device. */
  readonly configPath: string;
  /** Absolute path of the `pifleet-agent` executable. Default `/usr/local/bin/pifleet-agent`. */
  readonly execPath?: string;
  /** Node.js binary, when `execPath` is a script to run through it. */
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

/**
 * The systemd unit (`pifleet-agent.service`) that runs the agent on a device: `Type=notify` with a
 * watchdog, restart on any failure except a configuration error (exit 78), a dedicated
 * unprivileged user in the gpio and i2c groups, and a read-only system except the outbox directory.
 */
export function renderAgentUnit(o: AgentUnitOptions): string {
  if (!o.configPath.startsWith('/')) throw new TypeError('configPath must be absolute');
  const user = o.user ?? 'pifleet';
  const exec = [o.nodePath, o.execPath ?? '/usr/local/bin/pifleet-agent'].filter(Boolean).join(' ');
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
ReadWritePaths=${o.outboxDir ?? '/var/lib/pifleet'}
ReadOnlyPaths=${dirname(o.configPath)}
# GPIO (sysfs and gpiochip) and I2C device nodes stay reachable; DevicePolicy is left open on purpose.
PrivateDevices=no

[Install]
WantedBy=multi-user.target
`;
}
