import path from 'node:path';

export interface UnitOptions {
  /** Absolute path of the `pifleet-agent` executable. */
  readonly execPath: string;
  /** Absolute path of the agent config file. */
  readonly configPath: string;
  /** Directory holding the outbox database (writable by the service). */
  readonly outboxDir: string;
  readonly user?: string;
  readonly watchdogSec?: number;
  /** Node.js binary when `execPath` is a script run through node. */
  readonly nodePath?: string;
}

/**
 * A systemd unit for the agent: `Type=notify` with a watchdog, restart on any failure except a
 * configuration error (exit 78), a dedicated unprivileged user in the gpio and i2c groups, and
 * a read-only view of the system except the outbox directory.
 */
export function renderUnit(o: UnitOptions): string {
  const user = o.user ?? 'pifleet';
  const exec = [o.nodePath, o.execPath].filter(Boolean).join(' ');
  const configDir = path.dirname(o.configPath);
  return `[Unit]
Description=pifleet device agent (sensors, telemetry, Device Shadow)
Documentation=https://github.com/pifleet/pifleet
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
ReadWritePaths=${o.outboxDir}
ReadOnlyPaths=${configDir}
# GPIO (sysfs and gpiochip) and I2C device nodes stay reachable; DevicePolicy is left open on purpose.
PrivateDevices=no

[Install]
WantedBy=multi-user.target
`;
}
