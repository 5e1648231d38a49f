import { createHash, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AMAZON_ROOT_CA_1_PEM, AMAZON_ROOT_CA_1_SHA256 } from '../../src/core/amazon-root-ca.js';
import {
  buildAgentConfig,
  certificateIdFromArn,
  certificateIdOf,
  parseIotArn,
  renderBundleUnit,
  splitEndpoint,
} from '../../src/core/bundle.js';

describe('Amazon Root CA 1', () => {
  it('is the genuine certificate (fingerprint and subject)', () => {
    const cert = new X509Certificate(AMAZON_ROOT_CA_1_PEM);
    expect(cert.fingerprint256.replace(/:/g, '')).toBe(AMAZON_ROOT_CA_1_SHA256);
    expect(cert.subject).toContain('CN=Amazon Root CA 1');
    expect(cert.ca).toBe(true);
  });
});

describe('bundle content', () => {
  it.each(['5', '3.1.1'] as const)('agent config carries the MQTT version it is given (%s)', (mqttProtocol) => {
    const c = buildAgentConfig({
      thingName: 'pi-01',
      endpoint: 'localhost',
      port: 8883,
      mqttProtocol,
      installDir: '/b',
    });
    expect(c.mqtt).toEqual({ protocol: mqttProtocol });
  });

  it('agent config names the files under the install dir', () => {
    const c = buildAgentConfig({
      thingName: 'pi-01',
      endpoint: 'abc-ats.iot.eu-west-1.amazonaws.com',
      port: 8883,
      mqttProtocol: '5',
      installDir: '/etc/pifleet',
    });
    expect(c).toMatchObject({
      thingName: 'pi-01',
      certFile: '/etc/pifleet/certificate.pem.crt',
      keyFile: '/etc/pifleet/private.pem.key',
      caFile: '/etc/pifleet/ca.pem',
      mqtt: { protocol: '5' },
    });
    expect(c).not.toHaveProperty('outbox');
  });

  it('unit runs the agent with that config and does not restart on a config error', () => {
    const unit = renderBundleUnit('/etc/pifleet');
    expect(unit).toContain('--config /etc/pifleet/agent.json');
    expect(unit).toContain('RestartPreventExitStatus=78');
    // The same hardened notify unit `pifleet-agent print-unit` writes.
    for (const line of ['Type=notify', 'WatchdogSec=30', 'Restart=always', 'ReadWritePaths=/var/lib/pifleet']) {
      expect(unit.split('\n')).toContain(line);
    }
    // The README's install: agent in /opt/pifleet, bundle in /etc/pifleet (read-only), outbox in /var/lib/pifleet.
    expect(unit.split('\n')).toContain(
      'ExecStart=/usr/bin/env node /opt/pifleet/bin/pifleet-agent.js run --config /etc/pifleet/agent.json',
    );
    expect(unit.split('\n')).toContain('ReadOnlyPaths=/etc/pifleet');
  });

  it('a bundle used in place lists its directory once, writable (read-only would win in systemd)', () => {
    const lines = renderBundleUnit('/home/pi/bundle', '/home/pi/bundle').split('\n');
    expect(lines).toContain('ReadWritePaths=/home/pi/bundle');
    expect(lines.filter((l) => l.includes('/home/pi/bundle') && /Paths=/.test(l))).toEqual([
      'ReadWritePaths=/home/pi/bundle',
    ]);
  });

  it.each([
    ['installed', '/etc/pifleet', undefined, '/var/lib/pifleet'],
    ['used in place', '/home/pi/bundle', '/home/pi/bundle', '/home/pi/bundle'],
  ])('the self-update unit of a bundle %s keeps releases beside the outbox', (_, installDir, outboxDir, stateDir) => {
    const lines = renderBundleUnit(installDir, outboxDir, true).split('\n');
    expect(lines).toContain(
      `ExecStartPre=-/usr/bin/env node /opt/pifleet/dist/update/boot-guard.js --state-dir ${stateDir} --factory-dir /opt/pifleet`,
    );
    expect(lines).toContain(
      `ExecStart=/usr/bin/env node ${stateDir}/current/bin/pifleet-agent.js run --config ${installDir}/agent.json`,
    );
    expect(lines).toContain(`ReadWritePaths=${stateDir}`);
    expect(lines.some((l) => l.startsWith('RestartPreventExitStatus='))).toBe(false);
    expect(renderBundleUnit(installDir, outboxDir)).not.toContain('boot-guard');
  });

  it('certificate id is the SHA-256 of the DER', () => {
    const der = new X509Certificate(AMAZON_ROOT_CA_1_PEM).raw;
    expect(certificateIdOf(AMAZON_ROOT_CA_1_PEM)).toBe(createHash('sha256').update(der).digest('hex'));
    expect(certificateIdOf('not a pem')).toBeUndefined();
  });

  it.each([
    ['abc.iot.amazonaws.com', { host: 'abc.iot.amazonaws.com', port: 8883 }],
    ['127.0.0.1:18883', { host: '127.0.0.1', port: 18883 }],
    ['localhost', { host: 'localhost', port: 8883 }],
  ])('splitEndpoint(%s)', (address, expected) => {
    expect(splitEndpoint(address)).toEqual(expected);
  });

  it('reads region, account and certificate id from ARNs', () => {
    const arn = 'arn:aws:iot:eu-west-1:123456789012:cert/abcdef';
    expect(parseIotArn(arn)).toEqual({ region: 'eu-west-1', accountId: '123456789012', resource: 'cert/abcdef' });
    expect(certificateIdFromArn(arn)).toBe('abcdef');
    expect(certificateIdFromArn('arn:aws:iot:eu-west-1:123456789012:thing/x')).toBeUndefined();
    expect(parseIotArn('nope')).toBeUndefined();
  });
});
