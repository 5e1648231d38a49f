import { X509Certificate } from 'node:crypto';
import path from 'node:path';
import { AGENT_INSTALL_PATHS, type MqttProtocol, renderAgentUnit } from '@pifleet/protocol';

/**
 * A device bundle: everything a device needs to connect, in one directory the operator copies
 * to the device (or, for the local core, uses where it is).
 */
export const BUNDLE_FILES = {
  certificate: 'certificate.pem.crt',
  privateKey: 'private.pem.key',
  ca: 'ca.pem',
  agentConfig: 'agent.json',
  unit: 'pifleet-agent.service',
} as const;

/**
 * Where bundles go without `--out`: under `.pifleet/` (git-ignored, beside the local core's data),
 * not `./bundles`, because a bundle holds a private key and must never be committed by accident.
 */
export const DEFAULT_BUNDLES_DIR = '.pifleet/bundles';

/** File modes: the private key is readable by its owner only. */
export const BUNDLE_MODES = {
  directory: 0o700,
  privateKey: 0o600,
  other: 0o644,
} as const;

export interface AgentConfigOptions {
  readonly thingName: string;
  /** MQTT host of the device data endpoint (DescribeEndpoint `iot:Data-ATS`). */
  readonly endpoint: string;
  readonly port: number;
  /** The agent's MQTT version: `5` (what `pifleet things create` writes, for AWS and the local core) or `3.1.1`. */
  readonly mqttProtocol: MqttProtocol;
  /** Directory where the bundle's files will be on the device; the config names files there. */
  readonly installDir: string;
  /** Outbox database path; the agent's default (/var/lib/pifleet/outbox.db) when absent. */
  readonly outboxPath?: string;
}

/** The `pifleet-agent` config (device-agent's `agentConfigSchema` input) a bundle carries. */
export function buildAgentConfig(o: AgentConfigOptions): Record<string, unknown> {
  const file = (name: string) => path.posix.join(o.installDir, name);
  return {
    thingName: o.thingName,
    endpoint: o.endpoint,
    port: o.port,
    certFile: file(BUNDLE_FILES.certificate),
    keyFile: file(BUNDLE_FILES.privateKey),
    caFile: file(BUNDLE_FILES.ca),
    mqtt: { protocol: o.mqttProtocol },
    ...(o.outboxPath !== undefined ? { outbox: { path: o.outboxPath } } : {}),
    sensors: [],
    outputs: [],
  };
}

export function renderAgentConfig(o: AgentConfigOptions): string {
  return `${JSON.stringify(buildAgentConfig(o), null, 2)}\n`;
}

/**
 * The bundle's systemd unit; `outboxDir` is where the bundle's agent.json puts the outbox (the
 * agent's default directory when absent). With `selfUpdate` it is the unit for agent updates: the
 * state directory is the outbox's and the factory install /opt/pifleet, the layout the agent
 * recognises as updatable; the boot guard makes `current` on first boot.
 */
export function renderBundleUnit(installDir: string, outboxDir?: string, selfUpdate = false): string {
  return renderAgentUnit({
    configPath: path.posix.join(installDir, BUNDLE_FILES.agentConfig),
    ...(outboxDir !== undefined ? { outboxDir } : {}),
    ...(selfUpdate
      ? {
          selfUpdate: { stateDir: outboxDir ?? AGENT_INSTALL_PATHS.stateDir, factoryDir: AGENT_INSTALL_PATHS.agentDir },
        }
      : {}),
  });
}

/** AWS's certificate id: lowercase hex SHA-256 of the certificate's DER encoding. */
export function certificateIdOf(pem: string): string | undefined {
  try {
    return new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
  } catch {
    return undefined;
  }
}

/** Splits `host` or `host:port` (DescribeEndpoint may carry a port for the local core). */
export function splitEndpoint(address: string, defaultPort = 8883): { host: string; port: number } {
  const m = /^(.*):(\d{1,5})$/.exec(address);
  if (m?.[1] && !m[1].includes(':')) return { host: m[1], port: Number(m[2]) };
  return { host: address, port: defaultPort };
}

/** `arn:aws:iot:REGION:ACCOUNT:cert/ID` → region and account (the policy's ARNs need them). */
export function parseIotArn(arn: string): { region: string; accountId: string; resource: string } | undefined {
  const m = /^arn:aws[a-z-]*:iot:([a-z0-9-]+):(\d{12}|[^:]+):(.+)$/.exec(arn);
  if (!m?.[1] || !m[2] || !m[3]) return undefined;
  return { region: m[1], accountId: m[2], resource: m[3] };
}

export function certificateIdFromArn(arn: string): string | undefined {
  const parsed = parseIotArn(arn);
  return parsed?.resource.startsWith('cert/') ? parsed.resource.slice('cert/'.length) : undefined;
}
