/**
 * The bugs of issue #18, each as a user met them in Chromium, with 300 jobs in the list:
 * filters keeping rows, invisible selection, silent refusals, the dialog overriding the script,
 * elapsed times that do not tick, failed jobs shown as successful, notifications, dark theme.
 */
import { expect, Page, test } from '@playwright/test';

import {
  bulk,
  openLab,
  openSubmitDialog,
  putFile,
  putSettings,
  row,
  shownNames,
  submitJobs,
  waitJob
} from '../helpers';

const BULK = 300;

test.beforeAll(async () => {
  // 300 held jobs, and two of them canceled: the list a user of a busy site has.
  const specs = Array.from({ length: BULK }, (_, i) => ({
    name: `bulk-${String(i).padStart(3, '0')}`,
    command: ['true'],
    hold: true
  }));
  const jobs = await submitJobs(specs);
  await bulk('cancel', { name: 'bulk-007' });
  await bulk('cancel', { name: 'bulk-013' });
  await waitJob(jobs[7].id, ['canceled']);
});

test.afterAll(async () => {
  // Leave no held jobs behind for the other specs.
  await bulk('cancel', { name: 'bulk-', state: 'held' });
});

function panel(page: Page) {
  return page.locator('#swm-sidebar .swm-JobsPanel');
}

test('bug 1: the state filter, search and collapsed groups show only matching rows, and say why when none match', async ({
  page
}) => {
  await openLab(page);
  await expect(row(page, 'bulk-299')).toBeVisible();
  await panel(page).locator('.swm-StateFilter').selectOption('canceled');
  await expect.poll(async () => (await shownNames(page)).sort()).toEqual(['bulk-007', 'bulk-013']);

  await panel(page).locator('.swm-StateFilter').selectOption('');
  await panel(page).locator('.swm-Search').fill('zzzz');
  await expect.poll(() => shownNames(page)).toEqual([]);
  await expect(panel(page).locator('.swm-JobsPanel-message')).toContainText('No jobs match');
  await expect(panel(page).locator('.swm-JobsPanel-message')).toContainText('zzzz');

  await panel(page).locator('.swm-Search').fill('bulk-');
  await panel(page).locator('.swm-GroupBy').selectOption('state');
  await page.locator('#swm-sidebar .swm-GroupRow[data-group="state:held"]').click();
  await expect(page.locator('#swm-sidebar .swm-GroupRow[data-group="state:held"]')).toContainText(
    '▸'
  );
  const states = await page
    .locator('#swm-sidebar .swm-JobRow[data-job-id]:visible')
    .evaluateAll(rows => rows.map(r => (r as HTMLElement).dataset.state));
  expect(states.sort()).toEqual(['canceled', 'canceled']);
});

test('bug 2: a click opens without selecting; selection is what is shown; shift-click selects no text; cancel of several asks first', async ({
  page
}) => {
  await openLab(page);
  const sel = page.locator('#swm-sidebar .swm-Selection');
  await row(page, 'bulk-299').locator('.swm-JobRow-name').click();
  await expect(page.locator('.swm-JobView').filter({ hasText: 'bulk-299' })).toBeVisible();
  await expect(row(page, 'bulk-299')).not.toHaveClass(/swm-mod-selected/);
  await expect(sel).toHaveText('');

  // Ctrl-click picks, shift-click extends: four rows, and no page text selected.
  await row(page, 'bulk-298').click({ modifiers: ['Control'] });
  await row(page, 'bulk-295').click({ modifiers: ['Shift'] });
  await expect(sel).toContainText('4 selected');
  expect(await page.evaluate(() => String(window.getSelection() ?? ''))).toBe('');

  // A filter that hides three of them leaves one selected: actions never hit hidden jobs.
  await panel(page).locator('.swm-Search').fill('bulk-298');
  await expect(sel).toContainText('1 selected');
  await panel(page).locator('.swm-Search').fill('bulk-29');
  await expect(sel).toContainText('1 selected');
  await row(page, 'bulk-297').click({ modifiers: ['Control'] });
  await expect(sel).toContainText('2 selected');

  // Cancel of two asks first, naming them; "No" changes nothing.
  await page.locator('#swm-sidebar .swm-ActionButton[data-action="cancel"]').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('bulk-298');
  await expect(dialog).toContainText('bulk-297');
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
  await expect(row(page, 'bulk-298')).toHaveAttribute('data-state', 'held');
  await page.locator('#swm-sidebar .swm-ActionButton[data-action="cancel"]').click();
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(row(page, 'bulk-298')).toHaveAttribute('data-state', 'canceled');
  await expect(row(page, 'bulk-297')).toHaveAttribute('data-state', 'canceled');
  await expect(row(page, 'bulk-296')).toHaveAttribute('data-state', 'held');
});

test("bug 3: a submission the server refuses shows the server's words in the dialog", async ({
  page
}) => {
  await putFile('empty.sh', '');
  await openLab(page);
  const dialog = await openSubmitDialog(page, 'empty.sh');
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(dialog.locator('.swm-SubmitForm')).toContainText('non-empty text of a script');
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
});

test("bug 4: the script's own directives are the dialog's values and the preview is the server's dry run", async ({
  page
}) => {
  await putFile(
    'directives.sh',
    '#!/bin/bash\n#SWM name nightly-train\n#SWM walltime 00:05:00\n#SWM cpus 2\n#SWM colour blue\necho hi\n'
  );
  await openLab(page);
  const dialog = await openSubmitDialog(page, 'directives.sh');
  await expect(dialog.locator('input[name="name"]')).toHaveValue('nightly-train');
  await expect(dialog.locator('input[name="cpus"]')).toHaveValue('2');
  const preview = dialog.locator('.swm-Preview');
  await expect(preview).toContainText('#SWM walltime 00:05:00');
  await expect(preview).toContainText('#SWM cpus 2');
  // A line the server would ignore says so.
  await expect(preview).toContainText(/# ignored: .*colour/);
  // A change in the dialog is what the server would run.
  await dialog.locator('input[name="cpus"]').fill('1');
  await expect(preview).toContainText('#SWM cpus 1');
  await expect(preview).toContainText('#SWM walltime 00:05:00');
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(dialog).toHaveCount(0);
  await expect(row(page, 'nightly-train')).toBeVisible();
});

test('bug 5: the elapsed time of a running job ticks', async ({ page }) => {
  const [job] = await submitJobs([{ name: 'ticking', command: ['sleep', '60'] }]);
  await openLab(page);
  await waitJob(job.id, ['running']);
  const time = row(page, 'ticking').locator('.swm-JobRow-time');
  await expect(time).toHaveText(/^\d+s$/);
  const first = await time.textContent();
  await expect.poll(() => time.textContent(), { timeout: 5000 }).not.toBe(first);
  await bulk('cancel', { name: 'ticking' });
});

test('bug 6: a job that exits non-zero is failed (red) in the list, the filter and its view', async ({
  page
}) => {
  const [job] = await submitJobs([{ name: 'exit-two', command: ['bash', '-c', 'exit 2'] }]);
  await waitJob(job.id, ['finished', 'error']);
  await openLab(page);
  const r = row(page, 'exit-two');
  const badge = r.locator('.swm-StateBadge');
  await expect(badge).toHaveClass(/swm-state-failed/);
  await expect(badge).toHaveAttribute('title', /failed.*exit code 2/);
  // The badge's colour is JupyterLab's error colour (read again until the row is drawn).
  const colors = () =>
    badge.evaluate(b => {
      const probe = document.createElement('span');
      probe.style.color = 'var(--jp-error-color1)';
      document.body.appendChild(probe);
      const error = getComputedStyle(probe).color;
      probe.remove();
      return getComputedStyle(b).backgroundColor === error && error !== '';
    });
  await expect.poll(colors).toBe(true);
  await panel(page).locator('.swm-StateFilter').selectOption('failed');
  await expect.poll(() => shownNames(page)).not.toContain('bulk-299');
  expect(await shownNames(page)).toContain('exit-two');
  await r.locator('.swm-JobRow-name').click();
  const view = page.locator('.swm-JobView').filter({ hasText: 'exit-two' });
  await expect(view.locator('.swm-JobView-head .swm-StateBadge')).toHaveClass(/swm-state-failed/);
  await expect(view.locator('.swm-JobView-meta')).toContainText('failed');
});

test('bug 7: notifications cover jobs submitted elsewhere, and a setting keeps only failures', async ({
  page
}) => {
  await putSettings({ notifications: 'failures' });
  try {
    await openLab(page);
    const [ok, bad] = await submitJobs([
      { name: 'elsewhere-ok', command: ['sleep', '2'] },
      { name: 'elsewhere-bad', command: ['bash', '-c', 'sleep 2; exit 3'] }
    ]);
    await waitJob(ok.id, ['finished']);
    await waitJob(bad.id, ['finished', 'error']);
    const toasts = page.locator('.Toastify__toast');
    await expect(toasts.filter({ hasText: 'elsewhere-bad' })).toBeVisible();
    await expect(toasts.filter({ hasText: 'elsewhere-bad' })).toContainText('exit code 3');
    await expect(row(page, 'elsewhere-ok')).toHaveAttribute('data-state', 'finished');
    await page.waitForTimeout(1000);
    await expect(toasts.filter({ hasText: 'elsewhere-ok' })).toHaveCount(0);
  } finally {
    await putSettings({});
  }
});
