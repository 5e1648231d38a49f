import { describe, expect, it } from 'vitest';
import { ConfigError, LOCAL_CORE_DEFAULTS, loadLocalCoreConfig, UsageError } from '../../src/config/local-core.js';

describe('loadLocalCoreConfig', () => {
  it('uses the documented defaults', () => {
    expect(loadLocalCoreConfig([])).toEqual({ help: false, version: false, config: LOCAL_CORE_DEFAULTS });
    expect(LOCAL_CORE_DEFAULTS).toMatchObject({
      host: '127.0.0.1',
      mqttPort: 8883,
      httpPort: 8880,
      region: 'us-east-1',
    });
  });

  it('lets flags override the environment, which overrides defaults, and freezes the result', () => {
    const result = loadLocalCoreConfig(['--mqtt-port', '0', '--region', 'eu-west-1'], {
      PIFLEET_MQTT_PORT: '1883',
      PIFLEET_HTTP_PORT: '9000',
      PIFLEET_DATA_DIR: '/var/lib/pifleet',
    });
    if (result.help || result.version) throw new Error('unexpected help or version');
    expect(result.config).toMatchObject({
      mqttPort: 0,
      httpPort: 9000,
      dataDir: '/var/lib/pifleet',
      region: 'eu-west-1',
    });
    expect(Object.isFrozen(result.config)).toBe(true);
  });

  it('reports every problem at once', () => {
    let error: unknown;
    try {
      loadLocalCoreConfig(['--mqtt-port', '70000', '--http-port', 'x', '--region', 'mars', '--account-id', '12']);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toHaveLength(4);
  });

  it.each([
    ['an unknown flag', ['--nope']],
    ['a positional argument', ['extra']],
    ['a flag without its value', ['--host']],
  ])('treats %s as a usage error', (_label, argv) => {
    expect(() => loadLocalCoreConfig(argv)).toThrow(UsageError);
  });

  it('asks for help with -h', () => {
    expect(loadLocalCoreConfig(['-h'])).toEqual({ help: true });
  });

  it('asks for the version with --version, whatever else is given', () => {
    expect(loadLocalCoreConfig(['--version'])).toEqual({ help: false, version: true });
    expect(loadLocalCoreConfig(['--mqtt-port', 'not-a-port', '--version'])).toEqual({ help: false, version: true });
  });

  it('refuses the same port for MQTT and HTTP', () => {
    expect(() => loadLocalCoreConfig(['--mqtt-port', '9000', '--http-port', '9000'])).toThrow(/must differ/);
  });
});
