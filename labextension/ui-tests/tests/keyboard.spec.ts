/**
 * The job list with the keyboard, its right-click menu (JupyterLab's context-menu registry), the
 * commands in the palette, a keyboard shortcut, and the settings (time format, table columns).
 */
import { expect, Page, test } from '@playwright/test';

import { bulk, openLab, putSettings, row, submitJobs, waitJob } from '../helpers';

let ids: string[] = [];

test.beforeAll(async () => {
  const jobs = await submitJobs(
    Array.from({ length: 20 }, (_, i) => ({
      name: `k-${String(i).padStart(2, '0')}`,
      command: ['true'],
      hold: true
    }))
  );
  ids = jobs.map(j => j.id);
});

test.afterAll(async () => {
  await bulk('cancel', { name: 'k-', state: 'held' });
  await putSettings({});
});

async function showOnly(page: Page, text: string): Promise<void> {
  await page.locator('#swm-sidebar .swm-Search').fill(text);
  await expect(row(page, 'k-19')).toBeVisible();
}

const selection = (page: Page) => page.locator('#swm-sidebar .swm-Selection');

test('arrows move, Space ticks, Shift extends, Enter opens, Escape clears', async ({ page }) => {
  await openLab(page);
  await showOnly(page, 'k-');
  const list = page.locator('#swm-sidebar .swm-JobList');
  await list.focus();
  await page.keyboard.press('ArrowDown');
  await expect(row(page, 'k-19')).toHaveClass(/swm-mod-focused/);
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Space');
  await expect(selection(page)).toHaveText('1 selected');
  await expect(row(page, 'k-18')).toHaveAttribute('aria-selected', 'true');
  await page.keyboard.press('Shift+ArrowDown');
  await page.keyboard.press('Shift+ArrowDown');
  await expect(selection(page)).toHaveText('3 selected');
  await page.keyboard.press('Enter');
  await expect(page.locator('.swm-JobView').filter({ hasText: 'k-16' })).toBeVisible();
  await list.focus();
  await page.keyboard.press('Escape');
  await expect(selection(page)).toHaveText('');
  // Delete cancels the job the keyboard is on (one job: no question).
  await page.keyboard.press('Delete');
  await waitJob(ids[16], ['canceled']);
  await expect(row(page, 'k-16')).toHaveAttribute('data-state', 'canceled');
});

test('the right-click menu acts on the job under the mouse', async ({ page }) => {
  await openLab(page);
  await showOnly(page, 'k-');
  await row(page, 'k-15').click({ button: 'right' });
  const menu = page.locator('.lm-Menu');
  await expect(menu.getByText('Open job')).toBeVisible();
  await expect(selection(page)).toHaveText('1 selected');
  await menu.getByText('Hold 1 selected job').waitFor();
  await menu.getByText('Cancel 1 selected job').click();
  await waitJob(ids[15], ['canceled']);
  await expect(row(page, 'k-15')).toHaveAttribute('data-state', 'canceled');
  await expect(row(page, 'k-14')).toHaveAttribute('data-state', 'held');
});

test('the palette opens a job by id and refreshes; a shortcut opens the table', async ({
  page
}) => {
  await openLab(page);
  await page.keyboard.press('Control+Shift+C');
  const palette = page.locator('#command-palette');
  await palette.locator('input').fill('Sky Port');
  for (const label of [
    'Open Sky Port job by id…',
    'Refresh Sky Port jobs',
    'Cancel selected jobs',
    'Open Sky Port jobs table'
  ]) {
    await expect(palette.locator('.lm-CommandPalette-item', { hasText: label })).toHaveCount(1);
  }
  await palette.locator('.lm-CommandPalette-item', { hasText: 'Open Sky Port job by id…' }).click();
  const dialog = page.locator('.jp-Dialog');
  await dialog.locator('input').fill(ids[3].slice(0, 8));
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(page.locator('.swm-JobView').filter({ hasText: 'k-03' })).toBeVisible();
  await page.locator('#swm-sidebar .swm-JobsPanel').click({ position: { x: 5, y: 5 } });
  await page.keyboard.press('Control+Alt+Shift+J');
  await expect(page.locator('.swm-JobsTable')).toBeVisible();
});

test('settings: ISO times in the list, the columns of the table', async ({ page }) => {
  await putSettings({ timeFormat: 'iso', tableColumns: ['name', 'state', 'exit'] });
  await openLab(page);
  await showOnly(page, 'k-');
  await expect(row(page, 'k-19').locator('.swm-JobRow-time')).toHaveText(
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/
  );
  await page.locator('#swm-sidebar .swm-OpenTable').click();
  const table = page.locator('.swm-JobsTable');
  // The setting's order is the columns' order.
  await expect(table.locator('th .swm-TableHeader-label')).toHaveText(['Name', 'State', 'Exit']);
});
