import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import tls from 'node:tls';
import { isMqtt5Failure, MQTT5_REASON, mqtt5ReasonName } from '@pifleet/protocol';
import { checkCredentials } from '../config/files.js';
import { formatReason } from './transport-kit.js';

/**
 * Why a connection to the broker fails, found out by the agent itself: the device SDK (aws-crt)
 * reports a TLS failure only as `AWS_IO_TLS_ERROR_NEGOTIATION_FAILURE` (or as a closed socket), up
 * to 30 s late (s2n delays the close of a failed handshake by 10–30 s against timing attacks), and
 * its MQTT 3.1.1 client reconnects after a lost connection without reporting any failed attempt
 * (a refused CONNACK is only in its native log). So on a failure the transport classifies what the
 * SDK did say, and otherwise makes one TLS handshake of its own with the same files, through
 * Node's TLS, whose errors name the cause.
 */
export type ConnectFailureReason =
  /** The endpoint does not resolve. */
  | 'dns'
  /** Nothing listens on the endpoint's port. */
  | 'refused'
  /** No route, or no answer in time. */
  | 'unreachable'
  /** The broker's certificate does not chain to `caFile` (or the system store): unknown CA. */
  | 'untrusted-server'
  /** The broker's certificate does not name the endpoint. */
  | 'hostname-mismatch'
  /** The broker refused the device certificate during the TLS handshake. */
  | 'certificate-rejected'
  /** The certificate, key or CA file is missing, unreadable, not PEM, or the key is not the certificate's. */
  | 'credentials'
  /** TLS works, but the broker refuses the MQTT connection (CONNACK refused, or closed right after CONNECT). */
  | 'mqtt-refused'
  /** Some other TLS failure. */
  | 'tls'
  /** Nothing more specific is known. */
  | 'unknown';

export interface ConnectDiagnosis {
  readonly reason: ConnectFailureReason;
  /** One sentence: what is wrong, and what to do about it. */
  readonly detail: string;
  /** The error underneath (the SDK's or Node's), as text. */
  readonly cause?: string;
  /** AWS IoT's id of the device certificate (SHA-256 of its DER), when the certificate was read. */
  readonly certificateId?: string;
  /** What distinguishes failures of the same reason that need different fixes (an MQTT 5 CONNACK reason code). */
  readonly variant?: string;
  /** The MQTT 5 reason code the broker refused the connection with (CONNACK), when it sent one. */
  readonly reasonCode?: number;
  /** That code's name (`NOT_AUTHORIZED`, …). */
  readonly mqttReason?: string;
}

export interface ConnectTarget {
  readonly endpoint: string;
  readonly port: number;
  readonly clientId: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile?: string | undefined;
}

/** The CRT error name in an SDK error (`AWS_IO_SOCKET_CONNECTION_REFUSED`, …), if it carries one. */
export function crtErrorName(err: unknown): string | undefined {
  const named = (err as { error_name?: unknown } | undefined)?.error_name;
  if (typeof named === 'string' && named !== '') return named;
  const text = err instanceof Error ? err.message : String(err);
  return /\b(AWS_[A-Z0-9_]+)\b/.exec(text)?.[1];
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

const refusedDetail = (t: ConnectTarget, how: string) =>
  `the broker accepts the TLS handshake but refuses the MQTT connection (${how}): the certificate is inactive or revoked in the registry, or its policy does not allow iot:Connect as client id ${JSON.stringify(t.clientId)}; check the certificate's status and policy`;

/**
 * What a refused MQTT 5 CONNACK means for this device, by reason code. AWS IoT Core answers a
 * denied iot:Connect, an unknown or inactive certificate with NOT_AUTHORIZED ("MQTT reason codes",
 * AWS IoT Developer Guide); the throttling and availability codes mean "later", not "fix it".
 */
function connackRefusal(t: ConnectTarget, code: number): string {
  const how = `CONNACK ${formatReason(code)}`;
  switch (code) {
    case MQTT5_REASON.NOT_AUTHORIZED:
    case MQTT5_REASON.BAD_USERNAME_OR_PASSWORD:
    case MQTT5_REASON.BANNED:
      return refusedDetail(t, how);
    case MQTT5_REASON.CLIENT_IDENTIFIER_NOT_VALID:
      return `the broker refuses the client id ${JSON.stringify(t.clientId)} (${how}): set mqtt.clientId to a valid one (AWS IoT: up to 128 characters, and the thing name when the policy uses iot:Connection.Thing.ThingName)`;
    case MQTT5_REASON.SERVER_UNAVAILABLE:
    case MQTT5_REASON.SERVER_BUSY:
    case MQTT5_REASON.QUOTA_EXCEEDED:
    case MQTT5_REASON.CONNECTION_RATE_EXCEEDED:
      return `the broker refuses connections for now (${how}): the agent keeps retrying with backoff; nothing to fix on the device`;
    default:
      return `the broker refuses the MQTT connection (${how})`;
  }
}

/**
 * What an SDK connect failure says by itself, when that is enough: DNS, a refused or unreachable
 * port, a refused CONNACK. Undefined when only a handshake of our own can tell (TLS failures,
 * sockets closed by the broker).
 */
export function classifySdkFailure(
  t: ConnectTarget,
  err: unknown,
  connackReasonCode?: number,
): ConnectDiagnosis | undefined {
  const cause = errorText(err);
  if (connackReasonCode !== undefined && isMqtt5Failure(connackReasonCode)) {
    return {
      reason: 'mqtt-refused',
      detail: connackRefusal(t, connackReasonCode),
      cause,
      variant: `0x${connackReasonCode.toString(16).padStart(2, '0')}`,
      reasonCode: connackReasonCode,
      mqttReason: mqtt5ReasonName(connackReasonCode),
    };
  }
  if (/Server rejected connection/i.test(cause)) {
    return { reason: 'mqtt-refused', detail: refusedDetail(t, 'CONNACK refused'), cause };
  }
  const name = crtErrorName(err) ?? '';
  if (name.startsWith('AWS_IO_DNS_')) {
    return {
      reason: 'dns',
      detail: `${t.endpoint} does not resolve (${name}): check endpoint, and the device's DNS and network`,
      cause,
    };
  }
  if (name === 'AWS_IO_SOCKET_CONNECTION_REFUSED') {
    return {
      reason: 'refused',
      detail: `${t.endpoint}:${t.port} refused the connection: nothing listens there (is the broker running? AWS IoT listens on 8883 and 443)`,
      cause,
    };
  }
  if (
    name === 'AWS_IO_SOCKET_TIMEOUT' ||
    name === 'AWS_IO_SOCKET_NO_ROUTE_TO_HOST' ||
    name === 'AWS_IO_SOCKET_NETWORK_DOWN' ||
    name === 'AWS_ERROR_MQTT_TIMEOUT'
  ) {
    return {
      reason: 'unreachable',
      detail: `${t.endpoint}:${t.port} cannot be reached (${name}): check the network, and that a firewall lets the port through`,
      cause,
    };
  }
  return undefined;
}

/** Whether an SDK failure happened after the TLS handshake could have completed (the broker hung up). */
export function looksLikeMqttRefusal(err: unknown): boolean {
  const name = crtErrorName(err) ?? '';
  return (
    name === 'AWS_IO_SOCKET_CLOSED' ||
    name === 'AWS_ERROR_MQTT_UNEXPECTED_HANGUP' ||
    name === 'AWS_ERROR_MQTT_PROTOCOL_ERROR' ||
    /Server rejected connection/i.test(errorText(err))
  );
}

/** OpenSSL / Node verification codes that mean "the server's certificate does not chain to a trusted CA". */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);

function tlsFailure(t: ConnectTarget, err: NodeJS.ErrnoException, phase: 'tcp' | 'tls'): ConnectDiagnosis {
  const code = err.code ?? '';
  const cause = `${code ? `${code}: ` : ''}${err.message}`;
  const trust = t.caFile ? `caFile ${t.caFile}` : 'the system trust store';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL') {
    return {
      reason: 'dns',
      detail: `${t.endpoint} does not resolve (${code}): check endpoint, and the device's DNS and network`,
      cause,
    };
  }
  if (code === 'ECONNREFUSED') {
    return {
      reason: 'refused',
      detail: `${t.endpoint}:${t.port} refused the connection: nothing listens there (is the broker running? AWS IoT listens on 8883 and 443)`,
      cause,
    };
  }
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ETIMEDOUT' || code === 'EHOSTDOWN') {
    return {
      reason: 'unreachable',
      detail: `${t.endpoint}:${t.port} cannot be reached (${code}): check the network, and that a firewall lets the port through`,
      cause,
    };
  }
  if (UNTRUSTED.has(code)) {
    return {
      reason: 'untrusted-server',
      detail: `the broker's certificate is not trusted by ${trust} (${code}, unknown CA): set caFile to the CA of this endpoint (AmazonRootCA1.pem for AWS IoT, the local IoT Core's ca.pem)`,
      cause,
    };
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return {
      reason: 'untrusted-server',
      detail: `the broker's certificate is ${code === 'CERT_HAS_EXPIRED' ? 'expired' : 'not valid yet'} by this device's clock: check the device's time (NTP)`,
      cause,
    };
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = (err as { cert?: { subjectaltname?: string } }).cert?.subjectaltname;
    return {
      reason: 'hostname-mismatch',
      detail: `the broker's certificate does not name ${t.endpoint}${names ? ` (${names})` : ''}: set endpoint to a name the certificate lists`,
      cause,
    };
  }
  if (/ALERT/.test(code) || /alert/i.test(err.message)) {
    return {
      reason: 'certificate-rejected',
      detail: `the broker refused the device certificate in the TLS handshake (${code || err.message}): it was not issued by a CA this endpoint trusts, or is expired or revoked; use a certificate provisioned for this endpoint`,
      cause,
    };
  }
  if (phase === 'tls' && (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_SOCKET_CLOSED')) {
    return {
      reason: 'certificate-rejected',
      detail: `${t.endpoint} closed the connection during the TLS handshake: the device certificate is probably not registered or not accepted there (or a proxy interferes)`,
      cause,
    };
  }
  return { reason: 'tls', detail: `TLS with ${t.endpoint}:${t.port} failed (${cause})`, cause };
}

/**
 * Reads the credential files and makes one TLS handshake with the broker, as the agent would
 * (client certificate, `caFile` or the system store, the endpoint's name checked against the
 * broker's certificate). Resolves with what is wrong, or `{ tlsOk: true }` when the handshake
 * succeeds (the problem, if any, is above TLS). Never rejects. Sends no MQTT: a CONNECT with the
 * device's client id would take over a session the SDK may be opening at the same moment.
 */
export async function probeTls(
  t: ConnectTarget,
  opts: { readonly timeoutMs?: number; readonly signal?: AbortSignal } = {},
): Promise<{ readonly tlsOk: true; readonly certificateId: string } | ConnectDiagnosis> {
  const checked = await checkCredentials(t, { chain: false });
  if (!checked.ok) {
    return {
      reason: 'credentials',
      detail: checked.issues.map((i) => `${i.path}: ${i.message}`).join('; '),
    };
  }
  const certificateId = createHash('sha256').update(checked.credentials.certificate.raw).digest('hex');
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    let phase: 'tcp' | 'tls' = 'tcp';
    let settled = false;
    const socket = tls.connect({
      host: t.endpoint,
      port: t.port,
      ...(isIP(t.endpoint) === 0 ? { servername: t.endpoint } : {}),
      cert: checked.pem.cert,
      key: checked.pem.key,
      ...(checked.pem.ca !== undefined ? { ca: checked.pem.ca } : {}),
      // AWS IoT takes MQTT over TLS on 443 only with this ALPN protocol (the SDK sets it too).
      ...(t.port === 443 ? { ALPNProtocols: ['x-amzn-mqtt-ca'] } : {}),
      minVersion: 'TLSv1.2',
    });
    const finish = (r: { readonly tlsOk: true; readonly certificateId: string } | ConnectDiagnosis) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', abort);
      socket.removeAllListeners();
      socket.on('error', () => undefined);
      socket.destroy();
      resolve('tlsOk' in r ? r : { ...r, certificateId });
    };
    const timer = setTimeout(
      () =>
        finish({
          reason: 'unreachable',
          detail: `${t.endpoint}:${t.port} did not ${phase === 'tcp' ? 'accept a connection' : 'complete the TLS handshake'} within ${timeoutMs} ms: check the network and firewall`,
        }),
      timeoutMs,
    );
    const abort = () => finish({ reason: 'unknown', detail: 'diagnosis cancelled' });
    if (opts.signal?.aborted) abort();
    else opts.signal?.addEventListener('abort', abort, { once: true });
    socket.once('connect', () => {
      phase = 'tls';
    });
    socket.once('secureConnect', () => {
      // With TLS 1.3 the client finishes its side of the handshake before the server has checked
      // the client certificate; a refusal arrives as an alert just after. Wait briefly for it.
      const settle = setTimeout(() => finish({ tlsOk: true, certificateId }), 300);
      socket.once('close', () => clearTimeout(settle));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => finish(tlsFailure(t, err, phase)));
    socket.once('close', () => {
      if (phase === 'tcp') return;
      finish({
        reason: 'certificate-rejected',
        detail: `${t.endpoint} closed the connection during the TLS handshake: the device certificate is probably not registered or not accepted there (or a proxy interferes)`,
      });
    });
  });
}

/** What to say when TLS works but the SDK's connection keeps failing above it. */
export function mqttRefusedDiagnosis(t: ConnectTarget, certificateId: string, cause?: string): ConnectDiagnosis {
  return {
    reason: 'mqtt-refused',
    detail: refusedDetail(t, 'CONNACK refused, or closed right after CONNECT'),
    certificateId,
    ...(cause ? { cause } : {}),
  };
}
