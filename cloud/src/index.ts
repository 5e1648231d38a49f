export * from './adapters/command-api-client.js';
export {
  createDynamoDbTelemetryStore,
  createTelemetryTable,
  type DynamoDbTelemetryStoreOptions,
  TELEMETRY_TABLE_KEYS,
} from './adapters/dynamodb-telemetry-store.js';
export * from './adapters/iot-websocket.js';
export {
  createSqliteTelemetryStore,
  SQLITE_TELEMETRY_FILENAME,
  type SqliteTelemetryStoreOptions,
} from './adapters/sqlite-telemetry-store.js';
export {
  API_ROUTES,
  commandQueryApiRoutes,
  fromApiGatewayResult,
  LOCAL_API_STAGE,
  toApiGatewayEvent,
} from './app/api-routes.js';
export {
  AWS_CONSOLE_DEFAULT_PORT,
  type AwsConsole,
  type AwsConsoleOptions,
  createAwsConsole,
} from './app/aws-console.js';
export {
  createLocalIotCore,
  type LocalCoreInfo,
  type LocalCoreServices,
  type LocalIotCore,
  type LocalIotCoreDeps,
  localCorePaths,
  readLocalEndpoint,
} from './app/local-core.js';
export * from './broker/index.js';
export {
  CaError,
  CsrError,
  certificateIdOf,
  type IssuedKeysAndCertificate,
  type LocalCa,
  loadOrCreateCa,
  type ServerCertificate,
} from './ca/local-ca.js';
export {
  ConfigError,
  LOCAL_CORE_DEFAULT_WS_PORT,
  LOCAL_CORE_DEFAULTS,
  LOCAL_CORE_ENV,
  type LocalCoreConfig,
  loadLocalCoreConfig,
  UsageError,
} from './config/local-core.js';
export { createWebConsole, type WebConsole, type WebConsoleDeps } from './console/console.js';
export { COMMAND_ROUTES, handleCommandRequest, parseDesiredRequest } from './core/command/api.js';
export {
  ShadowUpdateRejectedError,
  ShadowVersionConflictError,
  UpstreamUnavailableError,
} from './core/command/errors.js';
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
export { type CommandHandler, type CommandHandlerDeps, createCommandHandler } from './handlers/command.js';
export { createIngestHandler, type IngestHandler, type IngestHandlerDeps } from './handlers/ingest.js';
export {
  createPresenceHandler,
  type PresenceHandler,
  type PresenceHandlerDeps,
  type PresenceOutcome,
} from './handlers/presence.js';
export { createQueryHandler, type QueryHandler, type QueryHandlerDeps } from './handlers/query.js';
export {
  type CredentialStore,
  CredentialsError,
  LOCAL_PROFILE,
  type LocalCredentials,
  loadOrCreateCredentials,
  readCredentialsFile,
  singleCredentialStore,
} from './http/credentials.js';
export { ApiError, invalidRequest } from './http/errors.js';
export { type IotControlPlaneDeps, iotControlPlaneRoutes } from './http/iot-control-plane.js';
export {
  type ApiRequest,
  type ApiResponse,
  createHttpServer,
  DEFAULT_MAX_BODY_BYTES,
  type HttpMethod,
  type HttpServerHandle,
  type HttpServerOptions,
  type Route,
  type RouteGroup,
  toErrorResponse,
  type UnmatchedRequest,
} from './http/server.js';
export { type SigV4Principal, type SigV4Result, verifySigV4, verifySigV4Query } from './http/sigv4.js';
export * from './logger.js';
export * from './ports/identity.js';
export * from './ports/telemetry-store.js';
export { RegistryError, type RegistryErrorCode } from './registry/errors.js';
export {
  type CertificateRecord,
  openSqliteRegistry,
  type Page,
  type PolicyRecord,
  type Registry,
  type ThingRecord,
} from './registry/sqlite-registry.js';
export type { RuleErrorPayload, RuleFailure } from './rules/actions/error-payload.js';
export { RuleActionError, RuleLoadError } from './rules/actions/errors.js';
export { logFileName } from './rules/actions/log.js';
export * from './rules/definitions.js';
export {
  createRulesEngine,
  type RuleStats,
  type RulesEngine,
  type RulesEngineDeps,
  type RulesEngineStats,
} from './rules/engine.js';
export * from './shadow/index.js';
export {
  CORE_BIN,
  type CoreExit,
  type CoreProcess,
  launchCore as launchCoreProcess,
  type RunningCoreProcess,
  spawnCore as spawnCoreProcess,
} from './testing/core-process.js';
export {
  type InProcessCore,
  type InProcessCoreOptions,
  localProfileCredentials,
  removeDir,
  sdkClients,
  startInProcessCore,
  tempDir,
} from './testing/in-process-core.js';
export { type BinExit, killLaunched, type LaunchedBin, type LaunchOptions, launchBin } from './testing/launch-bin.js';
export { type ProvisionedThing, provisionThing } from './testing/provision.js';
