/** Playwright config of the browser benchmarks (benchmarks/bench_sidebar.ts, bench_table.ts). */
import { defineConfig } from '@playwright/test';

import base from './playwright.config';

export default defineConfig({
  ...base,
  testDir: '../../benchmarks',
  testMatch: /bench_(sidebar|table)\.ts$/,
  timeout: 1800000,
  outputDir: './test-results/bench'
});
