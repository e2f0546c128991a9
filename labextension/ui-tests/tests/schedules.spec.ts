/**
 * The Schedules tab of the sidebar in a real JupyterLab: a schedule's next run and last run's
 * state, pause and resume, run now, and the live update of a run from the events websocket.
 * A screenshot goes to docs/img/.
 */
import { expect, Page, test } from '@playwright/test';
import * as path from 'path';

import { api } from '../server';

const URL = (): string => process.env.SWM_LAB_URL ?? '';
const TOKEN = (): string => process.env.SWM_LAB_TOKEN ?? '';
const IMG = path.resolve(__dirname, '..', '..', '..', 'docs', 'img');

interface ISchedule {
  id: string;
  paused: boolean;
}

async function openSchedules(page: Page): Promise<void> {
  await page.goto(`${URL()}/lab/workspaces/ui-sched-${Date.now()}?reset&token=${TOKEN()}`);
  await page.waitForSelector('#jp-main-dock-panel', { timeout: 60000 });
  await page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="swm-sidebar"]').click();
  await expect(page.locator('#swm-sidebar .swm-ConnStatus')).toHaveAttribute('data-status', 'live');
  await page.locator('#swm-sidebar .lm-TabBar-tab', { hasText: 'Schedules' }).click();
  await expect(page.locator('#swm-schedules')).toBeVisible();
}

test('the Schedules tab shows, pauses, resumes and runs a schedule', async ({ page }) => {
  const server = { url: URL(), token: TOKEN() } as Parameters<typeof api>[0];
  const made = await api<ISchedule>(server, 'schedules', {
    method: 'POST',
    body: {
      name: 'ui-hourly',
      job: { name: 'ui-hourly-run', command: ['sh', '-c', 'exit 4'] },
      every: '1h'
    }
  });
  await openSchedules(page);
  const row = page.locator(`#swm-schedules .swm-ScheduleRow[data-schedule="${made.id}"]`);
  await expect(row.locator('.swm-ScheduleRow-name')).toHaveText('ui-hourly');
  await expect(row.locator('.swm-ScheduleRow-when')).toHaveText('every 1h');
  await expect(row.locator('.swm-ScheduleRow-next')).not.toHaveText('Next: —');
  await expect(row.locator('.swm-ScheduleRow-state')).toHaveText('—');

  // Pause and resume from the tab; the server agrees.
  await row.locator('.swm-ScheduleRow-toggle').click();
  await expect(row).toHaveAttribute('data-paused', 'true');
  await expect(row.locator('.swm-ScheduleRow-next')).toHaveText('Next: paused');
  expect((await api<ISchedule>(server, `schedules/${made.id}`)).paused).toBe(true);
  await row.locator('.swm-ScheduleRow-toggle').click();
  await expect(row).toHaveAttribute('data-paused', 'false');
  expect((await api<ISchedule>(server, `schedules/${made.id}`)).paused).toBe(false);

  // Run now: the run's state comes live over the websocket, up to its failure and a notification.
  await row.locator('.swm-ScheduleRow-run').click();
  await expect(row.locator('.swm-ScheduleRow-state')).toHaveText('finished 4', { timeout: 60000 });
  await expect(row.locator('.swm-ScheduleRow-state')).toHaveClass(/swm-mod-failed/);
  await expect(
    page.locator('.Toastify__toast', { hasText: 'Schedule ui-hourly: run failed' })
  ).toBeVisible();
  await page.locator('#swm-sidebar').screenshot({ path: path.join(IMG, 'sidebar-schedules.png') });

  // A schedule made elsewhere appears without a reload; one deleted elsewhere goes away.
  const other = await api<ISchedule>(server, 'schedules', {
    method: 'POST',
    body: {
      name: 'ui-other',
      job: { command: ['true'] },
      cron: '0 3 * * *',
      timezone: 'Europe/Berlin'
    }
  });
  const otherRow = page.locator(`#swm-schedules .swm-ScheduleRow[data-schedule="${other.id}"]`);
  await expect(otherRow.locator('.swm-ScheduleRow-when')).toHaveText(
    'cron 0 3 * * * (Europe/Berlin)'
  );
  await api(server, `schedules/${other.id}/pause`, { method: 'POST' });
  await expect(otherRow).toHaveAttribute('data-paused', 'true');
  await fetch(`${URL()}/swm/api/v1/schedules/${other.id}`, {
    method: 'DELETE',
    headers: { Authorization: `token ${TOKEN()}` }
  });
  await expect(otherRow).toHaveCount(0);
  await api(server, `schedules/${made.id}/pause`, { method: 'POST' });
});
