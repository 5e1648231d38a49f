export { evaluateCondition, unsupportedOperators } from './conditions.js';
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
  compilePolicies,
  evaluatePolicies,
  type NamedPolicy,
  type PolicyAuthorizer,
  type PolicyDecision,
  policyProblems,
} from './evaluate.js';
export { compileGlob, type Glob, globMatches, type PatternPart, wildcardMatches } from './wildcard.js';
