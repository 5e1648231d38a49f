export * from './files.js';
export * from './load.js';
export * from './overlay.js';
export * from './schema.js';
