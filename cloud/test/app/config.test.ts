import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  LOCAL_CORE_DEFAULT_WS_PORT,
  LOCAL_CORE_DEFAULTS,
  LOCAL_CORE_USAGE,
  loadLocalCoreConfig,
  UsageError,
} from '../../src/config/local-core.js';

describe('loadLocalCoreConfig', () => {
  it('uses the documented defaults', () => {
    expect(loadLocalCoreConfig([])).toEqual({
      help: false,
      version: false,
      config: { ...LOCAL_CORE_DEFAULTS, wsPort: LOCAL_CORE_DEFAULT_WS_PORT },
    });
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

  it('takes the persistent session expiry from --persistent-session-expiry over PIFLEET_PERSISTENT_SESSION_EXPIRY over 1 h', () => {
    const expiry = (argv: string[], env: Record<string, string> = {}) => {
      const result = loadLocalCoreConfig(argv, env);
      if (result.help || result.version) throw new Error('unexpected help or version');
      return result.config.persistentSessionExpirySeconds;
    };
    expect(LOCAL_CORE_DEFAULTS.persistentSessionExpirySeconds).toBe(3_600);
    expect(expiry([])).toBe(3_600);
    expect(expiry([], { PIFLEET_PERSISTENT_SESSION_EXPIRY: '' })).toBe(3_600);
    expect(expiry([], { PIFLEET_PERSISTENT_SESSION_EXPIRY: '604800' })).toBe(604_800);
    expect(expiry(['--persistent-session-expiry', '1'], { PIFLEET_PERSISTENT_SESSION_EXPIRY: '604800' })).toBe(1);
    expect(expiry(['--persistent-session-expiry=0120'])).toBe(120);
  });

  it.each([
    ['zero', '0'],
    ['more than 7 days', '604801'],
    ['negative', '-5'],
    ['a fraction', '1.5'],
    ['a unit', '1h'],
    ['not a number', 'forever'],
    ['exponent notation', '1e3'],
    ['far too many digits', '00000000000000000060'],
  ])('refuses a persistent session expiry that is %s with one problem naming the flag', (_label, raw) => {
    for (const [argv, env] of [
      // `=`: parseArgs would read a separate '-5' as a flag (a usage error, as for every flag).
      [[`--persistent-session-expiry=${raw}`], {}],
      [[], { PIFLEET_PERSISTENT_SESSION_EXPIRY: raw }],
    ] as const) {
      let error: unknown;
      try {
        loadLocalCoreConfig(argv, env);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect(error).not.toBeInstanceOf(UsageError);
      expect((error as ConfigError).problems).toEqual([
        `--persistent-session-expiry: '${raw}' is not a number of seconds from 1 to 604800 (7 days, IoT Core's maximum)`,
      ]);
    }
  });

  it('lists --persistent-session-expiry and its variable in the usage', () => {
    expect(LOCAL_CORE_USAGE).toMatch(
      /--persistent-session-expiry SECONDS[\s\S]*1-604800[\s\S]*\[3600\]\s+env PIFLEET_PERSISTENT_SESSION_EXPIRY/,
    );
  });

  it('refuses the same port for MQTT and HTTP', () => {
    expect(() => loadLocalCoreConfig(['--mqtt-port', '9000', '--http-port', '9000'])).toThrow(/must differ/);
  });
});

describe('loadLocalCoreConfig: MQTT over WebSocket', () => {
  const config = (argv: string[], env: Record<string, string> = {}) => {
    const result = loadLocalCoreConfig(argv, env);
    if (result.help || result.version) throw new Error('unexpected help or version');
    return result.config;
  };

  it('listens on 8443 with the operator policy unless --ws-port/--ws-policy or their variables say otherwise', () => {
    expect(config([])).toMatchObject({ wsPort: 8443, wsPolicyFile: '' });
    expect(config([], { PIFLEET_WS_PORT: '9443', PIFLEET_WS_POLICY: '/etc/ops.json' })).toMatchObject({
      wsPort: 9443,
      wsPolicyFile: '/etc/ops.json',
    });
    expect(config(['--ws-port', '0', '--ws-policy', 'p.json'], { PIFLEET_WS_PORT: '9443' })).toMatchObject({
      wsPort: 0,
      wsPolicyFile: 'p.json',
    });
    // A core composed in code without a port takes an ephemeral one (suites start cores side by side).
    expect(LOCAL_CORE_DEFAULTS).not.toHaveProperty('wsPort');
    expect(LOCAL_CORE_USAGE).toMatch(/--ws-port PORT[\s\S]*\[8443\]\s+env PIFLEET_WS_PORT/);
    expect(LOCAL_CORE_USAGE).toMatch(/--ws-policy FILE[\s\S]*env PIFLEET_WS_POLICY/);
  });

  it('reports a bad port and a port shared with another listener, all at once', () => {
    expect(() => config(['--ws-port', '65536'])).toThrow("--ws-port: '65536' is not a port number (0-65535)");
    try {
      config(['--mqtt-port', '9000', '--http-port', '9001', '--ws-port', '9000']);
      expect.unreachable();
    } catch (err) {
      expect((err as ConfigError).problems).toEqual(['--ws-port and --mqtt-port must differ']);
    }
    expect(() => config(['--http-port', '9443', '--ws-port', '9443'])).toThrow('--ws-port and --http-port must differ');
    // Ephemeral ports never clash.
    expect(config(['--mqtt-port', '0', '--http-port', '0', '--ws-port', '0'])).toMatchObject({ wsPort: 0 });
  });
});

describe('loadLocalCoreConfig: limits', () => {
  it("enforces IoT Core's quotas unless told --limits off, from flag or PIFLEET_LIMITS", () => {
    const config = (argv: string[], env: Record<string, string> = {}) => {
      const result = loadLocalCoreConfig(argv, env);
      if (result.help || result.version) throw new Error('unexpected help or version');
      return result.config;
    };
    expect(config([])).toMatchObject({ limits: 'aws', limitsFile: '' });
    expect(config(['--limits', 'off'])).toMatchObject({ limits: 'off' });
    expect(config([], { PIFLEET_LIMITS: 'off', PIFLEET_LIMITS_FILE: '/etc/q.json' })).toMatchObject({
      limits: 'off',
      limitsFile: '/etc/q.json',
    });
    expect(config(['--limits', 'aws', '--limits-file', 'q.json'], { PIFLEET_LIMITS: 'off' })).toMatchObject({
      limits: 'aws',
      limitsFile: 'q.json',
    });
  });

  it('refuses an unknown mode with the choices', () => {
    expect(() => loadLocalCoreConfig(['--limits', 'none'])).toThrow("--limits: 'none' is not one of aws, off");
    expect(LOCAL_CORE_USAGE).toContain('--limits aws|off');
    expect(LOCAL_CORE_USAGE).toContain('PIFLEET_LIMITS_FILE');
  });
});

describe('--hooks', () => {
  const hooksOf = (argv: string[], env: Record<string, string> = {}) => {
    const result = loadLocalCoreConfig(argv, env);
    if (result.help || result.version) throw new Error('unexpected help or version');
    return result.config.hooks;
  };

  it('takes NAME=FILE pairs from the flag or PIFLEET_HOOKS, the flag first', () => {
    expect(hooksOf([])).toBe('');
    expect(hooksOf([], { PIFLEET_HOOKS: 'a=./a.mjs' })).toBe('a=./a.mjs');
    expect(hooksOf(['--hooks', 'serials=hooks/serials.mjs,b_2=/x/b.mjs'], { PIFLEET_HOOKS: 'a=./a.mjs' })).toBe(
      'serials=hooks/serials.mjs,b_2=/x/b.mjs',
    );
    expect(LOCAL_CORE_USAGE).toContain('--hooks NAME=FILE');
  });

  it.each([
    ['serials', /no module file/],
    ['a=', /no module file/],
    ['a b=x.mjs', /not a Lambda function name/],
    [`${'f'.repeat(65)}=x.mjs`, /not a Lambda function name/],
    ['a=x.mjs,a=y.mjs', /named twice/],
  ])('refuses %s with the reason', (spec, reason) => {
    expect(() => loadLocalCoreConfig(['--hooks', spec])).toThrow(ConfigError);
    expect(() => loadLocalCoreConfig(['--hooks', spec])).toThrow(reason);
  });
});
