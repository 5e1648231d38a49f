import { appTopics, type StatusMessage } from '@pifleet/protocol';
import { type AwsIotTransport, createAwsIotTransport } from '../adapters/aws-iot-sdk.js';
import { createMqttJsTransport } from '../adapters/mqttjs.js';
import type { MqttTransportOptions } from '../adapters/transport-kit.js';
import type { AgentConfig } from '../config/schema.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../ports/clock.js';
import type { LastWill, Transport } from '../ports/transport.js';
import { AGENT_VERSION } from './agent.js';

/**
 * The agent's last will: its retained `offline` status, which the broker publishes if the
 * connection drops without a DISCONNECT.
 */
export function lastWillFromConfig(
  config: AgentConfig,
  deps: { readonly bootId: string; readonly clock: Clock },
): LastWill {
  const will: StatusMessage = {
    thingName: config.thingName,
    state: 'offline',
    bootId: deps.bootId,
    ts: deps.clock.now(),
    agentVersion: AGENT_VERSION,
  };
  return { topic: appTopics.status(config.thingName), payload: JSON.stringify(will), qos: 1, retain: true };
}

/** The connection an agent config describes, with `lastWillFromConfig` as its last will: the same for every adapter. */
export function mqttOptionsFromConfig(
  config: AgentConfig,
  deps: { readonly bootId: string; readonly clock: Clock; readonly logger: Logger },
): MqttTransportOptions {
  return {
    endpoint: config.endpoint,
    port: config.port,
    clientId: config.mqtt.clientId,
    certFile: config.certFile,
    keyFile: config.keyFile,
    caFile: config.caFile,
    keepAliveS: config.mqtt.keepAliveS,
    reconnectMinMs: config.mqtt.reconnectMinMs,
    reconnectMaxMs: config.mqtt.reconnectMaxMs,
    operationTimeoutMs: config.publish.ackTimeoutMs,
    will: lastWillFromConfig(config, deps),
    clock: deps.clock,
    logger: deps.logger,
  };
}

/** The device SDK transport an agent config describes (MQTT 5 or 3.1.1, as `mqtt.protocol` says). */
export function transportFromConfig(
  config: AgentConfig,
  deps: { readonly bootId: string; readonly clock: Clock; readonly logger: Logger },
): AwsIotTransport {
  return createAwsIotTransport({ ...mqttOptionsFromConfig(config, deps), protocol: config.mqtt.protocol });
}

/** The mqtt.js transport (MQTT 5 or 3.1.1, as `mqtt.protocol` says) an agent config describes, for simulated fleets. */
export function mqttJsTransportFromConfig(
  config: AgentConfig,
  deps: {
    readonly bootId: string;
    readonly clock: Clock;
    readonly logger: Logger;
    readonly readFile?: (file: string) => Buffer;
  },
): Transport {
  return createMqttJsTransport({
    ...mqttOptionsFromConfig(config, deps),
    protocol: config.mqtt.protocol,
    ...(deps.readFile ? { readFile: deps.readFile } : {}),
  });
}
