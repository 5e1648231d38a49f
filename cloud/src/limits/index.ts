export {
  API_RATE_QUOTAS,
  API_TPS,
  type ApiOperation,
  type ApiQuotaName,
  apiQuotaName,
  apiQuotaOf,
} from './api-quotas.js';
export { type ApiRateGate, createApiRateGate } from './api-rates.js';
export { createThrottleCounters, type ThrottleCounters, type ThrottleCountersOptions } from './counters.js';
export { KeyedRateLimiter } from './keyed-rate.js';
export {
  LIMITS_MODES,
  type LimitOverrides,
  type Limits,
  type LimitsMode,
  limitOf,
  parseLimitOverrides,
  QUOTA_NAMES,
  QUOTAS,
  type QuotaKind,
  type QuotaName,
  type QuotaSpec,
  resolveLimits,
} from './quotas.js';
