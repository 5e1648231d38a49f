export * from './core/iotsql/index.js';
export * from './errors.js';
export * from './logger.js';
export * from './ports/identity.js';
