export * from './broker/index.js';
export * from './core/iotsql/index.js';
export * from './core/policy/index.js';
export {
  applyUpdate,
  computeDelta,
  deleteDocument,
  getDocument,
  type ShadowRejection,
  type StoredShadow,
} from './core/shadow/document.js';
export { parseUpdateRequest, type ShadowUpdateInput } from './core/shadow/request.js';
export * from './errors.js';
export * from './logger.js';
export * from './ports/identity.js';
export * from './shadow/index.js';
