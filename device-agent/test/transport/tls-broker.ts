/**
 * Test fixture: a throwaway certificate authority (made with @peculiar/x509) and an aedes MQTT
 * 3.1.1 broker behind Node's TLS server requiring client certificates, on 127.0.0.1.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import * as x509 from '@peculiar/x509';
import { Aedes, type AedesOptions } from 'aedes';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface TestPki {
  readonly dir: string;
  readonly caFile: string;
  readonly caPem: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  readonly certFile: string;
  readonly keyFile: string;
  cleanup(): void;
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** A CA, a server certificate for localhost/127.0.0.1 and a client certificate, written to a temp dir. */
export async function makePki(clientCn = 'pi-test'): Promise<TestPki> {
  const gen = () => webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']) as Promise<webcrypto.CryptoKeyPair>;
  const [caKeys, serverKeys, clientKeys] = await Promise.all([gen(), gen(), gen()]);
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 86_400_000);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=pifleet test CA',
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const leaf = (serial: string, cn: string, keys: webcrypto.CryptoKeyPair, server: boolean) =>
    x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: `CN=${cn}`,
      issuer: ca.subject,
      notBefore,
      notAfter,
      signingKey: caKeys.privateKey,
      publicKey: keys.publicKey,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(false),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([server ? '1.3.6.1.5.5.7.3.1' : '1.3.6.1.5.5.7.3.2']),
        ...(server
          ? [
              new x509.SubjectAlternativeNameExtension([
                { type: 'dns', value: 'localhost' },
                { type: 'ip', value: '127.0.0.1' },
              ]),
            ]
          : []),
      ],
    });
  const [serverCert, clientCert] = await Promise.all([
    leaf('02', 'localhost', serverKeys, true),
    leaf('03', clientCn, clientKeys, false),
  ]);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pifleet-pki-'));
  const caPem = ca.toString('pem');
  const caFile = path.join(dir, 'ca.pem');
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  writeFileSync(caFile, caPem);
  writeFileSync(certFile, clientCert.toString('pem'));
  writeFileSync(keyFile, await keyPem(clientKeys.privateKey), { mode: 0o600 });
  return {
    dir,
    caFile,
    caPem,
    serverCertPem: serverCert.toString('pem'),
    serverKeyPem: await keyPem(serverKeys.privateKey),
    certFile,
    keyFile,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface TlsBroker {
  readonly port: number;
  readonly aedes: Aedes;
  /** Drops every client connection without a DISCONNECT (as a network failure would). */
  dropClients(): void;
  close(): Promise<void>;
}

export async function startTlsBroker(pki: TestPki, port = 0, options: AedesOptions = {}): Promise<TlsBroker> {
  const aedes = await Aedes.createBroker(options);
  const sockets = new Set<Socket>();
  const server = tls.createServer(
    { key: pki.serverKeyPem, cert: pki.serverCertPem, ca: [pki.caPem], requestCert: true, rejectUnauthorized: true },
    (socket) => {
      sockets.add(socket);
      socket.setNoDelay(true);
      socket.on('close', () => sockets.delete(socket));
      aedes.handle(socket);
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    aedes,
    dropClients: () => {
      for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const net = await import('node:net');
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', () => resolve()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Resolves with the first value `register` delivers, or rejects after `ms`. */
export function waitFor<T>(what: string, register: (done: (v: T) => void) => void, ms = 10_000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    register((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

export function writeFile(file: string, text: string): void {
  writeFileSync(file, text);
}
