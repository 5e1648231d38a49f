export * from './clock.js';
export * from './control-plane-routes.js';
export * from './device-api.js';
export * from './model.js';
export * from './service.js';
export * from './store.js';
export * from './validation.js';
