export {
  createDynamoDbTelemetryStore,
  createTelemetryTable,
  type DynamoDbTelemetryStoreOptions,
  TELEMETRY_TABLE_KEYS,
} from './adapters/dynamodb-telemetry-store.js';
export {
  createSqliteTelemetryStore,
  SQLITE_TELEMETRY_FILENAME,
  type SqliteTelemetryStoreOptions,
} from './adapters/sqlite-telemetry-store.js';
export * from './broker/index.js';
export * from './core/iotsql/index.js';
export * from './core/policy/index.js';
export {
  applyUpdate,
  computeDelta,
  deleteDocument,
  getDocument,
  type ShadowRejection,
  type StoredShadow,
} from './core/shadow/document.js';
export { parseUpdateRequest, type ShadowUpdateInput } from './core/shadow/request.js';
export * from './core/telemetry/errors.js';
export { type IngestOutcome, TOPIC_THING_FIELD } from './core/telemetry/ingest.js';
export { handleQueryRequest, type QueryApiRequest, type QueryApiResponse } from './core/telemetry/query-api.js';
export * from './errors.js';
export { createIngestHandler, type IngestHandler, type IngestHandlerDeps } from './handlers/ingest.js';
export {
  createPresenceHandler,
  type PresenceHandler,
  type PresenceHandlerDeps,
  type PresenceOutcome,
} from './handlers/presence.js';
export { createQueryHandler, type QueryHandler, type QueryHandlerDeps } from './handlers/query.js';
export * from './logger.js';
export * from './ports/identity.js';
export * from './ports/telemetry-store.js';
export * from './rules/definitions.js';
export * from './shadow/index.js';
