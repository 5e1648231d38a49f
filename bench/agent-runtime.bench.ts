/**
 * Agent runtime benchmark (issue 6): one agent process (`pifleet-sim agent`, the agent runtime on
 * simulated hardware: the real drivers, SQLite outbox at synchronous=FULL, aws-iot-device-sdk-v2
 * over mutual TLS, shadow sync) sampling 5 sensors at 1 Hz for 60 s against the local IoT Core
 * in this process. Measures the agent process's RSS and CPU from /proc, and what arrived.
 * Outbox write throughput and bytes on the wire per reading are in bench/results/agent.json.
 *
 *   npx -y pnpm@10 bench agent-runtime        (BENCH_SECONDS=10 for a quick run)
 * Writes bench/results/agent-runtime.json. Talks only to 127.0.0.1.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { appTopicFilters } from '../protocol/src/index.js';
import { simulatedConfigInput } from '../simulator/src/agents/simulated-device.js';
import { launchSimAgent, provisionDevice, removeDir, startCore, tempDir } from '../testkit/src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const seconds = Number(process.env.BENCH_SECONDS ?? 60);
const dir = tempDir('agent-runtime-bench');
const CLK_TCK = 100; // USER_HZ on Linux

function procStat(pid: number): { cpuTicks: number; rssKiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(fields[11]) + Number(fields[12]); // utime + stime
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKiB = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { cpuTicks, rssKiB };
}

const core = await startCore(path.join(dir, 'core'));
let wireBytes = 0;
await core.core.services.broker.bus.subscribe(appTopicFilters.telemetry, (m) => {
  wireBytes += m.payload.length;
});
const files = await provisionDevice(core, 'bench-agent-01', dir);
const configFile = path.join(dir, 'agent.json');
writeFileSync(
  configFile,
  JSON.stringify(
    simulatedConfigInput({
      ...files,
      endpoint: core.info.mqtt.host,
      port: core.info.mqtt.port,
      samplingMs: 1_000,
      sensors: 'bench',
      relay: true,
      outboxPath: path.join(dir, 'outbox.db'),
      overrides: { logLevel: 'warn' },
    }),
  ),
);

const agent = launchSimAgent(configFile, { stderr: 'inherit' });
const pid = agent.child.pid ?? 0;

// Warm-up: wait for the first batch (connected, shadow synced, drivers initialised).
const t0 = Date.now();
await core.telemetry.waitFor(() => core.telemetry.readings('bench-agent-01') > 0, 60_000, 'telemetry from the agent');
const startupMs = Date.now() - t0;
const start = procStat(pid);
const startReadings = core.telemetry.readings('bench-agent-01');
const startBatches = core.telemetry.unique('bench-agent-01').length;
const startWire = wireBytes;
const startedAt = Date.now();
const rss: number[] = [];
while (Date.now() - startedAt < seconds * 1000) {
  await new Promise((r) => setTimeout(r, 1000));
  rss.push(procStat(pid).rssKiB);
}
const end = procStat(pid);
const wallS = (Date.now() - startedAt) / 1000;
const readings = core.telemetry.readings('bench-agent-01') - startReadings;
const batches = core.telemetry.unique('bench-agent-01').length - startBatches;

agent.child.kill('SIGTERM');
const { code: exitCode } = await agent.exited;
await core.stop();
removeDir(dir);

const mib = (kib: number) => Math.round((kib / 1024) * 10) / 10;
const result = {
  setup: {
    sensors: 5,
    samplingHz: 1,
    seconds,
    process: 'pifleet-sim agent (agent runtime on simulated hardware, TypeScript through tsx)',
    mqtt: '3.1.1 over mutual TLS (aws-crt), QoS 1',
    outbox: 'SQLite WAL, synchronous=FULL',
    batch: 'defaults: maxReadings 500, maxAgeMs 10000',
  },
  startupToFirstBatchMs: startupMs,
  rssMiB: { start: mib(start.rssKiB), end: mib(end.rssKiB), max: mib(Math.max(...rss)), min: mib(Math.min(...rss)) },
  cpu: {
    percentOfOneCore: Math.round(((end.cpuTicks - start.cpuTicks) / CLK_TCK / wallS) * 1000) / 10,
    msPerSecond: Math.round(((end.cpuTicks - start.cpuTicks) * (1000 / CLK_TCK)) / wallS),
  },
  delivered: {
    readings,
    readingsPerS: Math.round((readings / wallS) * 10) / 10,
    batches,
    payloadBytesPerReading: readings > 0 ? Math.round(((wireBytes - startWire) / readings) * 10) / 10 : null,
  },
  cleanExit: exitCode === 0,
};
mkdirSync(path.join(here, 'results'), { recursive: true });
writeFileSync(path.join(here, 'results', 'agent-runtime.json'), `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
if (exitCode !== 0) process.exitCode = 1;
