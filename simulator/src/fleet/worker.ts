import { parentPort, workerData } from 'node:worker_threads';
import { createDeviceHost, type HostInit } from './host.js';
import type { HostRequest, HostResponse } from './pool.js';

/** Worker-thread entry: one device host driven by the pool in the main thread. */
const port = parentPort;
if (port) {
  const host = createDeviceHost(workerData as HostInit, (event) => port.postMessage({ event }));
  port.on('message', (msg: HostRequest) => {
    const reply = (r: NonNullable<HostResponse['result']> | null) => port.postMessage({ id: msg.id, result: r } satisfies HostResponse);
    const fail = (err: unknown) => port.postMessage({ id: msg.id, error: String((err as Error)?.stack ?? err) });
    try {
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
        case 'stop':
          host.stop().then((f) => {
            reply(f);
            port.close();
          }, fail);
          break;
      }
    } catch (err) {
      fail(err);
    }
  });
}
