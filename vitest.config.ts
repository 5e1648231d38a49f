import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';
import LongestFirstSequencer from './vitest.sequencer.js';

const packages = ['protocol', 'device-agent', 'simulator', 'cloud', 'provisioning', 'test', 'testkit'];

export default defineConfig({
  resolve: { conditions: ['@pifleet/source'] },
  ssr: { resolve: { conditions: ['@pifleet/source'] } },
  test: {
    // Vitest's default is one worker fewer than the cores: one worker on a 2-core machine, where
    // the suite then ran file after file for 24 minutes. Most of its time is spent waiting (agent
    // and core processes starting, reconnect backoffs, TLS handshakes, timers), so two files at a
    // time on 2 cores took 14 minutes, with every file passing. `--maxWorkers` still overrides.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    sequence: { sequencer: LongestFirstSequencer },
    reporters: ['default', './vitest.summary.ts'],
    projects: packages.map((name) => ({
      extends: true,
      test: {
        name,
        root: `./${name}`,
        include: ['test/**/*.test.ts', 'e2e/**/*.test.ts'],
        testTimeout: 30_000,
        hookTimeout: 60_000,
      },
    })),
  },
});
