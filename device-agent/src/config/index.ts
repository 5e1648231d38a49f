export * from './files.js';
export * from './load.js';
export * from './schema.js';
