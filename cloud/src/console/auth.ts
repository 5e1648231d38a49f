import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * How the web console authenticates without SigV4 and without the local secret key ever reaching
 * a browser: a random console token, generated at start and printed in the console URL, is traded
 * once per browser for a session cookie (HttpOnly, SameSite=Strict, Path=/console). Every other
 * console request needs that cookie, a Host that names this machine's loopback (or a configured
 * name, against DNS rebinding), and no foreign Origin. No CORS headers are ever sent.
 */

export const SESSION_COOKIE = 'pifleet_console';
export const CONSOLE_PREFIX = '/console';

export interface ConsoleAuthOptions {
  /** The console token; default 32 random bytes, base64url. */
  readonly token?: string;
  /** Host names (without port) a request's Host may carry besides localhost, 127.0.0.1 and ::1. */
  readonly allowedHosts?: readonly string[];
  /** Session lifetime, default 12 h. */
  readonly sessionTtlMs?: number;
  /** Sessions kept at once; the oldest is dropped past it. Default 256. */
  readonly maxSessions?: number;
  readonly now: () => number;
}

export type RequestCheck = { ok: true } | { ok: false; status: 401 | 403; reason: string };

export interface ConsoleAuth {
  readonly token: string;
  tokenMatches(candidate: string | null | undefined): boolean;
  /** Starts a session; returns the Set-Cookie header value. */
  openSession(): string;
  /** The session cookie is present and live. */
  hasSession(headers: IncomingHttpHeaders): boolean;
  /**
   * Host and Origin checks (403). `needsOrigin` for state-changing requests (browsers always send
   * Origin with them); `navigation` for page loads, which may come from anywhere (the Strict cookie
   * is not sent cross-site anyway); other requests must be same-origin when the browser says.
   */
  checkOrigin(headers: IncomingHttpHeaders, options?: { needsOrigin?: boolean; navigation?: boolean }): RequestCheck;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1', '[::1]'];

/** The host name part of a Host header (`[::1]:8880` → `[::1]`, `a.b:80` → `a.b`). */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

/**
 * Whether a Host header names this machine: its loopback names, or one of `allowedHosts` (the bind
 * address, the machine's name). Against DNS rebinding: a page of another site that resolves its
 * own name to 127.0.0.1 still sends its own name as Host. The console and `GET /metrics` share it.
 */
export function thisMachineHosts(allowedHosts: readonly string[] = []): (host: string | undefined) => boolean {
  const allowed = new Set([...LOOPBACK_NAMES, ...allowedHosts.map((h) => h.toLowerCase())]);
  for (const h of allowedHosts) if (h.includes(':') && !h.startsWith('[')) allowed.add(`[${h.toLowerCase()}]`);
  return (host) => host !== undefined && host !== '' && allowed.has(hostName(host));
}

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const name = part.slice(0, eq).trim();
    if (name && !out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

function single(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

export function createConsoleAuth(options: ConsoleAuthOptions): ConsoleAuth {
  const token = options.token ?? randomBytes(32).toString('base64url');
  const tokenBytes = Buffer.from(token, 'utf8');
  const ttl = options.sessionTtlMs ?? 12 * 3_600_000;
  const maxSessions = options.maxSessions ?? 256;
  const isThisMachine = thisMachineHosts(options.allowedHosts);
  /** session id → expiry (ms); Map order is creation order. */
  const sessions = new Map<string, number>();

  return {
    token,
    tokenMatches(candidate) {
      if (typeof candidate !== 'string') return false;
      const bytes = Buffer.from(candidate, 'utf8');
      return bytes.length === tokenBytes.length && timingSafeEqual(bytes, tokenBytes);
    },
    openSession() {
      const now = options.now();
      for (const [id, expires] of sessions) if (expires <= now) sessions.delete(id);
      while (sessions.size >= maxSessions) {
        const oldest = sessions.keys().next().value;
        if (oldest === undefined) break;
        sessions.delete(oldest);
      }
      const id = randomBytes(32).toString('base64url');
      sessions.set(id, now + ttl);
      return `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Strict; Path=${CONSOLE_PREFIX}; Max-Age=${Math.floor(ttl / 1000)}`;
    },
    hasSession(headers) {
      const id = parseCookies(single(headers.cookie)).get(SESSION_COOKIE);
      if (id === undefined) return false;
      const expires = sessions.get(id);
      if (expires === undefined) return false;
      if (expires <= options.now()) {
        sessions.delete(id);
        return false;
      }
      return true;
    },
    checkOrigin(headers, check = {}) {
      const host = single(headers.host);
      if (!host || !isThisMachine(host)) {
        return { ok: false, status: 403, reason: 'Host is not this machine' };
      }
      const origin = single(headers.origin);
      if (origin !== undefined && origin !== 'null') {
        let originHost: string;
        try {
          const u = new URL(origin);
          originHost = u.host.toLowerCase();
          if (u.protocol !== 'http:') return { ok: false, status: 403, reason: 'cross-origin request' };
        } catch {
          return { ok: false, status: 403, reason: 'malformed Origin' };
        }
        if (originHost !== host.trim().toLowerCase()) return { ok: false, status: 403, reason: 'cross-origin request' };
      } else if (check.needsOrigin) {
        return { ok: false, status: 403, reason: 'Origin required' };
      } else if (origin === 'null') {
        return { ok: false, status: 403, reason: 'opaque Origin' };
      }
      const site = single(headers['sec-fetch-site']);
      if (!check.navigation && site !== undefined && site !== 'same-origin') {
        return { ok: false, status: 403, reason: 'cross-site request' };
      }
      return { ok: true };
    },
  };
}
