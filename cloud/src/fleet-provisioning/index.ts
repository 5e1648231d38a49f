/**
 * Fleet provisioning's device side in the local IoT Core: the certificate requests over MQTT and
 * the certificate ownership tokens RegisterThing consumes.
 */

export * from './answering.js';
export * from './certificates-mqtt.js';
export * from './ownership-tokens.js';
export * from './register-thing.js';
