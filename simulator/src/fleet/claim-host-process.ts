import { type ClaimDeviceSpec, provisionClaimDevice } from './claim-device.js';
import type { ClaimHostReply, ClaimHostRequest } from './claim-hosts.js';

/**
 * Child-process entry of `--provision claim --workers K`: provisions the devices the parent hands
 * it, one message each, as many at once as it is sent, and answers each with its outcome.
 */
let spec: ClaimDeviceSpec | undefined;

process.on('message', (msg: ClaimHostRequest) => {
  if (msg.op === 'init') {
    spec = msg.spec;
    return;
  }
  const reply = (r: ClaimHostReply) => process.send?.(r);
  if (!spec) {
    reply({ id: msg.id, outcome: { ok: false, code: 'HOST_NOT_INITIALISED', message: 'no init', retries: 0 } });
    return;
  }
  void provisionClaimDevice(spec, msg.index, msg.thingName).then((outcome) => reply({ id: msg.id, outcome }));
});
process.on('disconnect', () => {
  // The parent is done with this host (or went away).
  process.exit(0);
});
