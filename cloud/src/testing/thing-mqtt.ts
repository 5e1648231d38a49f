import { readFileSync } from 'node:fs';
import type { LocalCoreInfo } from '../app/local-core.js';
import type { ProvisionedThing } from './provision.js';

/**
 * mqtt.js options for a provisioned thing on a running local core: mutual TLS with the thing's
 * certificate against the core's CA, the thing name as client id, MQTT 3.1.1, and no reconnects
 * (a test sees the first failure), connecting within 5 s.
 */
export function thingMqttOptions(
  info: Pick<LocalCoreInfo, 'mqtt' | 'caFile'>,
  thing: Pick<ProvisionedThing, 'thingName' | 'certPem' | 'keyPem'>,
) {
  return {
    protocol: 'mqtts' as const,
    host: info.mqtt.host,
    port: info.mqtt.port,
    clientId: thing.thingName,
    ca: readFileSync(info.caFile),
    cert: thing.certPem,
    key: thing.keyPem,
    protocolVersion: 4 as const,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  };
}
