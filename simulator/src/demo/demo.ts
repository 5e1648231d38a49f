import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { createLocalIotCore, LOCAL_CORE_DEFAULTS, type LocalCoreInfo, type LocalIotCore } from '@pifleet/cloud';
import {
  appTopicFilters,
  decodeTelemetryBatch,
  isJsonObject,
  LOCAL_CREDENTIALS_FILE,
  LOCAL_PROFILE,
  type MqttProtocol,
  ownValue,
  parseJson,
  parseShadowTopic,
  shadowTopicFilters,
  type TelemetryBatch,
} from '@pifleet/protocol';
import { BUNDLE_FILES, runCli as runProvisioningCli } from '@pifleet/provisioning';
import {
  createSimulatedDevice,
  parseAgentConfig,
  type SimulatedDevice,
  simulatedConfigInput,
} from '../agents/simulated-device.js';
import { SimulatorError } from '../errors.js';
import type { Logger } from '../logger.js';

/** The three demo devices: different seeds (so different rooms), one with a relay. */
export const DEMO_DEVICES = [
  {
    thingName: 'demo-greenhouse',
    seed: 'greenhouse',
    relay: true,
    samplingMs: 2_000,
    room: 'greenhouse, relay on BCM 17',
  },
  { thingName: 'demo-cellar', seed: 'cellar', relay: false, samplingMs: 3_000, room: 'cellar' },
  { thingName: 'demo-attic', seed: 'attic', relay: false, samplingMs: 5_000, room: 'attic' },
] as const;

/** The demo's devices speak what a Pi speaks to AWS IoT Core: MQTT 5 (the agent's default). */
export const DEMO_PROTOCOL: MqttProtocol = '5';

export interface DemoOptions {
  /** State of the local core and the device bundles (default `.pifleet/demo`). */
  readonly dataDir: string;
  /** 0 picks free ports. */
  readonly mqttPort: number;
  readonly httpPort: number;
}

export interface DemoDeps {
  readonly options: DemoOptions;
  /** One line of human output (no newline). */
  readonly print: (line: string) => void;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Logs of the core and the agents (a file under the data dir in the CLI). */
  readonly logger: Logger;
  readonly now?: () => number;
}

export interface Demo {
  start(): Promise<LocalCoreInfo>;
  stop(): Promise<void>;
}

const fmt = (v: unknown, digits: number, unit: string) => (typeof v === 'number' ? `${v.toFixed(digits)}${unit}` : '–');

/** A compact line for one telemetry batch: the latest value of each sensor in it. */
export function formatBatch(b: TelemetryBatch, clockTime: string): string {
  const latest = new Map<string, Record<string, unknown>>();
  for (const r of b.readings) latest.set(r.sensor, r.metrics);
  const env = latest.get('env');
  const light = latest.get('light');
  const soil = latest.get('soil');
  const parts = [
    env
      ? `${fmt(env.temperature, 1, ' °C')} ${fmt(env.humidity, 0, ' %RH')} ${fmt(env.pressure, 0, ' hPa')}`
      : undefined,
    light ? `${fmt(light.illuminance, 0, ' lx')}` : undefined,
    soil ? `soil ${fmt(soil.moisture, 2, ' V')}` : undefined,
  ].filter((p): p is string => p !== undefined);
  return `${clockTime}  ${b.thingName.padEnd(16)} batch #${String(b.seq).padEnd(4)} ${String(b.readings.length).padStart(2)} readings │ ${parts.join(' │ ')}`;
}

function summarizeReported(reported: Record<string, unknown>): string {
  const outputs = reported.outputs as Record<string, boolean> | undefined;
  const sampling = reported.sampling as Record<string, number> | undefined;
  const rejected = reported.rejected as Record<string, { reason?: string }> | null | undefined;
  const parts: string[] = [];
  if (outputs && Object.keys(outputs).length > 0)
    parts.push(
      Object.entries(outputs)
        .map(([k, v]) => `${k}=${v ? 'on' : 'off'}`)
        .join(' '),
    );
  if (sampling)
    parts.push(
      `sampling ${Object.entries(sampling)
        .map(([k, v]) => `${k}=${v}ms`)
        .join(' ')}`,
    );
  if (typeof reported.logLevel === 'string') parts.push(`logLevel=${reported.logLevel}`);
  if (rejected && Object.keys(rejected).length > 0) {
    parts.push(
      `REJECTED ${Object.entries(rejected)
        .map(([k, v]) => `${k}: ${v?.reason ?? '?'}`)
        .join('; ')}`,
    );
  }
  return parts.join(' · ');
}

/**
 * The local demo: the local IoT Core in this process, three things provisioned through the
 * `pifleet` CLI (bundles in the data dir), three real agents on simulated hardware, and a live
 * view of what crosses the broker (telemetry batches, desired changes, reported state).
 */
export function createDemo(deps: DemoDeps): Demo {
  const { options, print, logger } = deps;
  const now = deps.now ?? Date.now;
  const dataDir = path.resolve(deps.cwd, options.dataDir);
  let core: LocalIotCore | undefined;
  const devices: SimulatedDevice[] = [];
  const unsubscribe: (() => Promise<void>)[] = [];
  const lastSummary = new Map<string, string>();
  const time = () => new Date(now()).toISOString().slice(11, 19);

  const provision = async (thingName: string, bundleDir: string) => {
    let out = '';
    let err = '';
    const code = await runProvisioningCli(
      ['--local', dataDir, '--json', 'things', 'create', thingName, '--out', bundleDir],
      {
        stdout: { write: (s: string) => (out += s) },
        stderr: { write: (s: string) => (err += s) },
        env: { ...deps.env, PIFLEET_LOCAL: undefined },
        cwd: deps.cwd,
      },
    );
    if (code !== 0 || !existsSync(path.join(bundleDir, BUNDLE_FILES.privateKey))) {
      throw new SimulatorError('DEMO_PROVISION_FAILED', `pifleet things create ${thingName} failed (exit ${code})`, {
        data: { stderr: err.trim(), stdout: out.trim() },
      });
    }
    const printed = parseJson(out);
    if (!printed.ok) {
      throw new SimulatorError('DEMO_PROVISION_FAILED', `pifleet things create ${thingName} printed no JSON`, {
        data: { stdout: out.trim() },
      });
    }
    const status = isJsonObject(printed.value) ? ownValue(printed.value, 'status') : undefined;
    return typeof status === 'string' ? status : 'created';
  };

  return {
    async start() {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      core = createLocalIotCore({
        config: {
          ...LOCAL_CORE_DEFAULTS,
          dataDir,
          mqttPort: options.mqttPort,
          httpPort: options.httpPort,
          logLevel: 'info',
        },
        logger,
      });
      // The core writes DATA_DIR/endpoint.json, where `pifleet --local DATA_DIR` finds its (ephemeral) ports.
      const info = await core.start();
      const rel = path.relative(deps.cwd, dataDir) || '.';
      print('pifleet demo: a local IoT Core and three simulated Raspberry Pis on this machine');
      print(`  data dir      ${rel}  (CA, registry, shadows, telemetry, bundles/, demo.log)`);
      print(`  MQTT (mTLS)   ${info.mqtt.host}:${info.mqtt.port}`);
      print(
        `  HTTP API      ${info.http}  (IoT control + data plane, command/query API; SigV4, profile ${LOCAL_PROFILE})`,
      );
      print(`  web console   ${info.console}`);

      const bus = core.services.broker.bus;
      unsubscribe.push(
        await bus.subscribe(appTopicFilters.telemetry, (m) => {
          const r = decodeTelemetryBatch(m.payload);
          if (r.ok) print(formatBatch(r.value, time()));
        }),
        await bus.subscribe(shadowTopicFilters.classic('update/accepted'), (m) => {
          const thing = parseShadowTopic(m.topic)?.thingName ?? '?';
          const doc = parseJson(m.payload.toString('utf8'));
          if (!doc.ok || !isJsonObject(doc.value)) return;
          const state = ownValue(doc.value, 'state');
          if (!isJsonObject(state)) return;
          const version = ownValue(doc.value, 'version');
          const desired = ownValue(state, 'desired');
          if (desired !== undefined && desired !== null) {
            print(`${time()}  ${thing.padEnd(16)} desired  v${version} ${JSON.stringify(desired)}`);
          }
          const reported = ownValue(state, 'reported');
          if (isJsonObject(reported)) {
            const summary = summarizeReported(reported);
            if (summary !== lastSummary.get(thing)) {
              lastSummary.set(thing, summary);
              print(`${time()}  ${thing.padEnd(16)} reported v${version} ${summary}`);
            }
          }
        }),
        await bus.subscribe(shadowTopicFilters.classic('update/delta'), (m) => {
          const thing = parseShadowTopic(m.topic)?.thingName ?? '?';
          const doc = parseJson(m.payload.toString('utf8'));
          // Not a JSON object: nothing to show.
          if (!doc.ok || !isJsonObject(doc.value)) return;
          const { value } = doc;
          print(
            `${time()}  ${thing.padEnd(16)} delta    v${ownValue(value, 'version')} ${JSON.stringify(ownValue(value, 'state'))} → device`,
          );
        }),
      );

      print('');
      for (const d of DEMO_DEVICES) {
        const bundleDir = path.join(dataDir, 'bundles', d.thingName);
        const status = await provision(d.thingName, bundleDir);
        const config = parseAgentConfig(
          simulatedConfigInput({
            thingName: d.thingName,
            endpoint: info.mqtt.host,
            port: info.mqtt.port,
            certFile: path.join(bundleDir, BUNDLE_FILES.certificate),
            keyFile: path.join(bundleDir, BUNDLE_FILES.privateKey),
            caFile: info.caFile,
            outboxPath: path.join(dataDir, 'outbox', `${d.thingName}.db`),
            samplingMs: d.samplingMs,
            relay: d.relay,
            mqttProtocol: DEMO_PROTOCOL,
            overrides: {
              batch: { maxAgeMs: 5_000 },
              mqtt: { reconnectMinMs: 500, reconnectMaxMs: 5_000 },
              shadow: { reportIntervalMs: 60_000 },
              logLevel: 'warn',
            },
          }),
        );
        const device = createSimulatedDevice({
          config,
          seed: d.seed,
          logger: logger.child({ thingName: d.thingName }),
        });
        devices.push(device);
        await device.start();
        // The protocol of the transport the agent built (the SDK's MQTT 5 client or its 3.1.1 connection).
        print(
          `device ${d.thingName.padEnd(16)} ${status === 'unchanged' ? 'reused' : status} · ${d.room} · BME280, BH1750, ADS1115 every ${d.samplingMs / 1000} s · MQTT ${device.transport.protocol} · bundle ${path.relative(deps.cwd, bundleDir)}`,
        );
      }

      const pifleet = `node provisioning/bin/pifleet.js --local ${rel}`;
      print('');
      print('Change a device from another terminal (in this directory) and watch it converge here:');
      print(`  ${pifleet} shadow desire demo-greenhouse outputs.relay=true`);
      print(`  ${pifleet} shadow desire demo-cellar sampling.env=1000 batch.maxReadings=20`);
      print(`  ${pifleet} shadow desire demo-attic outputs.fan=true   # the device rejects it: it has no fan`);
      print(`  ${pifleet} shadow get demo-greenhouse`);
      print('or with the AWS CLI (same API as AWS IoT Core):');
      print(
        `  AWS_SHARED_CREDENTIALS_FILE=${rel}/${LOCAL_CREDENTIALS_FILE} AWS_PROFILE=${LOCAL_PROFILE} aws --region ${info.region} --endpoint-url ${info.http} iot-data update-thing-shadow --thing-name demo-greenhouse --cli-binary-format raw-in-base64-out --payload '{"state":{"desired":{"outputs":{"relay":false}}}}' /dev/stdout`,
      );
      print('Telemetry as it arrives (one line per batch; a batch seals every 5 s). Ctrl-C stops everything.');
      print('');
      return info;
    },

    async stop() {
      for (const u of unsubscribe.splice(0)) await u().catch(() => undefined);
      await Promise.all(devices.splice(0).map((d) => d.stop('demo stopped').catch(() => undefined)));
      await core?.stop();
      core = undefined;
    },
  };
}
