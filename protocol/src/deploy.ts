/**
 * Deployment artefacts shared by the packages that produce them (provisioning writes the unit into
 * a device bundle) and those that run under them (the agent). Pure text; no I/O.
 */

export interface AgentUnitOptions {
  /** Absolute path of the agent's JSON config on the device. */
  readonly configPath: string;
  /** Command that starts the agent, without arguments. Default `/usr/bin/env pifleet-agent`. */
  readonly agentCommand?: string;
  /** Arguments before `--config`. Default `run`. */
  readonly agentArgs?: readonly string[];
  /** System user the agent runs as. Default `pifleet`. */
  readonly user?: string;
  /** Supplementary groups for hardware access. Default `gpio i2c`. */
  readonly groups?: readonly string[];
  /** `StateDirectory=` under /var/lib (the outbox lives there). Default `pifleet`. */
  readonly stateDirectory?: string;
  /** When set, the unit is `Type=notify` with this watchdog interval (the agent must notify systemd). */
  readonly watchdogSec?: number;
  readonly description?: string;
  /** Exit code that means "bad configuration": systemd does not restart on it. Default 78. */
  readonly configExitCode?: number;
}

function quoteArg(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1')}"`;
}

/** The systemd unit (`pifleet-agent.service`) that runs the agent on a device. */
export function renderAgentUnit(options: AgentUnitOptions): string {
  if (!options.configPath.startsWith('/')) throw new TypeError('configPath must be absolute');
  const command = options.agentCommand ?? '/usr/bin/env pifleet-agent';
  const args = [...(options.agentArgs ?? ['run']), '--config', options.configPath].map(quoteArg);
  const user = options.user ?? 'pifleet';
  const groups = options.groups ?? ['gpio', 'i2c'];
  const notify = options.watchdogSec !== undefined;
  const lines = [
    '[Unit]',
    `Description=${options.description ?? 'pifleet device agent (telemetry and Device Shadow sync)'}`,
    'Wants=network-online.target time-sync.target',
    'After=network-online.target time-sync.target',
    '',
    '[Service]',
    `Type=${notify ? 'notify' : 'simple'}`,
    ...(notify ? [`WatchdogSec=${options.watchdogSec}`, 'NotifyAccess=main'] : []),
    `ExecStart=${command} ${args.join(' ')}`,
    `User=${user}`,
    `Group=${user}`,
    ...(groups.length > 0 ? [`SupplementaryGroups=${groups.join(' ')}`] : []),
    `StateDirectory=${options.stateDirectory ?? 'pifleet'}`,
    'StateDirectoryMode=0700',
    'Restart=on-failure',
    'RestartSec=5s',
    `RestartPreventExitStatus=${options.configExitCode ?? 78}`,
    'TimeoutStopSec=15s',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ];
  return lines.join('\n');
}
