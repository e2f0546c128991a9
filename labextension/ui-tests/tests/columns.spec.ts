/**
 * The jobs table's column order: drag a header onto another to move its column, or use the
 * header's context menu; the order is the `tableColumns` setting, so it survives a reload, and a
 * change of the setting (as the Settings Editor makes) applies to the open table at once.
 */
import { expect, Locator, Page, test } from '@playwright/test';

import { URL, TOKEN, openLab, putSettings, submitJobs, waitJob } from '../helpers';

const PLUGIN = 'swm-jupyter-labextension:plugin';

test.beforeAll(async () => {
  await putSettings({});
  const [job] = await submitJobs([{ name: 'col-job', command: ['bash', '-c', 'exit 3'] }]);
  await waitJob(job.id, ['finished']);
});

test.afterAll(async () => {
  await putSettings({});
});

async function openTable(page: Page): Promise<Locator> {
  await openLab(page);
  await page.locator('#swm-sidebar .swm-OpenTable').click();
  const table = page.locator('.swm-JobsTable');
  await expect(table).not.toHaveAttribute('data-loading', 'true');
  await expect(table.locator('.swm-TableRow', { hasText: 'col-job' }).first()).toBeVisible();
  return table;
}

function headers(table: Locator): Locator {
  return table.locator('th .swm-TableHeader-label');
}

/** The user's stored `tableColumns` (what the server keeps for the settings registry). */
async function storedColumns(): Promise<unknown> {
  const r = await fetch(`${URL()}/lab/api/settings/${PLUGIN}`, {
    headers: { Authorization: `token ${TOKEN()}` }
  });
  const body = (await r.json()) as { settings: Record<string, unknown> };
  return body.settings.tableColumns;
}

test('dragging a header moves its column; the order is kept after a reload', async ({ page }) => {
  let table = await openTable(page);
  await expect(headers(table)).toHaveText([
    'State',
    'Name',
    'Site',
    'Submitted',
    'Elapsed / duration',
    'Exit'
  ]);
  // Exit dropped on the left half of State: first.
  await table
    .locator('th[data-column="exit"]')
    .dragTo(table.locator('th[data-column="state"]'), { targetPosition: { x: 8, y: 8 } });
  await expect(headers(table)).toHaveText([
    'Exit',
    'State',
    'Name',
    'Site',
    'Submitted',
    'Elapsed / duration'
  ]);
  // The cells follow their headers.
  const row = table.locator('.swm-TableRow', { hasText: 'col-job' }).first();
  await expect(row.locator('td').nth(1)).toHaveText('3');
  // Site dropped on the right half of Elapsed: last.
  const elapsed = table.locator('th[data-column="elapsed"]');
  const box = await elapsed.boundingBox();
  await table
    .locator('th[data-column="site"]')
    .dragTo(elapsed, { targetPosition: { x: (box?.width ?? 40) - 8, y: 8 } });
  const moved = ['Exit', 'State', 'Name', 'Submitted', 'Elapsed / duration', 'Site'];
  await expect(headers(table)).toHaveText(moved);
  await expect
    .poll(storedColumns)
    .toEqual(['exit', 'state', 'name', 'owner', 'submitted', 'elapsed', 'site']);

  table = await openTable(page);
  await expect(headers(table)).toHaveText(moved);
});

test("a header's context menu moves its column; a changed setting applies at once", async ({
  page
}) => {
  await putSettings({ tableColumns: ['state', 'name', 'site', 'exit'] });
  const table = await openTable(page);
  await expect(headers(table)).toHaveText(['State', 'Name', 'Site', 'Exit']);
  await table.locator('th[data-column="site"]').click({ button: 'right' });
  await page.getByRole('menuitem', { name: 'Move column left' }).click();
  await expect(headers(table)).toHaveText(['State', 'Site', 'Name', 'Exit']);
  await table.locator('th[data-column="state"]').click({ button: 'right' });
  await expect(page.getByRole('menuitem', { name: 'Move column left' })).toHaveAttribute(
    'aria-disabled',
    'true'
  );
  await page.keyboard.press('Escape');
  // With the keyboard: a focused header moves with Alt+Shift+arrows.
  await table.locator('th[data-column="exit"]').focus();
  await page.keyboard.press('Alt+Shift+ArrowLeft');
  await expect(headers(table)).toHaveText(['State', 'Site', 'Exit', 'Name']);
  await expect(table.locator('th[data-column="exit"]')).toBeFocused();
  await expect.poll(storedColumns).toEqual(['state', 'site', 'exit', 'name']);

  // The setting changed as the Settings Editor changes it: the open table follows.
  await page.evaluate(
    async ({ plugin, columns }) => {
      interface IRegistry {
        set(plugin: string, key: string, value: unknown): Promise<void>;
      }
      interface IApp {
        pluginRegistry: { _services: Map<{ name: string } | undefined, string> };
        resolveRequiredService(token: unknown): Promise<IRegistry>;
      }
      const app = (window as unknown as { jupyterapp: IApp }).jupyterapp;
      const services = app.pluginRegistry._services;
      const token = [...services.keys()].find(
        t => t?.name === '@jupyterlab/coreutils:ISettingRegistry'
      );
      const registry = await app.resolveRequiredService(token);
      await registry.set(plugin, 'tableColumns', columns);
    },
    { plugin: PLUGIN, columns: ['exit', 'submitted', 'name'] }
  );
  await expect(headers(table)).toHaveText(['Exit', 'Submitted', 'Name']);
});
