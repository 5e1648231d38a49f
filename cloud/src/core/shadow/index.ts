export * from './document.js';
export * from './json.js';
export * from './limits.js';
export * from './request.js';
