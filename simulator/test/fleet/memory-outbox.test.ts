import { describeOutboxBehaviour } from '@pifleet/device-agent';
import { afterEach, beforeEach, describe, it } from 'vitest';
import { createMemoryOutbox } from '../../src/fleet/memory-outbox.js';

// The outbox port's behaviour suite (also run against the SQLite outbox in device-agent), against
// the simulated fleet's in-memory outbox. It cannot crash and come back, so the crash cases are not registered.
describeOutboxBehaviour(
  { describe, it, beforeEach, afterEach },
  'in-memory (simulated fleet)',
  ({ maxBytes }) => {
    const outbox = createMemoryOutbox({ maxBytes, now: () => 0 });
    return { outbox, close: () => outbox.close() };
  },
  { durable: false },
);
