export * from './http-routes.js';
export * from './service.js';
export * from './sqlite-store.js';
export * from './store.js';
