/**
 * Child process that hosts one local IoT Core broker for the broker benchmark, so the load
 * generator (aws-crt clients) and the broker do not share a JavaScript thread. Driven over IPC:
 *   {type:'start', ...} → {type:'started', port}
 *   {type:'cpu'}        → {type:'cpu', user, system}   (microseconds, process.cpuUsage)
 *   {type:'stop'}       → exits
 */

import { createBroker } from '../../cloud/src/broker/index.js';
import type { DeviceIdentity, IdentityDirectory, ServerTlsMaterial } from '../../cloud/src/ports/identity.js';
import type { IotPolicyDocument } from '../../protocol/src/index.js';

export interface HostIdentity {
  readonly certificateId: string;
  readonly thingNames: string[];
  readonly policies: { name: string; document: IotPolicyDocument }[];
}

export type HostRequest =
  | {
      type: 'start';
      tls: ServerTlsMaterial;
      identities: HostIdentity[];
      policyChecks: boolean;
      account: { region: string; accountId: string };
    }
  | { type: 'cpu' }
  | { type: 'stop' };

export type HostReply = { type: 'started'; port: number } | { type: 'cpu'; user: number; system: number };

function send(reply: HostReply): void {
  process.send?.(reply);
}

let stop: (() => Promise<void>) | undefined;

process.on('message', (raw) => {
  const msg = raw as HostRequest;
  void (async () => {
    switch (msg.type) {
      case 'start': {
        const table = new Map<string, DeviceIdentity>();
        for (const id of msg.identities) {
          table.set(id.certificateId, {
            certificateId: id.certificateId,
            certificateArn: `arn:aws:iot:${msg.account.region}:${msg.account.accountId}:cert/${id.certificateId}`,
            status: 'ACTIVE',
            thingNames: id.thingNames,
            policies: id.policies,
          });
        }
        const identities: IdentityDirectory = {
          identityOf: (certificateId) => table.get(certificateId),
          onIdentityChange: () => () => undefined,
        };
        const broker = createBroker({
          identities,
          tls: msg.tls,
          host: '127.0.0.1',
          port: 0,
          account: msg.account,
          policyChecks: msg.policyChecks,
        });
        const { port } = await broker.start();
        stop = () => broker.stop();
        send({ type: 'started', port });
        break;
      }
      case 'cpu': {
        const { user, system } = process.cpuUsage();
        send({ type: 'cpu', user, system });
        break;
      }
      case 'stop':
        await stop?.();
        process.exit(0);
    }
  })().catch((err: unknown) => {
    process.stderr.write(`broker host failed: ${String(err)}\n`);
    process.exit(1);
  });
});

process.on('disconnect', () => process.exit(0));
