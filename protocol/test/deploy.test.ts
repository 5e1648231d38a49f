import { describe, expect, it } from 'vitest';
import { AGENT_INSTALL_PATHS, renderAgentUnit } from '../src/deploy.js';

const lines = (unit: string) => unit.split('\n');
const pathLines = (unit: string) => lines(unit).filter((l) => /^(ReadWrite|ReadOnly)Paths=/.test(l));

describe('renderAgentUnit', () => {
  it('by default runs the agent where the README installs it, with node from the service PATH', () => {
    const unit = renderAgentUnit({ configPath: AGENT_INSTALL_PATHS.configFile });
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
});
