import { createDeviceHost, type DeviceHost, type HostInit } from './host.js';
import type { HostRequest, HostResponse } from './pool.js';

/**
 * Child-process entry: one device host driven over IPC by the pool in the parent. (Worker threads
 * were the first choice, but aws-crt 1.33 aborts the whole process when a worker that used it is
 * torn down: its finalizers release thread-safe functions of an environment already being freed.)
 */
let host: DeviceHost | undefined;
const send = (msg: HostResponse | { event: unknown }) => process.send?.(msg);

process.on('message', (msg: HostRequest | { op: 'init'; id: number; init: HostInit }) => {
  const reply = (r: NonNullable<HostResponse['result']> | null) => send({ id: msg.id, result: r });
  const fail = (err: unknown) => send({ id: msg.id, error: String((err as Error)?.stack ?? err) });
  try {
    if (msg.op === 'init') {
      host = createDeviceHost(msg.init, (event) => send({ event }));
      reply(null);
      return;
    }
    if (!host) throw new Error('host not initialised');
    switch (msg.op) {
      case 'start':
        host.start();
        reply(null);
        break;
      case 'snapshot':
        reply(host.snapshot());
        break;
      case 'failSensors':
        reply(host.failSensors(msg.things));
        break;
      case 'syncShadow':
        host.syncShadow(msg.things).then(() => reply(null), fail);
        break;
      case 'pauseSampling':
        host.pauseSampling().then(() => reply(null), fail);
        break;
      case 'stop':
        host.stop().then((f) => {
          // Exit explicitly once the reply is written: a natural exit tears the environment down
          // and aws-crt's finalizers abort the process on the way (the same bug as in workers).
          process.send?.({ id: msg.id, result: f } satisfies HostResponse, () => process.exit(0));
        }, fail);
        break;
    }
  } catch (err) {
    fail(err);
  }
});
process.on('disconnect', () => {
  // The parent went away: nothing to report to any more.
  process.exit(0);
});
