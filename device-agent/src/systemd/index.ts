export * from './notify.js';
export * from './unit.js';
