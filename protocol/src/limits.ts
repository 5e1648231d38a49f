/**
 * AWS IoT Core service limits that shape the wire contract.
 * Source: AWS IoT Core endpoints and quotas (message broker and Device Shadow quotas).
 */
export const LIMITS = {
  /** Maximum MQTT payload IoT Core accepts (128 KB, counted as 131,072 bytes). */
  maxMessageBytes: 128 * 1024,
  /** Maximum topic length in UTF-8 bytes. */
  maxTopicBytes: 256,
  /** Maximum number of forward slashes in a non-reserved topic (8 levels). */
  maxTopicSlashes: 7,
  /** Maximum MQTT client id length in UTF-8 bytes. */
  maxClientIdBytes: 128,
  /** Maximum thing name length in characters. */
  maxThingNameLength: 128,
  /** Maximum named shadow name length in characters. */
  maxShadowNameLength: 64,
  /** Maximum size of the state part of a shadow document. */
  maxShadowDocumentBytes: 8 * 1024,
  /** Maximum depth of the desired or reported section of a shadow document. */
  maxShadowDepth: 6,
  /** Publishes per second per connection IoT Core allows. */
  maxPublishesPerSecondPerConnection: 100,
  /** In-flight (unanswered) shadow requests per thing before IoT returns 429. */
  maxShadowInFlightPerThing: 10,
} as const;
