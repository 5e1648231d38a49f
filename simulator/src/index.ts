export { createVirtualClock, type VirtualClock } from '@pifleet/device-agent';
export * from './agents/simulated-device.js';
// Simulated hardware and environment (issue 5).
export * from './env/environment.js';
export * from './env/prng.js';
export * from './errors.js';
export * from './hardware/chips/ads1115-model.js';
export * from './hardware/chips/bh1750-model.js';
export * from './hardware/chips/bme280-model.js';
export * from './hardware/gpio-chip.js';
export * from './hardware/i2c-bus.js';
export * from './hardware/simulated-device.js';
export * from './logger.js';
