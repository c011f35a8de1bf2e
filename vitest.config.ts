import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests spawn proxies and measure RSS; running files in parallel on a
    // 2-core machine makes them starve each other.
    fileParallelism: false,
    pool: 'forks',
    reporters: ['default', './test/summary-reporter.ts'],
    // Filter modules load lazily (src/config/preload.ts); in-process tests parse config directly.
    setupFiles: ['./test/setup/extensions.ts'],
  },
});
