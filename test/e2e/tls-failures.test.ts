import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { UpdateCertificateCommand } from '@aws-sdk/client-iot';
import { certificateIdOf, loadOrCreateCa } from '@pifleet/cloud';
import { type AwsIotTransport, createAwsIotTransport, createLogger } from '@pifleet/device-agent';
import { MQTT5_REASON, type MqttProtocol } from '@pifleet/protocol';
import {
  type DeviceFiles,
  type NetworkCut,
  provisionDevice,
  type RunningCore,
  removeDir,
  startCore,
  startRelay,
  tempDir,
} from '@pifleet/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOL_CASES } from './protocols.js';

/**
 * Why a connection fails, said by the agent: the real device SDK transport against the local IoT
 * Core with credentials or endpoints that cannot work — a CA that did not issue the broker's
 * certificate, a host name the broker's certificate does not list, a certificate the broker does
 * not know, a certificate revoked before and while connected (UpdateCertificate), a key from
 * another pair, a closed port, a name that does not resolve. Each failure is logged at warn with
 * its reason, the endpoint and the next retry; a failure that repeats is not logged again until it
 * changes or the log interval has passed. Every case runs over MQTT 5 and 3.1.1: the SDK's two
 * clients fail, retry and report differently, and the transport diagnoses each its own way.
 */

let dir: string;
let core: RunningCore;
const transports: AwsIotTransport[] = [];
const relays: NetworkCut[] = [];
const servers: net.Server[] = [];

beforeAll(async () => {
  dir = tempDir('e2e-tls');
  core = await startCore(path.join(dir, 'core'));
});

afterAll(async () => {
  for (const t of transports) await t.stop();
  for (const r of relays) await r.close();
  for (const s of servers) await new Promise((r) => s.close(r));
  await core?.stop();
  removeDir(dir);
});

interface Line {
  readonly level: number;
  readonly msg: string;
  readonly time: number;
  readonly [key: string]: unknown;
}

/** A transport as the agent makes it, with its log lines captured and awaitable. */
function connectAs(
  protocol: MqttProtocol,
  files: DeviceFiles,
  over: Partial<{ endpoint: string; port: number; caFile: string; keyFile: string; certFile: string }> = {},
  failureLogIntervalMs = 600_000,
) {
  const lines: Line[] = [];
  const waiters = new Set<() => void>();
  const logger = createLogger({
    level: 'debug',
    destination: {
      write: (s: string) => {
        lines.push(JSON.parse(s) as Line);
        for (const w of [...waiters]) w();
      },
    },
  });
  const transport = createAwsIotTransport({
    protocol,
    endpoint: '127.0.0.1',
    port: core.info.mqtt.port,
    clientId: files.thingName,
    certFile: files.certFile,
    keyFile: files.keyFile,
    caFile: files.caFile,
    reconnectMinMs: 200,
    reconnectMaxMs: 1_000,
    diagnoseAfterMs: 1_000,
    failureLogIntervalMs,
    logger,
    ...over,
  });
  transports.push(transport);
  const warnings = () => lines.filter((l) => l.msg === 'cannot connect');
  /** Resolves with the first line matching `match` (re-checked as lines arrive); rejects after `ms`. */
  const waitFor = (what: string, match: (l: Line) => boolean, ms = 20_000) =>
    new Promise<Line>((resolve, reject) => {
      const check = () => {
        const hit = lines.find(match);
        if (!hit) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(hit);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${what} within ${ms} ms; logged:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`));
      }, ms);
      waiters.add(check);
      check();
    });
  const warning = (reason: string, ms?: number) =>
    waitFor(`"cannot connect" (${reason})`, (l) => l.msg === 'cannot connect' && l.reason === reason, ms);
  return { transport, lines, warnings, waitFor, warning };
}

/** The fields every failure report carries: warn level, endpoint and port, the next retry or the attempt under way. */
function expectReport(line: Line, endpoint: string, port: number) {
  expect(line.level).toBe(40);
  expect(line).toMatchObject({ endpoint, port });
  expect(typeof line.detail).toBe('string');
  if (line.attemptInProgress !== true) {
    expect(Date.parse(String(line.nextRetryAt))).toBeGreaterThanOrEqual(line.time - 1);
    expect(line.retryInMs).toBeGreaterThanOrEqual(0);
  }
}

/**
 * What the refusal says beyond the words: over MQTT 5 the CONNACK's reason code, NOT_AUTHORIZED
 * (0x87), which AWS IoT Core sends for a certificate it does not accept or a denied iot:Connect;
 * MQTT 3.1.1's CONNACK has return code 5 and no reason code.
 */
function expectRefusalCode(protocol: MqttProtocol, line: Line) {
  if (protocol === '5') {
    expect(line).toMatchObject({ reasonCode: MQTT5_REASON.NOT_AUTHORIZED, mqttReason: 'NOT_AUTHORIZED' });
    expect(line.detail).toContain('NOT_AUTHORIZED (0x87)');
  } else {
    expect(line.reasonCode).toBeUndefined();
  }
}

async function otherCa(name: string) {
  const ca = await loadOrCreateCa({ dir: path.join(dir, name), now: Date.now });
  const issued = await ca.createKeysAndCertificate();
  const certFile = path.join(dir, `${name}.crt`);
  const keyFile = path.join(dir, `${name}.key`);
  writeFileSync(certFile, issued.certificatePem);
  writeFileSync(keyFile, issued.privateKeyPem);
  chmodSync(keyFile, 0o600);
  return { caFile: ca.caFile, certFile, keyFile, certificateId: certificateIdOf(issued.certificatePem) };
}

const certificateIdOfFile = (file: string) => certificateIdOf(readFileSync(file, 'utf8'));

describe.each(PROTOCOL_CASES)(
  'connection failures are logged with their reason, over MQTT $protocol',
  ({ protocol, tag }) => {
    it('a CA that did not issue the broker certificate: unknown CA, reported before the SDK says anything', async () => {
      const files = await provisionDevice(core, `tls-wrong-ca-${tag}`, dir);
      const wrong = await otherCa(`wrong-ca-${tag}`);
      const c = connectAs(protocol, files, { caFile: wrong.caFile });
      const started = Date.now();
      c.transport.start();
      const line = await c.warning('untrusted-server');
      expectReport(line, '127.0.0.1', core.info.mqtt.port);
      expect(line.detail).toMatch(
        /not trusted by caFile .*wrong-ca.*ca\.pem .*unknown CA.*set caFile to the CA of this endpoint/,
      );
      // The SDK reports a failed handshake 10-30 s late (s2n's blinding delay); the diagnosis does not wait for it.
      expect(Date.now() - started).toBeLessThan(10_000);
    });

    it('an endpoint the broker certificate does not name: hostname mismatch', async () => {
      const files = await provisionDevice(core, `tls-hostname-${tag}`, dir);
      // 127.0.0.2 reaches the same broker (through a relay) but is not in its certificate.
      const relay = await relayOn('127.0.0.2', core.info.mqtt.port);
      const c = connectAs(protocol, files, { endpoint: '127.0.0.2', port: relay });
      c.transport.start();
      const line = await c.warning('hostname-mismatch');
      expectReport(line, '127.0.0.2', relay);
      expect(line.detail).toMatch(
        /does not name 127\.0\.0\.2 \(.*127\.0\.0\.1.*\): set endpoint to a name the certificate lists/,
      );
    });

    it('a certificate from a CA the broker does not trust: rejected in the handshake', async () => {
      const files = await provisionDevice(core, `tls-foreign-cert-${tag}`, dir);
      const foreign = await otherCa(`foreign-${tag}`);
      const c = connectAs(protocol, files, { certFile: foreign.certFile, keyFile: foreign.keyFile });
      c.transport.start();
      const line = await c.warning('certificate-rejected');
      expectReport(line, '127.0.0.1', core.info.mqtt.port);
      expect(line.certificateId).toBe(foreign.certificateId);
    });

    it('a revoked certificate at the first connect: CONNACK refused, with its reason code over MQTT 5', async () => {
      const files = await provisionDevice(core, `tls-revoked-first-${tag}`, dir);
      const certificateId = certificateIdOfFile(files.certFile);
      await core.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'REVOKED' }));
      const c = connectAs(protocol, files);
      c.transport.start();
      const line = await c.warning('mqtt-refused');
      expectReport(line, '127.0.0.1', core.info.mqtt.port);
      expect(line.attemptInProgress).toBeUndefined();
      expect(line.detail).toMatch(/refuses the MQTT connection .*inactive or revoked/);
      expectRefusalCode(protocol, line);
    });

    it('a certificate revoked while connected: the loss, then why the SDK cannot reconnect', async () => {
      const files = await provisionDevice(core, `tls-revoked-running-${tag}`, dir);
      const certificateId = certificateIdOfFile(files.certFile);
      const c = connectAs(protocol, files);
      c.transport.start();
      await c.waitFor('connected', (l) => l.msg === 'connected');
      await core.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'REVOKED' }));
      await c.waitFor('the loss', (l) => l.msg === 'connection interrupted');
      // The SDK reconnects every 1-2 s and is refused each time, reporting none of it.
      const line = await c.warning('mqtt-refused');
      expectReport(line, '127.0.0.1', core.info.mqtt.port);
      // Over 3.1.1 the refusal is found by a TLS handshake of the transport's own, which names the
      // certificate; over MQTT 5 the CONNACK's reason code says it and the report has no certificate id.
      if (protocol === '3.1.1') expect(line.certificateId).toBe(certificateId);
      expect(line.detail).toMatch(/inactive or revoked/);
      expectRefusalCode(protocol, line);
      expect(Date.parse(String(line.nextRetryAt))).toBeGreaterThan(line.time);
    });

    it('a certificate deactivated while connected and activated again: back, saying after which failure', async () => {
      const files = await provisionDevice(core, `tls-inactive-running-${tag}`, dir);
      const certificateId = certificateIdOfFile(files.certFile);
      const c = connectAs(protocol, files);
      c.transport.start();
      await c.waitFor('connected', (l) => l.msg === 'connected');
      await core.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
      await c.warning('mqtt-refused');
      await core.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'ACTIVE' }));
      const back = await c.waitFor('the reconnection', (l) => l.msg === 'connected' && l.first === false, 30_000);
      expect(back).toMatchObject({ level: 30, afterFailure: 'mqtt-refused', downForMs: expect.any(Number) });
    });

    it('a key from another pair: the transport refuses to start, naming the files and check-config', async () => {
      const files = await provisionDevice(core, `tls-key-${tag}`, dir);
      const other = await provisionDevice(core, `tls-key-other-${tag}`, dir);
      const c = connectAs(protocol, files, { keyFile: other.keyFile });
      expect(() => c.transport.start()).toThrow(
        /cannot set up TLS from certFile .* keyFile .*: run pifleet-agent check-config/,
      );
      // (`pifleet-agent run` refuses the same files with exit 78 before connecting: device-agent/test/cli.)
    });

    it.each([
      ['a closed port', () => ({ port: closedPort }), 'refused', /refused the connection: nothing listens there/],
      ['a name that does not resolve', () => ({ endpoint: 'no-such-host.invalid' }), 'dns', /does not resolve/],
    ])('%s', async (_what, over, reason, detail) => {
      const files = await provisionDevice(core, `tls-${reason}-${tag}`, dir);
      const c = connectAs(protocol, files, over());
      c.transport.start();
      const line = await c.warning(reason);
      expect(line.detail).toMatch(detail);
      expect(line.nextRetryAt).toBeDefined();
    });

    it('a failure that repeats is logged once per interval, and again at once when its reason changes', async () => {
      const files = await provisionDevice(core, `tls-repeat-${tag}`, dir);
      const relay = await startRelay(core.info.mqtt.port);
      relays.push(relay);
      const certificateId = certificateIdOfFile(files.certFile);
      await core.iot.send(new UpdateCertificateCommand({ certificateId, newStatus: 'INACTIVE' }));
      const c = connectAs(protocol, files, { port: relay.port }, 4_000);
      c.transport.start();
      await c.warning('mqtt-refused');
      // Attempts every 0.2-1 s for 5 s: many failures, one more warning once the 4 s interval has passed.
      await c.waitFor('repeated failures', (l) => l.msg === 'cannot connect (unchanged)' && Number(l.failures) >= 4);
      await c.waitFor('the repeat after the interval', () => c.warnings().length >= 2, 10_000);
      const [first, second] = c.warnings();
      // (A first report made while an attempt was under way may be followed at once by one naming the retry time.)
      expect(first?.attemptInProgress).toBeUndefined();
      expect(Number(second?.time) - Number(first?.time)).toBeGreaterThanOrEqual(4_000);
      expect(second).toMatchObject({ reason: 'mqtt-refused', repeatedSinceLastLog: expect.any(Number) });
      // The broker goes away: a new reason, logged without waiting for the interval.
      const before = c.warnings().length;
      await relay.close();
      const refused = await c.warning('refused');
      expect(Number(refused.time) - Number(c.warnings()[before - 1]?.time)).toBeLessThan(4_000);
      // An attempt under way when the relay closed may fail mid-handshake first, with a reason of its
      // own (the MQTT 5 client retries every 0.2-1 s here, so it often does): each line names a
      // reason other than the line before it, none is a repeat inside the interval.
      const since = c.warnings().slice(before - 1);
      expect(since.length).toBeLessThanOrEqual(3);
      for (let i = 1; i < since.length; i++) expect(since[i]?.reason).not.toBe(since[i - 1]?.reason);
    });
  },
);

let closedPort = 0;
beforeAll(async () => {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closedPort = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
});

/** A TCP relay to the broker listening on another loopback address. */
async function relayOn(host: string, targetPort: number): Promise<number> {
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, host, r));
  return (server.address() as net.AddressInfo).port;
}
