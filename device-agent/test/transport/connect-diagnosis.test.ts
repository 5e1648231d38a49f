import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConnectTarget,
  classifySdkFailure,
  looksLikeMqttRefusal,
  probeTls,
} from '../../src/adapters/connect-diagnosis.js';
import { freePort, makePki, startTlsBroker, type TestPki, type TlsBroker } from './tls-broker.js';

let pki: TestPki;
let other: TestPki;
let broker: TlsBroker;
beforeAll(async () => {
  [pki, other] = await Promise.all([makePki('pi-diag'), makePki('pi-diag-other')]);
  broker = await startTlsBroker(pki);
});
afterAll(async () => {
  await broker?.close();
  pki?.cleanup();
  other?.cleanup();
});

const target = (over: Partial<ConnectTarget> = {}): ConnectTarget => ({
  endpoint: 'localhost',
  port: broker.port,
  clientId: 'pi-diag',
  certFile: pki.certFile,
  keyFile: pki.keyFile,
  caFile: pki.caFile,
  ...over,
});

describe('classifySdkFailure', () => {
  it.each([
    ['Failed to connect: aws-c-io: AWS_IO_DNS_INVALID_NAME, Host name was invalid for dns resolution.', 'dns'],
    ['Failed to connect: aws-c-io: AWS_IO_SOCKET_CONNECTION_REFUSED, socket connection refused.', 'refused'],
    ['Failed to connect: aws-c-io: AWS_IO_SOCKET_TIMEOUT, socket operation timed out.', 'unreachable'],
    ['Server rejected connection.', 'mqtt-refused'],
  ])('%s → %s', (message, reason) => {
    expect(classifySdkFailure(target(), new Error(message))?.reason).toBe(reason);
  });

  it.each([
    // AWS IoT Core: a denied iot:Connect, an unknown or inactive certificate.
    [0x87, 'NOT_AUTHORIZED', /CONNACK NOT_AUTHORIZED \(0x87\).*certificate.*policy does not allow iot:Connect/],
    [
      0x85,
      'CLIENT_IDENTIFIER_NOT_VALID',
      /refuses the client id "pi-diag" \(CONNACK CLIENT_IDENTIFIER_NOT_VALID \(0x85\)\): set mqtt.clientId/,
    ],
    [0x9f, 'CONNECTION_RATE_EXCEEDED', /refuses connections for now .*keeps retrying/],
    [0x89, 'SERVER_BUSY', /refuses connections for now/],
    [0xa0, 'MAXIMUM_CONNECT_TIME', /refuses the MQTT connection \(CONNACK MAXIMUM_CONNECT_TIME \(0xa0\)\)/],
  ])('an MQTT 5 CONNACK reason code %#x names the refusal: %s', (code, name, detail) => {
    const d = classifySdkFailure(target(), new Error('connack'), code);
    expect(d).toMatchObject({ reason: 'mqtt-refused', reasonCode: code, mqttReason: name });
    expect(d?.variant).toBe(`0x${code.toString(16)}`);
    expect(d?.detail).toMatch(detail);
  });

  it('a CONNACK that is not a failure says nothing by itself', () => {
    expect(classifySdkFailure(target(), new Error('x'), 0x00)).toBeUndefined();
  });

  it.each([
    'Failed to connect: aws-c-io: AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE, TLS (SSL) negotiation failed',
    'Failed to connect: aws-c-io: AWS_IO_SOCKET_CLOSED, socket is closed.',
  ])('%s needs a handshake of our own to tell', (message) => {
    expect(classifySdkFailure(target(), new Error(message))).toBeUndefined();
  });

  it('a hang-up after the handshake is evidence of a refusal above TLS; a TLS failure is not', () => {
    expect(looksLikeMqttRefusal(new Error('aws-c-io: AWS_IO_SOCKET_CLOSED, socket is closed.'))).toBe(true);
    expect(looksLikeMqttRefusal(new Error('AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE'))).toBe(false);
  });
});

describe('probeTls', () => {
  it('a broker that accepts the device: TLS works, with the certificate id', async () => {
    const r = await probeTls(target());
    expect(r).toMatchObject({ tlsOk: true, certificateId: expect.stringMatching(/^[0-9a-f]{64}$/) });
  });

  it.each([
    ['a CA that did not issue the broker certificate', () => ({ caFile: other.caFile }), 'untrusted-server'],
    [
      'a certificate the broker does not trust',
      () => ({ certFile: other.certFile, keyFile: other.keyFile }),
      'certificate-rejected',
    ],
    ['a key from another pair', () => ({ keyFile: other.keyFile }), 'credentials'],
    ['a missing certificate', () => ({ certFile: path.join(pki.dir, 'missing.pem') }), 'credentials'],
  ])('%s → %s', async (_what, over, reason) => {
    const r = await probeTls(target(over()));
    expect('tlsOk' in r ? 'tls ok' : r.reason).toBe(reason);
  });

  it('a closed port → refused; a name that does not resolve → dns', async () => {
    const refused = await probeTls(target({ port: await freePort() }));
    expect('reason' in refused && refused.reason).toBe('refused');
    const dns = await probeTls(target({ endpoint: 'no-such-host.invalid' }));
    expect('reason' in dns && dns.reason).toBe('dns');
  });

  it('a cancelled probe ends at once', async () => {
    const stop = new AbortController();
    stop.abort();
    const r = await probeTls(target(), { signal: stop.signal });
    expect('reason' in r && r.reason).toBe('unknown');
  });
});
