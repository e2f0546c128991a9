/** Playwright config of the sidebar benchmark (benchmarks/bench_sidebar.ts). */
import { defineConfig } from '@playwright/test';

import base from './playwright.config';

export default defineConfig({
  ...base,
  testDir: '../../benchmarks',
  testMatch: 'bench_sidebar.ts',
  timeout: 600000,
  outputDir: './test-results/bench'
});
