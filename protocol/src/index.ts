export * from './exit-codes.js';
export * from './issues.js';
export * from './limits.js';
export * from './policy.js';
export * from './shadow.js';
export * from './state.js';
export * from './telemetry.js';
export * from './topics.js';
