/**
 * Playwright drives Debian's Chromium (never a downloaded browser) against a real `jupyter lab`
 * that global-setup.ts starts with the swm_jupyter server extension and its local site.
 */
import { defineConfig } from '@playwright/test';
import { CHROMIUM, CHROMIUM_ARGS } from './server';

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results/artifacts',
  timeout: 120000,
  expect: { timeout: 30000 },
  workers: 1,
  fullyParallel: false,
  // One retry: a test that passes only on its retry is reported as flaky in the summary (and
  // looked into), a test that fails twice fails the run.
  retries: 1,
  reporter: [['list']],
  globalSetup: require.resolve('./global-setup'),
  globalTeardown: require.resolve('./global-teardown'),
  use: {
    viewport: { width: 1400, height: 860 },
    trace: 'off',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: CHROMIUM,
      // Playwright itself starts Chromium with a fresh empty --user-data-dir in a temporary
      // folder (and refuses the flag in `args`), so every run gets an empty profile.
      args: CHROMIUM_ARGS
    }
  }
});
