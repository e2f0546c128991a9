/**
 * A deleted job disappears everywhere: the server sends `job_deleted` on the events websocket, so
 * the sidebar and the jobs table of every open page drop the row, and an open job view says the
 * job was deleted, whoever deleted it (another page, `swm rm`, the REST API).
 */
import { expect, Page, test } from '@playwright/test';

import { api } from '../server';
import { openLab, row, server, submitJobs, waitJob } from '../helpers';

async function openTable(page: Page): Promise<void> {
  await page.locator('#swm-sidebar .swm-OpenTable').click();
  await expect(page.locator('.swm-JobsTable')).toBeVisible();
}

function tableRow(page: Page, name: string) {
  return page.locator('.swm-JobsTable .swm-TableRow', { hasText: name }).first();
}

test('a job deleted through the REST API leaves the sidebar, the table and the job view of every page', async ({
  context
}) => {
  const [job, other] = await submitJobs([
    { name: 'gone-by-rest', command: ['true'] },
    { name: 'stays-by-rest', command: ['true'] }
  ]);
  await waitJob(job.id, ['finished']);
  await waitJob(other.id, ['finished']);
  const first = await context.newPage();
  const second = await context.newPage();
  await openLab(first);
  await openLab(second);
  await row(first, 'gone-by-rest').locator('.swm-JobRow-name').click();
  const view = first.locator('.swm-JobView').filter({ hasText: 'gone-by-rest' });
  await expect(view.locator('.swm-JobView-title')).toHaveText('gone-by-rest');
  await openTable(second);
  await expect(tableRow(second, 'gone-by-rest')).toBeVisible();
  await expect(row(second, 'gone-by-rest')).toBeVisible();

  await api(server(), `jobs/${job.id}?purge=1`, { method: 'DELETE' });

  await expect(row(first, 'gone-by-rest')).toHaveCount(0);
  await expect(row(second, 'gone-by-rest')).toHaveCount(0);
  await expect(tableRow(second, 'gone-by-rest')).toHaveCount(0);
  await expect(view).toHaveAttribute('data-deleted', 'true');
  await expect(view.locator('.swm-JobView-deleted')).toContainText('was deleted');
  for (const button of await view.locator('.swm-JobView-actions button').all()) {
    await expect(button).toBeDisabled();
  }
  // Nothing else went.
  await expect(row(first, 'stays-by-rest')).toBeVisible();
  await expect(tableRow(second, 'stays-by-rest')).toBeVisible();
});

test('a job deleted in one page leaves the other page', async ({ context }) => {
  const [job] = await submitJobs([{ name: 'gone-by-page', command: ['true'] }]);
  await waitJob(job.id, ['finished']);
  const deleter = await context.newPage();
  const watcher = await context.newPage();
  await openLab(deleter);
  await openLab(watcher);
  await expect(row(watcher, 'gone-by-page')).toBeVisible();
  await row(deleter, 'gone-by-page').locator('.swm-JobRow-name').click();
  const view = deleter.locator('.swm-JobView').filter({ hasText: 'gone-by-page' });
  await view.locator('.swm-DeleteJob').click();
  await deleter.locator('.jp-Dialog .jp-Dialog-button.jp-mod-accept').click();
  await expect(view).toHaveCount(0);
  await expect(row(deleter, 'gone-by-page')).toHaveCount(0);
  await expect(row(watcher, 'gone-by-page')).toHaveCount(0);
});
