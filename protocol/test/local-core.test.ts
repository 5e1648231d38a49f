import { describe, expect, it } from 'vitest';
import { formatLocalEndpoint, type LocalEndpoint, parseLocalEndpoint } from '../src/index.js';

const endpoint: LocalEndpoint = {
  ready: true,
  mqtt: { host: '127.0.0.1', port: 8883 },
  http: 'http://127.0.0.1:8880',
  caFile: '/data/ca/ca.pem',
  credentialsFile: '/data/credentials',
  region: 'eu-west-1',
  accountId: '123456789012',
  console: 'http://127.0.0.1:8880/console/?token=abc',
};

describe('the local core endpoint file', () => {
  it('round-trips what the core writes, as one JSON line', () => {
    const text = formatLocalEndpoint(endpoint);
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.indexOf('\n')).toBe(text.length - 1);
    expect(parseLocalEndpoint(text)).toEqual({ ok: true, value: endpoint });
  });

  it('accepts an IPv6 listener and drops keys it does not know (a newer core may add some)', () => {
    const r = parseLocalEndpoint(JSON.stringify({ ...endpoint, http: 'http://[::1]:8880', later: 1 }));
    expect(r).toEqual({ ok: true, value: { ...endpoint, http: 'http://[::1]:8880' } });
  });

  it('reports a file that is not JSON at the root', () => {
    const r = parseLocalEndpoint('{"ready":');
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues).toEqual([{ path: '$', message: expect.stringMatching(/^not valid JSON \(/) }]);
  });

  it('reports every problem with its path', () => {
    const { http: _http, ...noHttp } = endpoint;
    const r = parseLocalEndpoint(
      JSON.stringify({ ...noHttp, mqtt: { host: '127.0.0.1', port: 0 }, accountId: '42', caFile: '' }),
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues.map((i) => i.path).sort()).toEqual(['accountId', 'caFile', 'http', 'mqtt.port']);
  });

  it.each([
    ['an ftp URL', { http: 'ftp://127.0.0.1:8880' }],
    ['a host without a scheme', { http: '127.0.0.1:8880' }],
    ['ready false', { ready: false }],
    ['a port as a string', { mqtt: { host: '127.0.0.1', port: '8883' } }],
  ])('refuses %s', (_name, change) => {
    expect(parseLocalEndpoint(JSON.stringify({ ...endpoint, ...change })).ok).toBe(false);
  });

  it('refuses a document nested deeper than any endpoint before walking it', () => {
    const deep = `${'['.repeat(100)}${']'.repeat(100)}`;
    const r = parseLocalEndpoint(deep);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]?.message).toMatch(/nested more than/);
  });
});
