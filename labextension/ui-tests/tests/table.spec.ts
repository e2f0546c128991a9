/**
 * The jobs table in the main area, over 320 jobs: column headers, sorting and filtering done by
 * the server, pages, resizing a column, opening a job, and actions on a selection.
 */
import { expect, Page, test } from '@playwright/test';

import { bulk, openLab, server, submitJobs, waitJob } from '../helpers';
import { api } from '../server';

const N = 320;

test.beforeAll(async () => {
  const specs = Array.from({ length: N }, (_, i) => ({
    // Names whose order is not the submission order: t-a… t-z… interleaved.
    name: `t-${String.fromCharCode(97 + ((i * 7) % 26))}-${String(i).padStart(3, '0')}`,
    command: ['true'],
    hold: true
  }));
  await submitJobs(specs);
  const [failed] = await submitJobs([{ name: 't-exit-five', command: ['bash', '-c', 'exit 5'] }]);
  await waitJob(failed.id, ['finished', 'error']);
});

test.afterAll(async () => {
  await bulk('cancel', { name: 't-', state: 'held' });
});

async function openTable(page: Page) {
  await openLab(page);
  await page.locator('#swm-sidebar .swm-OpenTable').click();
  const table = page.locator('.swm-JobsTable');
  await expect(table).toBeVisible();
  await expect(table).not.toHaveAttribute('data-loading', 'true');
  return table;
}

function names(table: ReturnType<Page['locator']>) {
  return table.locator('.swm-TableRow .swm-TableCell-name').allTextContents();
}

test('the table shows pages of 50 with headers, sorted and filtered by the server', async ({
  page
}) => {
  const table = await openTable(page);
  const headers = await table.locator('th .swm-TableHeader-label').allTextContents();
  expect(headers).toEqual(['State', 'Name', 'Site', 'Submitted', 'Elapsed / duration', 'Exit']);
  await expect(table.locator('.swm-TableRow')).toHaveCount(50);
  const total = Number(await table.getAttribute('data-total'));
  expect(total).toBeGreaterThan(N);
  await expect(table.locator('.swm-TableRange')).toHaveText(
    `1–50 of ${total.toLocaleString('en-US')}`
  );
  // Newest first by default.
  await expect(table.locator('th[data-column="submitted"]')).toHaveAttribute(
    'aria-sort',
    'descending'
  );
  expect((await names(table))[0]).toBe('t-exit-five');

  // Sort by name: the first page is the alphabetically first names of all (here: t-) jobs, not
  // of a page.
  await table.locator('.swm-TableSearch').fill('t-');
  await expect.poll(async () => (await names(table)).every(n => n.includes('t-'))).toBe(true);
  await table.locator('th[data-column="name"] .swm-TableHeader-label').click();
  await expect(table.locator('th[data-column="name"]')).toHaveAttribute('aria-sort', 'ascending');
  const serverFirst = await api<{ jobs: { name: string }[] }>(
    server(),
    'jobs?name=t-&sort=name&top_level=true&limit=1'
  );
  await expect.poll(async () => (await names(table))[0]).toBe(serverFirst.jobs[0].name);
  const asc = await names(table);
  expect(asc).toEqual([...asc].sort());
  await table.locator('th[data-column="name"] .swm-TableHeader-label').click();
  await expect(table.locator('th[data-column="name"]')).toHaveAttribute('aria-sort', 'descending');
  await expect.poll(async () => (await names(table))[0]).not.toBe(serverFirst.jobs[0].name);
  const desc = await names(table);
  expect(desc).toEqual([...desc].sort().reverse());

  // Next page continues the order.
  await table.locator('.swm-TableNext').click();
  await expect(table.locator('.swm-TableRange')).toHaveText(/^51–100 of [\d,]+$/);
  const second = await names(table);
  expect(second[0] <= desc[desc.length - 1]).toBe(true);

  // Filters: the failed state and a name substring, answered by the server.
  await table.locator('.swm-TableState').selectOption('held');
  await table.locator('.swm-TableSearch').fill('t-q-');
  await expect.poll(async () => (await names(table)).length).toBeGreaterThan(0);
  await expect.poll(async () => (await names(table)).every(n => n.startsWith('t-q-'))).toBe(true);
  const states = await table
    .locator('.swm-TableRow')
    .evaluateAll(rows => rows.map(r => (r as HTMLElement).dataset.state));
  expect(new Set(states)).toEqual(new Set(['held']));
  await table.locator('.swm-TableSearch').fill('no such job');
  await expect(table.locator('.swm-JobsTable-message')).toContainText('No jobs match');
  await expect(table.locator('.swm-TableRow')).toHaveCount(0);
});

test('a column resizes by dragging its edge, and a click opens the job', async ({ page }) => {
  const table = await openTable(page);
  const th = table.locator('th[data-column="name"]');
  const before = (await th.boundingBox())?.width ?? 0;
  const grip = th.locator('.swm-TableHeader-resize');
  const box = await grip.boundingBox();
  if (!box) {
    throw new Error('no resize grip');
  }
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + 120, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await expect.poll(async () => (await th.boundingBox())?.width ?? 0).toBeGreaterThan(before + 80);
  // A failed job is red and says so.
  const failed = table.locator('.swm-TableRow', { hasText: 't-exit-five' });
  await expect(failed).toHaveAttribute('data-failed', 'true');
  await expect(failed.locator('.swm-TableCell-exit')).toHaveText('5');
  await failed.locator('.swm-TableCell-name').click();
  await expect(page.locator('.swm-JobView').filter({ hasText: 't-exit-five' })).toBeVisible();
});

test('actions on a selection of the table ask first and reach only the selected jobs', async ({
  page
}) => {
  const table = await openTable(page);
  await table.locator('.swm-TableState').selectOption('held');
  await table.locator('.swm-TableSearch').fill('t-');
  await expect.poll(async () => (await names(table)).length).toBe(50);
  const rows = table.locator('.swm-TableRow');
  const picked = [
    await rows.nth(0).getAttribute('data-job-id'),
    await rows.nth(2).getAttribute('data-job-id')
  ];
  await rows.nth(0).locator('.swm-TableRow-check').click();
  await rows.nth(2).click({ modifiers: ['Control'] });
  await expect(table.locator('.swm-Selection')).toHaveText('2 selected');
  await table.locator('.swm-ActionButton[data-action="cancel"]').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.locator('.swm-ConfirmList li')).toHaveCount(2);
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  for (const id of picked) {
    await waitJob(String(id), ['canceled']);
  }
  await expect
    .poll(async () =>
      (
        await table
          .locator('.swm-TableRow[data-job-id]')
          .evaluateAll(r => r.map(x => (x as HTMLElement).dataset.jobId))
      ).some(id => picked.includes(id ?? ''))
    )
    .toBe(false);
});

test('the table answers the keyboard: arrows, Shift, Space, Enter, PageDown', async ({ page }) => {
  const table = await openTable(page);
  await table.locator('.swm-TableState').selectOption('held');
  await table.locator('.swm-TableSearch').fill('t-');
  await expect.poll(async () => (await names(table)).length).toBe(50);
  const rows = table.locator('.swm-TableRow');
  await table.locator('.swm-JobsTable-scroller').focus();
  await page.keyboard.press('ArrowDown');
  await expect(rows.nth(0)).toHaveClass(/swm-mod-focused/);
  await page.keyboard.press('Space');
  await page.keyboard.press('Shift+ArrowDown');
  await page.keyboard.press('Shift+ArrowDown');
  await expect(table.locator('.swm-Selection')).toHaveText('3 selected');
  const third = await rows.nth(2).locator('.swm-TableCell-name').textContent();
  await page.keyboard.press('Enter');
  await expect(page.locator('.swm-JobView').filter({ hasText: third ?? '' })).toBeVisible();
  // Back to the table's tab (the job view opened in front of it).
  await page.locator('#jp-main-dock-panel .lm-TabBar-tab', { hasText: 'Sky Port jobs' }).click();
  await table.locator('.swm-JobsTable-scroller').focus();
  await page.keyboard.press('Space');
  await expect(table.locator('.swm-Selection')).toHaveText('2 selected');
  await page.keyboard.press('Escape');
  await expect(table.locator('.swm-Selection')).toHaveText('');
  await page.keyboard.press('PageDown');
  await expect(table.locator('.swm-TableRange')).toHaveText(/^51–100 of /);
});

test('a right-click on a row opens the menu of the selection commands, which act on the table', async ({
  page
}) => {
  const table = await openTable(page);
  await table.locator('.swm-TableState').selectOption('held');
  await table.locator('.swm-TableSearch').fill('t-');
  await expect.poll(async () => (await names(table)).length).toBe(50);
  const rows = table.locator('.swm-TableRow');
  const menu = page.locator('.lm-Menu');

  // A right-click on a row outside the selection selects that row only.
  await rows.nth(5).locator('.swm-TableRow-check').click();
  await rows.nth(1).click({ button: 'right' });
  await expect(menu).toBeVisible();
  const labels = await menu
    .locator('.lm-Menu-item[data-command^="swm:"] .lm-Menu-itemLabel')
    .allTextContents();
  expect(labels).toEqual([
    'Open job',
    'Cancel 1 selected job',
    'Hold 1 selected job',
    'Release 1 selected job',
    'Requeue 1 selected job',
    'Delete 1 selected job'
  ]);
  // A held job has not ended: it cannot be deleted.
  await expect(menu.locator('.lm-Menu-item[data-command="swm:delete-selected"]')).toHaveClass(
    /lm-mod-disabled/
  );
  await expect(table.locator('.swm-Selection')).toHaveText('1 selected');
  await expect(rows.nth(1)).toHaveAttribute('aria-selected', 'true');
  await expect(rows.nth(5)).toHaveAttribute('aria-selected', 'false');
  // Open job opens the right-clicked one.
  const name = await rows.nth(1).locator('.swm-TableCell-name').textContent();
  await menu.locator('.lm-Menu-item[data-command="swm:open-selected"]').click();
  await expect(page.locator('.swm-JobView').filter({ hasText: name ?? '' })).toBeVisible();
  await page.locator('#jp-main-dock-panel .lm-TabBar-tab', { hasText: 'Sky Port jobs' }).click();

  // A right-click inside a selection of two keeps it; Cancel asks, then cancels those two.
  await rows.nth(3).click({ modifiers: ['Control'] });
  await expect(table.locator('.swm-Selection')).toHaveText('2 selected');
  const picked = [
    await rows.nth(1).getAttribute('data-job-id'),
    await rows.nth(3).getAttribute('data-job-id')
  ];
  const firstName = (await rows.nth(1).locator('.swm-TableCell-name').textContent()) ?? '';
  await rows.nth(3).click({ button: 'right' });
  const cancel = menu.locator('.lm-Menu-item[data-command="swm:cancel-selected"]');
  await expect(cancel).toHaveText(/Cancel 2 selected jobs/);
  await cancel.click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.locator('.swm-ConfirmList li')).toHaveCount(2);
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  for (const id of picked) {
    await waitJob(String(id), ['canceled']);
  }
  await expect
    .poll(async () =>
      (
        await table
          .locator('.swm-TableRow[data-job-id]')
          .evaluateAll(r => r.map(x => (x as HTMLElement).dataset.jobId))
      ).some(id => picked.includes(id ?? ''))
    )
    .toBe(false);

  // An ended job can be deleted from the menu.
  await table.locator('.swm-TableState').selectOption('canceled');
  await table.locator('.swm-TableSearch').fill(firstName);
  const gone = table.locator(`.swm-TableRow[data-job-id="${picked[0]}"]`);
  await expect(gone).toBeVisible();
  await gone.click({ button: 'right' });
  const remove = menu.locator('.lm-Menu-item[data-command="swm:delete-selected"]');
  await expect(remove).not.toHaveClass(/lm-mod-disabled/);
  await remove.click();
  await page.locator('.jp-Dialog .jp-Dialog-button.jp-mod-warn').click();
  await expect(gone).toHaveCount(0);
  const after = await api<{ jobs: { id: string }[] }>(
    server(),
    'jobs?state=canceled&name=t-&limit=1000'
  );
  expect(after.jobs.map(j => j.id)).not.toContain(picked[0]);
});
