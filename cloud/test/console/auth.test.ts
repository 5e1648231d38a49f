import { describe, expect, it } from 'vitest';
import { createConsoleAuth, hostName, parseCookies, SESSION_COOKIE } from '../../src/console/auth.js';

describe('hostName', () => {
  it.each([
    ['127.0.0.1:8880', '127.0.0.1'],
    ['localhost', 'localhost'],
    ['[::1]:8880', '[::1]'],
    ['Example.COM:80', 'example.com'],
  ])('%s → %s', (host, name) => {
    expect(hostName(host)).toBe(name);
  });
});

describe('parseCookies', () => {
  it('reads name=value pairs and keeps the first of a repeated name', () => {
    const c = parseCookies('a=1; pifleet_console=xyz; a=2; junk');
    expect(c.get('a')).toBe('1');
    expect(c.get('pifleet_console')).toBe('xyz');
    expect(c.has('junk')).toBe(false);
  });
});

describe('createConsoleAuth', () => {
  it('matches only the exact token', () => {
    const auth = createConsoleAuth({ token: 'secret-token', now: () => 0 });
    expect(auth.tokenMatches('secret-token')).toBe(true);
    expect(auth.tokenMatches('secret-tokeN')).toBe(false);
    expect(auth.tokenMatches('secret')).toBe(false);
    expect(auth.tokenMatches(null)).toBe(false);
  });

  it('generates a long random token by default', () => {
    const a = createConsoleAuth({ now: () => 0 });
    const b = createConsoleAuth({ now: () => 0 });
    expect(a.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.token).not.toBe(b.token);
  });

  it('issues HttpOnly SameSite=Strict session cookies that expire', () => {
    let now = 0;
    const auth = createConsoleAuth({ now: () => now, sessionTtlMs: 1_000 });
    const setCookie = auth.openSession();
    expect(setCookie).toMatch(
      new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]+; HttpOnly; SameSite=Strict; Path=/console;`),
    );
    const cookie = setCookie.split(';')[0] as string;
    expect(auth.hasSession({ cookie })).toBe(true);
    expect(auth.hasSession({ cookie: `${SESSION_COOKIE}=forged` })).toBe(false);
    expect(auth.hasSession({})).toBe(false);
    now = 1_000;
    expect(auth.hasSession({ cookie })).toBe(false);
  });

  it('drops the oldest session past the limit', () => {
    const auth = createConsoleAuth({ now: () => 0, maxSessions: 2 });
    const [a, b, c] = [auth.openSession(), auth.openSession(), auth.openSession()].map(
      (s) => s.split(';')[0] as string,
    );
    expect(auth.hasSession({ cookie: a })).toBe(false);
    expect(auth.hasSession({ cookie: b })).toBe(true);
    expect(auth.hasSession({ cookie: c })).toBe(true);
  });

  const auth = createConsoleAuth({ now: () => 0, allowedHosts: ['pi-gw.lan'] });
  it.each([
    ['loopback, no origin', { host: '127.0.0.1:8880' }, {}, true],
    ['localhost, same origin', { host: 'localhost:8880', origin: 'http://localhost:8880' }, {}, true],
    ['IPv6 loopback', { host: '[::1]:8880', origin: 'http://[::1]:8880' }, {}, true],
    ['configured host', { host: 'pi-gw.lan:8880' }, {}, true],
    ['foreign Host (DNS rebinding)', { host: 'evil.example:8880' }, {}, false],
    ['missing Host', {}, {}, false],
    ['foreign Origin', { host: '127.0.0.1:8880', origin: 'http://evil.example' }, {}, false],
    ['same host, other port', { host: '127.0.0.1:8880', origin: 'http://127.0.0.1:9999' }, {}, false],
    ['https Origin', { host: '127.0.0.1:8880', origin: 'https://127.0.0.1:8880' }, {}, false],
    ['opaque Origin', { host: '127.0.0.1:8880', origin: 'null' }, {}, false],
    ['POST without Origin', { host: '127.0.0.1:8880' }, { needsOrigin: true }, false],
    ['POST same origin', { host: '127.0.0.1:8880', origin: 'http://127.0.0.1:8880' }, { needsOrigin: true }, true],
    ['cross-site fetch', { host: '127.0.0.1:8880', 'sec-fetch-site': 'cross-site' }, {}, false],
    ['same-site fetch', { host: '127.0.0.1:8880', 'sec-fetch-site': 'same-site' }, {}, false],
    ['same-origin fetch', { host: '127.0.0.1:8880', 'sec-fetch-site': 'same-origin' }, {}, true],
    ['cross-site page load', { host: '127.0.0.1:8880', 'sec-fetch-site': 'cross-site' }, { navigation: true }, true],
  ])('%s', (_name, headers, options, ok) => {
    expect(auth.checkOrigin(headers, options).ok).toBe(ok);
  });
});
