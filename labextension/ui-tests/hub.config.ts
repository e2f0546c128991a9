/**
 * The UI tests against a real JupyterHub (hub-setup.ts starts it with tests/hub_ui.py: the example
 * hub, real OS users logging in through PAM, the real spawner, the swm service, the proxy from the
 * Python environment). Debian's Chromium, as playwright.config.ts. Needs root, like the hub.
 */
import { defineConfig } from '@playwright/test';
import { CHROMIUM, CHROMIUM_ARGS } from './server';

export default defineConfig({
  testDir: './hub-tests',
  outputDir: './test-results/hub-artifacts',
  timeout: 120000,
  expect: { timeout: 30000 },
  workers: 1,
  fullyParallel: false,
  retries: 1, // as playwright.config.ts: a test that passes on its retry is reported as flaky
  reporter: [['list']],
  globalSetup: require.resolve('./hub-setup'),
  globalTeardown: require.resolve('./hub-teardown'),
  use: {
    viewport: { width: 1400, height: 860 },
    trace: 'off',
    screenshot: 'only-on-failure',
    launchOptions: { executablePath: CHROMIUM, args: CHROMIUM_ARGS }
  }
});
