import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Issue } from '@pifleet/protocol';
import { ConfigError } from '../errors.js';
import { type ConfigFlags, configFilePaths, type LoadConfigInput, loadConfig } from './load.js';
import { configOverlayPath } from './overlay.js';
import { type AgentConfig, outboxConfigSchema } from './schema.js';

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([{ path: '$', message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code}` }], {
      cause: err,
    });
  }
}

/**
 * The text of the config overlay of the agent a config describes (`config-overlay.json` beside
 * its outbox), or undefined when there is none or it cannot be read (an overlay never stops an
 * agent from starting).
 */
async function readOverlayText(input: LoadConfigInput): Promise<string | undefined> {
  const outboxPath = configFilePaths(input).outboxPath ?? outboxConfigSchema.parse({}).path;
  const overlay = configOverlayPath(outboxPath);
  if (overlay === undefined) return undefined;
  return readFile(overlay, 'utf8').catch(() => undefined);
}

/** Reads and validates a config file (plus its overlay, env and flags); throws a {@link ConfigError} listing every issue. */
export async function readConfigFile(
  file: string,
  env: Readonly<Record<string, string | undefined>> = {},
  flags: ConfigFlags = {},
): Promise<AgentConfig> {
  const input: LoadConfigInput = { fileText: await readText(file), fileName: file, env, flags };
  const overlayText = await readOverlayText(input);
  const result = loadConfig(overlayText === undefined ? input : { ...input, overlayText });
  if (!result.ok) throw new ConfigError(result.issues);
  return result.value;
}

/**
 * What `check-config` and `run` check before anything starts: the config (schema, endpoint,
 * depth) and every file it names (credentials parsed and matching, the outbox path usable). The
 * files are checked even when the config itself does not validate, so every problem is reported
 * at once. Throws a {@link ConfigError} listing them.
 */
export async function readAndCheckConfigFile(
  file: string,
  env: Readonly<Record<string, string | undefined>> = {},
  flags: ConfigFlags = {},
): Promise<AgentConfig> {
  const fileText = await readText(file);
  const input: LoadConfigInput = { fileText, fileName: file, env, flags };
  const overlayText = await readOverlayText(input);
  const result = loadConfig(overlayText === undefined ? input : { ...input, overlayText });
  const named = result.ok ? { ...result.value, outboxPath: result.value.outbox.path } : configFilePaths(input);
  const schemaPaths = new Set(result.ok ? [] : result.issues.map((i) => i.path));
  const fileIssues = (await checkNamedFiles(named)).filter((i) => !schemaPaths.has(i.path));
  const issues = [...(result.ok ? [] : result.issues), ...fileIssues];
  if (issues.length > 0 || !result.ok) throw new ConfigError(issues);
  return result.value;
}

/** The credentials a config names, parsed: what a TLS connection will be built from. */
export interface Credentials {
  readonly certificate: X509Certificate;
  readonly privateKey: KeyObject;
  /** The certificates of `caFile`, in file order (absent: the system trust store is used). */
  readonly authorities?: readonly X509Certificate[];
}

export type CredentialCheck =
  | { readonly ok: true; readonly credentials: Credentials; readonly pem: CredentialPem }
  | { readonly ok: false; readonly issues: readonly Issue[] };

/** The PEM text of the credential files, as read. */
export interface CredentialPem {
  readonly cert: string;
  readonly key: string;
  readonly ca?: string;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** The labels of the PEM blocks in a text (`CERTIFICATE`, `PRIVATE KEY`, …), in order. */
function pemLabels(text: string): string[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => m[1] ?? '');
}

/** Every `CERTIFICATE` block of a PEM bundle, parsed; throws on the first that does not parse. */
function parseCertificates(text: string): X509Certificate[] {
  return [...text.matchAll(PEM_BLOCK)].filter((m) => m[1] === 'CERTIFICATE').map((m) => new X509Certificate(m[0]));
}

/** Why a PEM file is not what it should be, in words a person acts on; undefined when it looks right. */
function pemProblem(text: string, want: 'certificate' | 'key' | 'ca', file: string): string | undefined {
  if (text.trim() === '') return `${file} is empty`;
  const labels = pemLabels(text);
  if (labels.length === 0) {
    return `${file} is not PEM (no "-----BEGIN …-----" block): use the PEM file the provisioning bundle or AWS IoT gave you`;
  }
  const hasCert = labels.includes('CERTIFICATE');
  const hasKey = labels.some((l) => l.endsWith('PRIVATE KEY'));
  if (want === 'key') {
    if (labels.includes('ENCRYPTED PRIVATE KEY'))
      return `${file} is an encrypted private key; the agent needs it unencrypted (openssl pkey -in ${file} -out key.pem)`;
    if (!hasKey && hasCert)
      return `${file} holds a certificate, not a private key: set keyFile to the private key file`;
    if (!hasKey) return `${file} holds no private key (found ${labels.join(', ')})`;
    return undefined;
  }
  if (!hasCert && hasKey) {
    return want === 'ca'
      ? `${file} holds a private key, not a CA certificate: set caFile to the CA certificate (ca.pem / AmazonRootCA1.pem)`
      : `${file} holds a private key, not a certificate: set certFile to the device certificate`;
  }
  if (!hasCert) return `${file} holds no certificate (found ${labels.join(', ')})`;
  return undefined;
}

/**
 * Reads and parses the certificate, private key and CA a config names, and checks that they fit
 * together: the key is the certificate's key, and when `caFile` holds the authority that issued the
 * certificate (the local IoT Core's CA issues both the broker's and the devices' certificates; a
 * device certificate from AWS IoT is issued by a CA that is not the Amazon root in `caFile`), the
 * certificate verifies against it. Returns every problem, each with what to do about it.
 */
export async function checkCredentials(
  config: {
    readonly certFile?: string | undefined;
    readonly keyFile?: string | undefined;
    readonly caFile?: string | undefined;
  },
  options: {
    /**
     * Whether to check the certificate against a CA of its issuer's name in `caFile` (default
     * true). A connection diagnosis leaves it to the TLS handshake, which says more precisely
     * which side does not trust which.
     */
    readonly chain?: boolean;
  } = {},
): Promise<CredentialCheck> {
  const issues: Issue[] = [];
  const files: [string, string | undefined][] = [
    ['certFile', config.certFile],
    ['keyFile', config.keyFile],
    ['caFile', config.caFile],
  ];
  const text = new Map<string, string>();
  for (const [key, file] of files) {
    if (file === undefined) continue;
    let st: Stats;
    try {
      st = await stat(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      issues.push({ path: key, message: code === 'ENOENT' ? `${file} does not exist` : `${file}: ${code}` });
      continue;
    }
    if (!st.isFile()) {
      issues.push({ path: key, message: `${file} is not a regular file` });
      continue;
    }
    if (key === 'keyFile' && (st.mode & 0o077) !== 0) {
      issues.push({
        path: key,
        message: `${file} is accessible by group or others (mode ${(st.mode & 0o777).toString(8)}); run chmod 600 ${file}`,
      });
    }
    try {
      await access(file, constants.R_OK);
      text.set(key, await readFile(file, 'utf8'));
    } catch (err) {
      issues.push({
        path: key,
        message: `${file} is not readable (${(err as NodeJS.ErrnoException).code}): the agent's user needs read access`,
      });
    }
  }

  let certificate: X509Certificate | undefined;
  let privateKey: KeyObject | undefined;
  let authorities: X509Certificate[] | undefined;
  const certText = text.get('certFile');
  if (certText !== undefined && config.certFile !== undefined) {
    const problem = pemProblem(certText, 'certificate', config.certFile);
    if (problem) issues.push({ path: 'certFile', message: problem });
    else {
      try {
        certificate = parseCertificates(certText)[0];
      } catch (err) {
        issues.push({ path: 'certFile', message: `${config.certFile} is not a valid certificate: ${errText(err)}` });
      }
    }
  }
  const keyText = text.get('keyFile');
  if (keyText !== undefined && config.keyFile !== undefined) {
    const problem = pemProblem(keyText, 'key', config.keyFile);
    if (problem) issues.push({ path: 'keyFile', message: problem });
    else {
      try {
        privateKey = createPrivateKey(keyText);
      } catch (err) {
        issues.push({ path: 'keyFile', message: `${config.keyFile} is not a valid private key: ${errText(err)}` });
      }
    }
  }
  const caText = text.get('caFile');
  if (caText !== undefined && config.caFile !== undefined) {
    const problem = pemProblem(caText, 'ca', config.caFile);
    if (problem) issues.push({ path: 'caFile', message: problem });
    else {
      try {
        authorities = parseCertificates(caText);
      } catch (err) {
        issues.push({
          path: 'caFile',
          message: `${config.caFile} holds a certificate that does not parse: ${errText(err)}`,
        });
      }
    }
  }

  if (certificate && privateKey && !certificate.checkPrivateKey(privateKey)) {
    issues.push({
      path: 'keyFile',
      message: `${config.keyFile} is not the private key of ${config.certFile} (they come from different key pairs): use the key file from the same bundle as the certificate`,
    });
  }
  if (certificate && authorities && options.chain !== false) {
    const namesake = authorities.filter((ca) => ca.subject === certificate.issuer);
    if (namesake.length > 0 && !namesake.some((ca) => certificate.verify(ca.publicKey))) {
      issues.push({
        path: 'certFile',
        message: `${config.certFile} names ${firstLine(certificate.issuer)} as its issuer but was not signed by the CA of that name in ${config.caFile} (a bundle from another local IoT Core, or a core whose CA was made again): provision the device again against this core, or use this core's ca.pem`,
      });
    }
  }
  if (issues.length > 0 || !certificate || !privateKey) {
    return { ok: false, issues };
  }
  return {
    ok: true,
    credentials: { certificate, privateKey, ...(authorities ? { authorities } : {}) },
    pem: { cert: certText ?? '', key: keyText ?? '', ...(caText !== undefined ? { ca: caText } : {}) },
  };
}

/**
 * Checks the outbox path is a file path the agent can use: not a directory, not something else
 * that exists, and in a directory that exists or can be created by this user.
 */
export async function checkOutboxPath(file: string): Promise<Issue[]> {
  if (file === ':memory:') return [];
  const where = 'outbox.path';
  const st = await stat(file).catch(() => undefined);
  if (st?.isDirectory()) {
    return [
      {
        path: where,
        message: `${file} is a directory; outbox.path names the database file: use ${path.join(file, 'outbox.db')}`,
      },
    ];
  }
  if (st && !st.isFile()) return [{ path: where, message: `${file} exists and is not a regular file` }];
  if (st) {
    return (await access(file, constants.R_OK | constants.W_OK).then(
      () => true,
      () => false,
    ))
      ? []
      : [{ path: where, message: `${file} is not readable and writable by this user: fix its owner or mode` }];
  }
  // The file does not exist yet: the nearest existing ancestor must be a directory we can write
  // into (the agent creates the missing directories and the file).
  let dir = path.dirname(path.resolve(file));
  for (;;) {
    const d = await stat(dir).catch(() => undefined);
    if (d) {
      if (!d.isDirectory())
        return [{ path: where, message: `${dir} is not a directory, so ${file} cannot be created in it` }];
      const writable = await access(dir, constants.W_OK | constants.X_OK).then(
        () => true,
        () => false,
      );
      return writable
        ? []
        : [
            {
              path: where,
              message: `${dir} is not writable by this user, so ${file} cannot be created: create its directory and give the agent's user write access (the systemd unit's ReadWritePaths)`,
            },
          ];
    }
    const parent = path.dirname(dir);
    if (parent === dir) return [];
    dir = parent;
  }
}

/**
 * Everything about a config that needs the file system: the credential files (present, parsed,
 * matching) and the outbox path. Returns every problem at once.
 */
export async function checkConfigFiles(config: AgentConfig): Promise<Issue[]> {
  return checkNamedFiles({ ...config, outboxPath: config.outbox.path });
}

async function checkNamedFiles(files: {
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  readonly caFile?: string | undefined;
  readonly outboxPath?: string | undefined;
}): Promise<Issue[]> {
  const credentials = await checkCredentials(files);
  return [
    ...(credentials.ok ? [] : credentials.issues),
    ...(files.outboxPath === undefined ? [] : await checkOutboxPath(files.outboxPath)),
  ];
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function firstLine(dn: string): string {
  return `"${dn.split('\n').join(', ')}"`;
}
