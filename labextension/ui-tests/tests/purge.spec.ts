/**
 * What needs the server's `DELETE /jobs/{id}?purge=1` and `GET /jobs?state=failed`: deleting an
 * ended job from its view (confirmed), and the table's failed filter.
 */
import { expect, test } from '@playwright/test';

import { openLab, row, submitJobs, waitJob } from '../helpers';
import { api } from '../server';
import { server } from '../helpers';

test("Delete removes an ended job's record and folder, after asking", async ({ page }) => {
  const [job] = await submitJobs([{ name: 'to-delete', command: ['bash', '-c', 'echo bye'] }]);
  await waitJob(job.id, ['finished']);
  await openLab(page);
  await row(page, 'to-delete').locator('.swm-JobRow-name').click();
  const view = page.locator('.swm-JobView').filter({ hasText: 'to-delete' });
  await view.locator('.swm-DeleteJob').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('deleted for good');
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
  await expect(view).toBeVisible();
  await view.locator('.swm-DeleteJob').click();
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(view).toHaveCount(0);
  await expect(row(page, 'to-delete')).toHaveCount(0);
  await expect(api(server(), `jobs/${job.id}`)).rejects.toThrow(/404/);
});

test('the table shows failed jobs with the failed filter, answered by the server', async ({
  page
}) => {
  const [bad] = await submitJobs([{ name: 'table-fails', command: ['bash', '-c', 'exit 4'] }]);
  await waitJob(bad.id, ['finished']);
  await openLab(page);
  await page.locator('#swm-sidebar .swm-OpenTable').click();
  const table = page.locator('.swm-JobsTable');
  await table.locator('.swm-TableState').selectOption('failed');
  await expect(table.locator('.swm-TableRow', { hasText: 'table-fails' }).first()).toBeVisible();
  // The newest job is on the unfiltered first page too: wait for the filtered page.
  await expect
    .poll(async () =>
      table
        .locator('.swm-TableRow')
        .evaluateAll(rows => [...new Set(rows.map(r => (r as HTMLElement).dataset.failed))])
    )
    .toEqual(['true']);
});
