import { appTopics, type StatusMessage } from '@pifleet/protocol';
import { type AwsIotTransport, createAwsIotTransport } from '../adapters/aws-iot-sdk.js';
import type { AgentConfig } from '../config/schema.js';
import type { Logger } from '../logger.js';
import type { Clock } from '../ports/clock.js';
import { AGENT_VERSION } from './agent.js';

/**
 * The device SDK transport an agent config describes, with the retained `offline` status as its
 * last will: the broker publishes it if the connection drops without a DISCONNECT.
 */
export function transportFromConfig(
  config: AgentConfig,
  deps: { readonly bootId: string; readonly clock: Clock; readonly logger: Logger },
): AwsIotTransport {
  const will: StatusMessage = {
    thingName: config.thingName,
    state: 'offline',
    bootId: deps.bootId,
    ts: deps.clock.now(),
    agentVersion: AGENT_VERSION,
  };
  return createAwsIotTransport({
    protocol: config.mqtt.protocol,
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
    will: { topic: appTopics.status(config.thingName), payload: JSON.stringify(will), qos: 1, retain: true },
    clock: deps.clock,
    logger: deps.logger,
  });
}
