/**
 * The job view: search in the log, wrap, download, the spec as a table, a job's file shown
 * without copying it into the notebook folder, and open job tabs restored after a reload.
 */
import { expect, test } from '@playwright/test';
import * as fs from 'fs';

import { openLab, row, submitJobs, TOKEN, URL, waitJob } from '../helpers';

test('log search, wrap, download and the spec table', async ({ page }) => {
  const long = 'x'.repeat(400);
  const [job] = await submitJobs([
    {
      name: 'view-log',
      script: `#!/bin/bash\n#SWM walltime 00:05:00\nfor i in $(seq 1 30); do echo "line $i"; done\necho needle-1\necho ${long}\necho needle-2\necho result > out.txt\n`,
      resources: { cpus: 1 }
    }
  ]);
  await waitJob(job.id, ['finished']);
  await openLab(page);
  await row(page, 'view-log').locator('.swm-JobRow-name').click();
  const view = page.locator('.swm-JobView').filter({ hasText: 'view-log' });
  const log = view.locator('.swm-LogText');
  await expect(log).toContainText('needle-2');

  await view.locator('.swm-LogSearch').fill('NEEDLE');
  await expect(view.locator('.swm-LogSearchInfo')).toHaveText('1 of 2');
  await expect(log.locator('mark')).toHaveCount(2);
  await expect(log.locator('mark.swm-mod-current')).toHaveText('needle');
  await view.locator('.swm-LogSearch').press('Enter');
  await expect(view.locator('.swm-LogSearchInfo')).toHaveText('2 of 2');
  await view.locator('.swm-LogSearch').fill('nothing like it');
  await expect(view.locator('.swm-LogSearchInfo')).toHaveText('no match');
  await view.locator('.swm-LogSearch').fill('');

  const width = () => log.evaluate(p => p.scrollWidth > p.clientWidth + 1);
  // Long lines wrap until "wrap" is unticked.
  expect(await width()).toBe(false);
  await view.locator('.swm-WrapCheck').uncheck();
  await expect.poll(width).toBe(true);

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    view.locator('.swm-LogDownload').click()
  ]);
  const saved = fs.readFileSync(await download.path(), 'utf8');
  expect(saved).toContain('line 1\n');
  expect(saved).toContain('needle-2\n');
  expect(download.suggestedFilename()).toMatch(/^view-log-.*\.stdout\.log$/);

  const spec = view.locator('.swm-SpecTable');
  await expect(spec.locator('tr[data-key="name"] td')).toHaveText('view-log');
  await expect(spec.locator('tr[data-key="resources.cpus"] td')).toHaveText('1');
  await expect(spec.locator('tr[data-key="resources.walltime"] td')).toContainText('5m');
  await expect(spec.locator('tr[data-key="script"] pre')).toContainText('needle-1');
  await expect(view.locator('.swm-Spec')).not.toContainText('{');
});

test("a job's file is shown without a copy in the notebook folder; tabs come back after a reload", async ({
  page
}) => {
  await openLab(page);
  await row(page, 'view-log').locator('.swm-JobRow-name').click();
  const view = page.locator('.swm-JobView').filter({ hasText: 'view-log' });
  await view.locator('.swm-File a[data-path="out.txt"]').click();
  const file = page.locator('.swm-FileView').filter({ hasText: 'out.txt' });
  await expect(file.locator('.swm-FileView-text')).toHaveText('result\n');
  const listing = await fetch(`${URL()}/api/contents/swm-outputs?token=${TOKEN()}`);
  expect(listing.status).toBe(404);

  // The open job view is restored when the page loads again (same workspace, not reset).
  await page.waitForTimeout(1500);
  const workspace = page.url().split('?')[0];
  await page.goto(`${workspace}?token=${TOKEN()}`);
  await page.waitForSelector('#jp-main-dock-panel', { timeout: 60000 });
  await expect(page.locator('.swm-JobView').filter({ hasText: 'view-log' })).toHaveCount(1, {
    timeout: 30000
  });
});
