export type { Expr, FromClause, Query, SelectItem } from './ast.js';
export { IotSqlError, type IotSqlErrorKind, type SourcePosition } from './errors.js';
export { FUNCTIONS, MQTT_PROPERTY_NAMES, UNSUPPORTED_FUNCTIONS } from './functions.js';
export {
  decodePayload,
  type EvalContext,
  type IotMessage,
  type MqttMessageProperties,
  type PayloadBody,
  type PreparedMessage,
  prepareMessage,
} from './message.js';
export {
  type CompiledRule,
  compileRule,
  compileTopicFilter,
  IOT_SQL_VERSION,
  type RuleOutput,
  type RuleResult,
  serializeOutput,
  type TopicFilterOptions,
} from './rule.js';
export { type CompiledTemplate, compileTemplate, formatTemplateValue, renderTemplate } from './template.js';
export type { SqlType, SqlValue } from './values.js';
export { typeOf } from './values.js';
