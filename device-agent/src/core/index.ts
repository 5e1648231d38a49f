export * from './batcher.js';
export * from './failure-log.js';
export * from './reconciler.js';
export * from './reported.js';
