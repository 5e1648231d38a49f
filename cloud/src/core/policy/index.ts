export {
  type CompiledCondition,
  compileCondition,
  conditionProblems,
  evaluateCondition,
  unsupportedOperators,
  variableProblems,
} from './conditions.js';
export {
  type CertificateAttributes,
  type ContextValue,
  connectionThingName,
  contextValues,
  type DistinguishedName,
  IOT_ACTIONS,
  type IotAction,
  iotResourceArn,
  type PolicyContext,
  resolveVariables,
} from './context.js';
export {
  type CompileOptions,
  compilePolicies,
  documentProblems,
  evaluatePolicies,
  type NamedPolicy,
  type PolicyAuthorizer,
  type PolicyDecision,
  policyProblems,
  type StatementProblem,
} from './evaluate.js';
export { CERTIFICATE_DN_FIELDS, type KeyKind, keyKind, normalizeKey } from './keys.js';
export {
  type CidrRange,
  cidrContains,
  type IpAddress,
  isoSeconds,
  parseBase64,
  parseCidr,
  parseDate,
  parseIp,
  parseNumber,
} from './operands.js';
export { compileGlob, type Glob, globMatches, type PatternPart, wildcardMatches } from './wildcard.js';
