import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { claimLine } from '../fleet/claim-result.js';
import { HOST_NICE } from '../fleet/pool.js';
import type { FleetResult, PhaseResult, RolloutPoint } from '../fleet/runner.js';
import { histogramChart, lineChart } from './svg.js';

const esc = (s: unknown) =>
  String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);

const q = (v: { p50: number; p95: number; p99: number; max: number } | undefined) =>
  v ? `${v.p50} / ${v.p95} / ${v.p99} / ${v.max}` : 'n/a';

function phaseTable(p: PhaseResult): string {
  const rows: [string, unknown][] = [
    [
      'device hosts',
      `${p.deviceHosts.mode}${p.deviceHosts.mode === 'child-processes' ? ` (nice ${HOST_NICE})` : ''} × ${p.deviceHosts.hosts}, MQTT client ${p.deviceHosts.transport === 'mqtt' ? 'mqtt.js' : 'aws-iot-device-sdk-v2 (aws-crt)'}, MQTT ${p.deviceHosts.protocol}`,
    ],
    ['devices connected (ever / at end)', `${p.connect.everConnected} / ${p.connect.connectedAtEnd} of ${p.devices}`],
    ['connect rate (first connects/s)', `${p.connect.perSecond} over ${p.connect.seconds} s`],
    ['first connect mean / max (ms)', `${p.connect.firstConnectMeanMs} / ${p.connect.firstConnectMaxMs}`],
    [
      'connect failures / reconnects / interruptions',
      `${p.connect.connectFailures} / ${p.connect.reconnects} / ${p.connect.interruptions}`,
    ],
    ['readings generated', p.telemetry.generated],
    ['readings published (PUBACK)', `${p.telemetry.published} in ${p.telemetry.publishedBatches} batches`],
    ['readings stored', `${p.telemetry.stored} (${p.telemetry.storedVia})`],
    ['readings lost (generated − stored)', p.telemetry.lost],
    ['of which outbox drops / unsent at stop', `${p.telemetry.droppedByOutbox} / ${p.telemetry.unsentAtStop}`],
    [
      'throttled, devices: publishes / unacknowledged / connects / shadow',
      `${p.throttled.devices.publishes} / ${p.throttled.devices.unacknowledged} / ${p.throttled.devices.connects} / ${p.throttled.devices.shadow}`,
    ],
    [
      'throttled, core counters (GET /quotas)',
      p.throttled.core === 'not available'
        ? 'not available'
        : `${p.throttled.core.total} (limits ${p.throttled.core.mode})${Object.entries(p.throttled.core.byQuota)
            .map(([q, n]) => `; ${q} ${n}`)
            .join('')}`,
    ],
    [
      'readings/s generated / published (measured window)',
      `${p.telemetry.generatedPerS} / ${p.telemetry.publishedPerS}`,
    ],
    ['latency sampling → stored, ms (p50/p95/p99/max)', q(p.latency.sampleToStoredMs)],
    ['latency sealed → stored, ms (p50/p95/p99/max)', q(p.latency.sealedToStoredMs)],
    ['… of batches sealed in the measured window', q(p.latency.sealedToStoredMeasuredMs)],
    ['latency end point', p.latency.endpoint],
    [
      'core CPU / fleet CPU (% of one core)',
      `${p.resources.coreCpuPct} / ${p.resources.fleetCpuPct} (${p.resources.cpuSplit})`,
    ],
    ['core RSS max / fleet RSS max (MB)', `${p.resources.coreRssMaxMB} / ${p.resources.fleetRssMaxMB}`],
    [
      'event-loop lag, core p50/p99/max (ms)',
      `${p.resources.coreEventLoop.p50Ms} / ${p.resources.coreEventLoop.p99Ms} / ${p.resources.coreEventLoop.maxMs}`,
    ],
    [
      'event-loop lag, device hosts p99/max (ms)',
      p.resources.hostEventLoop.map((e) => `${e.p99Ms}/${e.maxMs}`).join(', '),
    ],
    ['windows: ramp / measured / drain (s)', `${p.windows.rampS} / ${p.windows.measuredS} / ${p.windows.drainS}`],
  ];
  if (p.commands) {
    rows.push(
      ['commands sent / accepted / failed', `${p.commands.sent} / ${p.commands.accepted} / ${p.commands.failed}`],
      ['commands converged / pending', `${p.commands.converged} / ${p.commands.pending}`],
      ['command API call, ms (p50/p95/p99/max)', q(p.commands.apiMs)],
      ['command round trip → reported, ms (p50/p95/p99/max)', q(p.commands.roundTripMs)],
    );
  }
  for (const f of p.faults)
    rows.push([`fault ${f.kind} at ${f.atS} s`, `${f.affected} affected ${JSON.stringify(f.detail)}`]);
  if (p.sensorFailure) {
    rows.push([
      'sensor failure: failed / reported unhealthy (of failed, of healthy)',
      `${p.sensorFailure.failedDevices} / ${p.sensorFailure.reportedUnhealthy} (${p.sensorFailure.reportedUnhealthyAmongFailed}, ${p.sensorFailure.reportedUnhealthyAmongHealthy})`,
    ]);
  }
  return `<table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>`;
}

function phaseCharts(p: PhaseResult): string {
  const s = p.series;
  const pts = (f: (x: (typeof s)[number]) => number) => s.map((x) => [x.t, f(x)] as const);
  return [
    lineChart(`${p.name}: readings per second`, 'seconds', [
      { label: 'generated', color: '#888', points: pts((x) => x.generatedPerS) },
      { label: 'published (PUBACK)', color: '#2a7', points: pts((x) => x.publishedPerS) },
      { label: 'stored', color: '#36c', points: pts((x) => x.storedPerS) },
    ]),
    lineChart(`${p.name}: connected devices`, 'seconds', [
      { label: 'connected', color: '#c63', points: pts((x) => x.connected) },
    ]),
    lineChart(`${p.name}: CPU (% of one core)`, 'seconds', [
      { label: 'core process', color: '#a3c', points: pts((x) => x.coreCpuPct) },
      { label: 'device hosts', color: '#3aa', points: pts((x) => x.fleetCpuPct) },
    ]),
    histogramChart(`${p.name}: latency sealed → stored`, 'ms', p.latency.sealedToStoredHistogram),
    histogramChart(`${p.name}: latency sampling → stored`, 'ms', p.latency.sampleToStoredHistogram, '#6a5'),
    p.commandRoundTripHistogram
      ? histogramChart(`${p.name}: command round trip`, 'ms', p.commandRoundTripHistogram, '#c55')
      : '',
  ].join('\n');
}

/** A `--job` run's rollout: how the job ended, its rate, the devices' versions, and its executions over time. */
function rolloutSection(p: PhaseResult): string {
  const r = p.rollout;
  if (!r) return '';
  const c = r.counts;
  const rows: [string, unknown][] = [
    ['job', `${r.jobId} (${r.kind})`],
    [
      'rollout / abort',
      `${r.rolloutPerMinute === undefined ? "IoT's default rate" : `${r.rolloutPerMinute}/min`}; ${r.abort ? `cancel at ${r.abort.failurePercent} % failures (FAILED, REJECTED, TIMED_OUT) after ${r.abort.minExecuted} executed` : 'no abort criterion'}`,
    ],
    [
      'release faults planned (devices): unhealthy / power cut mid-install / corrupt',
      `${r.plannedFaults.unhealthy} / ${r.plannedFaults.crashInstall} / ${r.plannedFaults.corrupt}`,
    ],
    ['ended', `${r.ended} (job ${r.status}${r.reasonCode ? `, ${r.reasonCode}` : ''}) after ${r.seconds} s`],
    ...(r.comment ? ([['comment', r.comment]] as [string, unknown][]) : []),
    ['executed / executions per second', `${r.executed} / ${r.executionsPerS}`],
    [
      'succeeded / failed / rejected / timed out / canceled / removed',
      `${c.succeeded} / ${c.failed} / ${c.rejected} / ${c.timedOut} / ${c.canceled} / ${c.removed}`,
    ],
    [
      "each thing's latest execution (ListJobExecutionsForJob)",
      r.executionStatuses
        ? Object.entries(r.executionStatuses)
            .map(([s, n]) => `${s} ${n}`)
            .join(', ')
        : 'not read',
    ],
    [
      'devices by running version',
      Object.entries(r.devices.versions)
        .map(([v, n]) => `${v} × ${n}`)
        .join(', '),
    ],
    ['devices without a working version', r.devices.withoutWorkingVersion],
    ['agent restarts (switches, rollbacks, power cuts, reboots)', r.devices.restarts],
  ];
  const series = r.series;
  const pts = (f: (x: RolloutPoint) => number) => series.map((x) => [x.t, f(x)] as const);
  const chart = lineChart(`${p.name}: job executions by status`, 'seconds since CreateJob', [
    { label: 'queued', color: '#888', points: pts((x) => x.queued) },
    { label: 'in progress', color: '#c93', points: pts((x) => x.inProgress) },
    { label: 'succeeded', color: '#2a7', points: pts((x) => x.succeeded) },
    { label: 'failed', color: '#c33', points: pts((x) => x.failed) },
    { label: 'rejected', color: '#a3c', points: pts((x) => x.rejected) },
    { label: 'timed out', color: '#733', points: pts((x) => x.timedOut) },
    { label: 'canceled', color: '#36c', points: pts((x) => x.canceled) },
  ]);
  const ok = r.devices.withoutWorkingVersion === 0;
  return `<h3>Rollout</h3><p class="${ok ? 'ok' : 'bad'}">${ok ? 'Every device runs a working version.' : `${r.devices.withoutWorkingVersion} device(s) without a working version.`}</p><table>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>${chart}`;
}

/** The self-contained HTML report: tables and inline SVG plots, no scripts or external assets. */
export function renderHtml(r: FleetResult): string {
  const o = r.options;
  const head = `<h1>pifleet fleet run ${esc(r.runId)}</h1>
<p>${esc(r.startedAt)} · ${esc(r.machine.cpus)} × ${esc(r.machine.cpuModel)}, ${esc(r.machine.memoryGiB)} GiB, Node ${esc(r.machine.node)}, ${esc(r.machine.platform)}</p>
<p>${esc(o.devices)} devices, ramp ${esc(o.rampPerSecond)}/s, ${esc(o.durationS)} s measured, ${esc(o.sensors)} sensor(s) every ${esc(o.intervalMs)} ms, batches of ≤ ${esc(o.batchReadings)} readings / ${esc(o.batchAgeMs)} ms, ${esc(o.commandRate)} commands/s, target ${esc(o.target)}, faults: ${esc(o.faults.map((f) => f.kind + ('fraction' in f ? `:${f.fraction}` : '')).join(', ') || 'none')}</p>
<p class="${r.zeroLoss ? 'ok' : 'bad'}">${r.zeroLoss ? 'Nothing lost.' : 'Readings were lost: see each phase.'}</p>`;
  const prov = r.provisioning
    ? `<p>Provisioning: ${esc(r.provisioning.seconds)} s (${esc(r.provisioning.perDeviceMs)} ms/device, ${esc(r.provisioning.keyType)}), data dir ${esc(r.provisioning.dataDir)}; cleanup: ${r.cleanup.kept ? 'kept' : `${r.cleanup.removed} removed, ${r.cleanup.failed} failed`}.</p>${r.provisioning.claim ? `<p class="${r.provisioning.claim.failed === 0 ? 'ok' : 'bad'}">${esc(claimLine(r.provisioning.claim))}</p>` : ''}`
    : '';
  const overhead = r.overhead
    ? `<h2>Local IoT Core vs bare broker</h2><table><tr><th>core CPU ÷ bare-broker CPU</th><td>${esc(r.overhead.coreCpuRatio)}</td></tr><tr><th>connect rate ratio</th><td>${esc(r.overhead.connectRateRatio)}</td></tr><tr><th>p99 sealed→stored ÷ p99 sealed→delivered (bare)</th><td>${esc(r.overhead.sealedToStoredP99VsBrokerP99 ?? 'n/a')}</td></tr></table>`
    : '';
  const phases = r.phases
    .map((p) => `<h2>Phase: ${esc(p.name)}</h2>${rolloutSection(p)}${phaseTable(p)}${phaseCharts(p)}`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pifleet fleet run ${esc(r.runId)}</title>
<style>body{font:14px/1.4 sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{font-weight:normal;color:#555}figure{margin:1em 0}figcaption{font-weight:bold}.legend{font-size:12px;color:#444}.ok{color:#175}.bad{color:#b22;font-weight:bold}svg text{fill:#444}</style>
</head><body>${head}${prov}${overhead}${phases}</body></html>
`;
}

/** Writes `fleet-result.json` and `fleet-report.html` into `dir`; returns their paths. */
export async function writeReport(r: FleetResult, dir: string): Promise<{ json: string; html: string }> {
  await mkdir(dir, { recursive: true });
  const json = path.join(dir, 'fleet-result.json');
  const html = path.join(dir, 'fleet-report.html');
  await writeFile(json, `${JSON.stringify(r, null, 2)}\n`);
  await writeFile(html, renderHtml(r));
  return { json, html };
}
