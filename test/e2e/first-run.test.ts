import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { EXIT, MQTT5_REASON, type MqttProtocol } from '@pifleet/protocol';
import { BUNDLE_FILES } from '@pifleet/provisioning';
import {
  BINS,
  type BinExit,
  getShadow,
  jsonLog,
  killLaunched,
  type LaunchedBin,
  launchBin,
  type RunningCore,
  waitForShadow,
} from '@pifleet/testkit';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_CASES } from './protocols.js';
import { coreForFile } from './suite-core.js';

/**
 * A new user's first run, with the real bins as the README types them and nothing edited in
 * between: `pifleet --local DIR things create NAME` writes a bundle, `pifleet-agent run --config`
 * connects with it, and a change made with `pifleet --local DIR shadow desire` reaches the device,
 * which applies it and reports it back. A bundle's protocol is MQTT 5 by default (what the agent
 * speaks to AWS IoT Core); `things create --mqtt-protocol 3.1.1` writes 3.1.1 instead. Each case
 * asserts the protocol the agent's transport connected with, from its log.
 *
 * A bundle copied to a second device makes two agents with one client id: the broker ends the older
 * connection. Over MQTT 5 its DISCONNECT says why (SESSION_TAKEN_OVER, 0x8E: a packet only an MQTT 5
 * connection can carry, so the broker's side of the protocol shows too) and the agent names the
 * likely cause; over 3.1.1 the connection just closes.
 *
 * The core runs in this process (the test reads its shadows); everything the user runs is a process.
 * A bundle carries no sensors or outputs, so the desired change is one that needs no hardware: the
 * log level, which the agent applies at once and reports.
 */

let dir: string;
let core: RunningCore;
coreForFile(
  'first-run',
  (suite) => {
    ({ core, dir } = suite);
  },
  killLaunched,
);

/** A bin run to its end, as a shell runs it: its exit and what it printed. */
async function run(file: string, args: readonly string[]): Promise<BinExit & { stdout: string; stderr: string }> {
  const bin = launchBin(file, { args: [...args], cwd: dir });
  const exit = await bin.exited;
  return { ...exit, stdout: bin.stdout(), stderr: bin.stderr() };
}

const pifleet = (...args: string[]) => run(BINS.pifleet, ['--local', path.join(dir, 'core'), ...args]);

/** Resolves with the agent's first JSON log line `match` accepts; rejects on its exit or after 20 s. */
const logged = (agent: LaunchedBin, what: string, match: (l: Record<string, unknown>) => boolean) =>
  jsonLog(agent).waitFor(match, 20_000, what);

describe.each(PROTOCOL_CASES)('a first run over MQTT $protocol', ({ protocol, tag }) => {
  it('things create + pifleet-agent run connect, and shadow desire reaches the device and is reported back', async () => {
    const thing = `first-run-${tag}`;
    // MQTT 5 is the bundle's default; 3.1.1 is asked for.
    const choice = protocol === '5' ? [] : ['--mqtt-protocol', protocol];
    const created = await pifleet('--json', 'things', 'create', thing, ...choice);
    expect(created.code, created.stderr).toBe(EXIT.ok);
    const { bundleDir } = JSON.parse(created.stdout) as { bundleDir: string };
    const configFile = path.join(bundleDir, BUNDLE_FILES.agentConfig);
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as { mqtt?: { protocol?: MqttProtocol } };
    expect(config.mqtt?.protocol).toBe(protocol);

    const agent = launchBin(BINS.agent, { args: ['run', '--config', configFile], cwd: dir, name: thing });
    try {
      const connected = await logged(agent, 'connected', (l) => l.msg === 'connected' && l.component === 'transport');
      expect(connected.protocol, agent.output()).toBe(protocol);
      // Its first report: the shadow exists and says what the agent runs with.
      await waitForShadow(core, thing, (s) => s.state.reported?.logLevel === 'info', 20_000);

      const desired = await pifleet('--json', 'shadow', 'desire', thing, 'logLevel=debug');
      expect(desired.code, desired.stderr).toBe(EXIT.ok);
      const { version } = JSON.parse(desired.stdout) as { version: number };

      const doc = await waitForShadow(
        core,
        thing,
        (s) => s.state.reported?.logLevel === 'debug' && s.state.delta === undefined,
        20_000,
      );
      expect(doc.version).toBeGreaterThan(version);
      // The device applied the delta of that version (not only echoed it): its reconciler says so.
      const reconciled = await logged(
        agent,
        'the delta reconciled',
        (l) => l.msg === 'desired state reconciled' && Number(l.version) >= version,
      );
      expect(reconciled).toMatchObject({ applied: 1, rejected: 0 });
      // And `pifleet shadow get` shows the user what the device reported.
      const got = await pifleet('--json', 'shadow', 'get', thing);
      expect(got.code, got.stderr).toBe(EXIT.ok);
      expect(JSON.parse(got.stdout)).toMatchObject({
        state: { desired: { logLevel: 'debug' }, reported: { logLevel: 'debug' } },
      });
      expect((await getShadow(core, thing))?.state.delta).toBeUndefined();
    } catch (err) {
      throw new Error(`${String(err)}\nthe agent printed:\n${agent.output().slice(-6000)}`, { cause: err });
    } finally {
      agent.child.kill('SIGTERM');
    }
    const exit = await agent.exited;
    expect(exit.code, agent.output()).toBe(EXIT.ok);
  }, 90_000);

  it('the bundle copied to a second device: the first loses its connection, and over MQTT 5 is told why', async () => {
    const thing = `first-copy-${tag}`;
    const choice = protocol === '5' ? [] : ['--mqtt-protocol', protocol];
    const created = await pifleet('--json', 'things', 'create', thing, ...choice);
    expect(created.code, created.stderr).toBe(EXIT.ok);
    const { bundleDir } = JSON.parse(created.stdout) as { bundleDir: string };
    const configFile = path.join(bundleDir, BUNDLE_FILES.agentConfig);
    // The copy on the second device: same thing, certificate and key; its own disk for the outbox.
    const copy = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    const copyFile = path.join(dir, `${thing}-copy.json`);
    writeFileSync(copyFile, JSON.stringify({ ...copy, outbox: { path: path.join(dir, `${thing}-copy.outbox.db`) } }));

    const first = launchBin(BINS.agent, { args: ['run', '--config', configFile], cwd: dir, name: `${thing} (first)` });
    let second: LaunchedBin | undefined;
    try {
      await logged(first, 'the first connected', (l) => l.msg === 'connected' && l.component === 'transport');
      second = launchBin(BINS.agent, { args: ['run', '--config', copyFile], cwd: dir, name: `${thing} (second)` });
      await logged(second, 'the copy connected', (l) => l.msg === 'connected' && l.component === 'transport');
      // Each takes the connection from the other from now on; the older one is ended first.
      const lost = await logged(
        first,
        'the loss',
        (l) => l.component === 'agent' && /took over the connection|connection lost/.test(String(l.msg)),
      );
      if (protocol === '5') {
        // Only MQTT 5 can say why: the broker's DISCONNECT carries SESSION_TAKEN_OVER (0x8E), and the
        // agent says what it suspects.
        expect(lost).toMatchObject({
          level: 50,
          reasonCode: MQTT5_REASON.SESSION_TAKEN_OVER,
          reason: 'SESSION_TAKEN_OVER',
          clientId: thing,
        });
        expect(lost.msg).toMatch(/is this bundle running on a second device/);
      } else {
        // 3.1.1: the connection just closes.
        expect(lost).toMatchObject({ level: 40, msg: 'connection lost; telemetry stays in the outbox' });
        expect(lost.reasonCode).toBeUndefined();
      }
    } catch (err) {
      throw new Error(`${String(err)}\nthe first agent printed:\n${first.output().slice(-4000)}`, { cause: err });
    } finally {
      first.child.kill('SIGTERM');
      second?.child.kill('SIGTERM');
    }
    expect((await first.exited).code, first.output()).toBe(EXIT.ok);
    if (second) expect((await second.exited).code, second.output()).toBe(EXIT.ok);
  }, 90_000);
});
