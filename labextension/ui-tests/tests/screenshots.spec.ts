/**
 * The pictures of the README and docs/sidebar.md: the jobs table with a realistic mix of jobs
 * (running, failed, finished, held, canceled, an array), in the light and the dark theme.
 * Run alone for clean pictures: `npx playwright test ... screenshots.spec.ts`.
 */
import { expect, test } from '@playwright/test';
import * as path from 'path';

import { bulk, openLab, runCommand, submitJobs, waitJob } from '../helpers';

const IMG = path.resolve(__dirname, '..', '..', '..', 'docs', 'img');

test('the jobs table with a realistic mix, light and dark', async ({ page }) => {
  const done = await submitJobs([
    { name: 'fetch-dataset', command: ['bash', '-c', 'echo fetched'] },
    { name: 'preprocess', command: ['bash', '-c', 'sleep 1; echo ok'] },
    { name: 'train-baseline', command: ['bash', '-c', 'sleep 2'] },
    { name: 'train-bad-lr', command: ['bash', '-c', 'echo diverged >&2; exit 3'] },
    { name: 'eval-typo', command: ['bash', '-c', 'exit 127'] }
  ]);
  const old = await submitJobs([{ name: 'old-sweep', command: ['sleep', '300'] }]);
  for (const j of done) {
    await waitJob(j.id, ['finished', 'error']);
  }
  await waitJob(old[0].id, ['running']);
  await bulk('cancel', { name: 'old-sweep' });
  const [resnet] = await submitJobs([{ name: 'train-resnet50', command: ['sleep', '300'] }]);
  await waitJob(resnet.id, ['running']);
  await submitJobs([
    { name: 'train-vit', command: ['sleep', '300'], resources: { cpus: 1 } },
    { name: 'sweep-lr', command: ['sleep', '300'], array: '1-8' },
    { name: 'report', command: ['true'], hold: true },
    { name: 'nightly-backup', command: ['true'], hold: true }
  ]);
  await openLab(page);
  await page.locator('#swm-sidebar .swm-OpenTable').click();
  const table = page.locator('.swm-JobsTable');
  await expect(table.locator('.swm-TableRow', { hasText: 'train-vit' })).toHaveAttribute(
    'data-state',
    /running|queued|waiting/
  );
  await expect(table.locator('.swm-TableRow', { hasText: 'train-resnet50' })).toHaveAttribute(
    'data-state',
    'running',
    { timeout: 30000 }
  );
  // Let the elapsed times move on a little.
  await page.waitForTimeout(2500);
  await page.screenshot({ path: path.join(IMG, 'jobs-table-light.png') });
  await runCommand(page, 'apputils:change-theme', { theme: 'JupyterLab Dark' });
  try {
    await expect(page.locator('body')).toHaveAttribute('data-jp-theme-light', 'false');
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(IMG, 'jobs-table-dark.png') });
  } finally {
    await runCommand(page, 'apputils:change-theme', { theme: 'JupyterLab Light' });
    await bulk('cancel', { name: 'sweep-lr' });
    await bulk('cancel', { name: 'train-' });
    await bulk('cancel', { state: 'held', name: 'report' });
    await bulk('cancel', { state: 'held', name: 'nightly-backup' });
  }
});
