import { defineConfig } from 'vitest/config';

const packages = ['protocol', 'device-agent', 'simulator', 'cloud', 'provisioning', 'test', 'testkit'];

export default defineConfig({
  resolve: { conditions: ['@pifleet/source'] },
  ssr: { resolve: { conditions: ['@pifleet/source'] } },
  test: {
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
