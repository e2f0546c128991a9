/**
 * The Sky Port sidebar in a real JupyterLab with the local site: submit from the file browser,
 * live states, live logs, cancel, a notebook job with a parameter, sites, server errors.
 * Screenshots go to docs/img/.
 */
import { expect, Page, test } from '@playwright/test';
import * as path from 'path';

import { api } from '../server';

const URL = (): string => process.env.SWM_LAB_URL ?? '';
const TOKEN = (): string => process.env.SWM_LAB_TOKEN ?? '';
const IMG = path.resolve(__dirname, '..', '..', '..', 'docs', 'img');

async function openLab(page: Page): Promise<void> {
  await page.goto(`${URL()}/lab/workspaces/ui-${Date.now()}?reset&token=${TOKEN()}`);
  await page.waitForSelector('#jp-main-dock-panel', { timeout: 60000 });
  await page.waitForSelector('.jp-DirListing-item', { timeout: 60000 });
  // Open the Sky Port sidebar by its icon in the left bar.
  const tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="swm-sidebar"]');
  await tab.click();
  await expect(page.locator('#swm-sidebar .swm-ConnStatus')).toHaveAttribute('data-status', 'live');
}

async function showFileBrowser(page: Page): Promise<void> {
  const tab = page.getByRole('tab', { name: /File Browser/ });
  if ((await tab.getAttribute('aria-selected', { timeout: 10000 })) !== 'true') {
    await tab.click();
  }
  await expect(page.locator('.jp-DirListing-item').first()).toBeVisible();
}

/** Record every state each job row shows, in order, from now on. */
async function recordStates(page: Page): Promise<void> {
  await page.evaluate(() => {
    const seen: Record<string, string[]> = {};
    (window as unknown as { swmSeen: typeof seen }).swmSeen = seen;
    const note = (el: Element): void => {
      const name = el.querySelector('.swm-JobRow-name')?.textContent ?? '';
      const state = (el as HTMLElement).dataset.state ?? '';
      if (!name || !state) {
        return;
      }
      const list = (seen[name] = seen[name] ?? []);
      if (list[list.length - 1] !== state) {
        list.push(state);
      }
    };
    const list = document.querySelector('#swm-sidebar .swm-JobList');
    if (!list) {
      throw new Error('no job list');
    }
    new MutationObserver(records => {
      for (const r of records) {
        const row = (r.target as Element).closest?.('.swm-JobRow');
        if (row) {
          note(row);
        }
      }
    }).observe(list, {
      subtree: true,
      attributes: true,
      childList: true,
      attributeFilter: ['data-state']
    });
    list.querySelectorAll('.swm-JobRow').forEach(note);
  });
}

async function seenStates(page: Page, name: string): Promise<string[]> {
  return page.evaluate(
    n => (window as unknown as { swmSeen: Record<string, string[]> }).swmSeen[n] ?? [],
    name
  );
}

/** Right-click `file` in the file browser and choose "Submit to Sky Port…". */
async function submitFromBrowser(
  page: Page,
  file: string,
  fill?: (page: Page) => Promise<void>
): Promise<void> {
  await showFileBrowser(page);
  await page.locator('.jp-DirListing-item', { hasText: file }).first().click({ button: 'right' });
  await page.getByRole('menuitem', { name: /Submit to Sky Port/ }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.locator('.swm-SubmitForm')).toBeVisible();
  await expect(dialog.locator('.swm-Preview')).toContainText('#SWM site local');
  if (fill) {
    await fill(page);
  }
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(dialog).toHaveCount(0);
}

function row(page: Page, name: string) {
  return page.locator(`#swm-sidebar .swm-JobRow:has(.swm-JobRow-name:text-is("${name}"))`).first();
}

test('submit a script from the file browser and watch it go queued, running, finished', async ({
  page
}) => {
  await openLab(page);
  await recordStates(page);
  await submitFromBrowser(page, 'slow.sh', async p => {
    await p.locator('.jp-Dialog input[name="cpus"]').fill('1');
    await expect(p.locator('.jp-Dialog .swm-Preview')).toContainText('#SWM cpus 1');
    await p.screenshot({ path: path.join(IMG, 'submit-dialog.png') });
  });
  const r = row(page, 'slow');
  await expect(r).toBeVisible();
  await expect(r).toHaveAttribute('data-state', 'running', { timeout: 30000 });
  await page.locator('#swm-sidebar').screenshot({ path: path.join(IMG, 'sidebar-running.png') });
  await expect(r).toHaveAttribute('data-state', 'finished', { timeout: 60000 });
  // The list redraws at most every 100 ms, and a local job can go from `queued` through
  // `waiting` to `running` within a few milliseconds, so the row may first show any of the
  // three. What it shows only ever moves forward, through `running`, to `finished`; the job's
  // own history, below, has every step.
  const order = ['queued', 'waiting', 'running', 'finished'];
  const states = await seenStates(page, 'slow');
  const steps = states.map(s => order.indexOf(s));
  expect(steps).not.toContain(-1);
  expect(steps).toEqual([...steps].sort((a, b) => a - b));
  expect(states).toContain('running');
  expect(states[states.length - 1]).toBe('finished');
  await expect(page.locator('.swm-Status')).toContainText('running');
  // The job's own history, shown in its view, has every step from `queued` on.
  await r.click();
  const view = page.locator('.swm-JobView').filter({ hasText: 'slow' }).last();
  const timeline = view.locator('.swm-Timeline-item');
  await expect(timeline.last()).toHaveAttribute('data-state', 'finished');
  expect(await timeline.evaluateAll(items => items.map(i => i.getAttribute('data-state')))).toEqual(
    ['queued', 'waiting', 'running', 'finished']
  );
});

test('open the log of a running job and see lines appear', async ({ page }) => {
  await openLab(page);
  await submitFromBrowser(page, 'slow.sh', async p => {
    await p.locator('.jp-Dialog input[name="name"]').fill('slow-log');
  });
  const r = row(page, 'slow-log');
  await expect(r).toHaveAttribute('data-state', 'running', { timeout: 30000 });
  await r.click();
  const view = page.locator('.swm-JobView').filter({ hasText: 'slow-log' });
  const log = view.locator('.swm-LogText');
  await expect(log).toContainText('line 2', { timeout: 30000 });
  const early = (await log.textContent()) ?? '';
  // While the job still runs, more lines arrive (pushed by the websocket).
  await expect(view).toHaveAttribute('data-state', 'running');
  await expect
    .poll(async () => ((await log.textContent()) ?? '').split('\n').length, { timeout: 30000 })
    .toBeGreaterThan(early.split('\n').length);
  await page.screenshot({ path: path.join(IMG, 'job-log.png') });
  await expect(log).toContainText('line 12', { timeout: 60000 });
  await expect(view).toHaveAttribute('data-state', 'finished', { timeout: 60000 });
  const timeline = view.locator('.swm-Timeline-item');
  await expect(timeline.last()).toHaveAttribute('data-state', 'finished');
  await expect(timeline.first()).toHaveAttribute('data-state', 'queued');
  expect(await timeline.locator('.swm-Timeline-state').allTextContents()).toContain('running');
  await view.locator('.swm-LogTab[data-stream="stderr"]').click();
  await expect(log).toContainText('done');
  expect(early).not.toContain('line 12');
});

test('cancel a running job from the sidebar', async ({ page }) => {
  await openLab(page);
  await submitFromBrowser(page, 'long.sh');
  const r = row(page, 'long');
  await expect(r).toHaveAttribute('data-state', 'running', { timeout: 30000 });
  await r.locator('.swm-JobRow-check').click();
  await expect(page.locator('#swm-sidebar .swm-Selection')).toHaveText('1 selected');
  await page.locator('#swm-sidebar .swm-ActionButton[data-action="cancel"]').click();
  await expect(r).toHaveAttribute('data-state', 'canceled', { timeout: 30000 });
});

test("a refused action shows the server's message", async ({ page }) => {
  await openLab(page);
  const r = row(page, 'long');
  await expect(r).toHaveAttribute('data-state', 'canceled');
  await r.locator('.swm-JobRow-check').click();
  await page.locator('#swm-sidebar .swm-ActionButton[data-action="hold"]').click();
  const toast = page.locator('.Toastify__toast').filter({ hasText: 'hold' }).first();
  await expect(toast).toBeVisible();
  const text = (await toast.textContent()) ?? '';
  expect(text).toContain('failed');
  expect(text).not.toMatch(/Error 4\d\d|Error 500/);
  expect(text.length).toBeGreaterThan(30);
});

test('submit a notebook with a parameter and open the executed notebook', async ({ page }) => {
  await openLab(page);
  await submitFromBrowser(page, 'params.ipynb', async p => {
    await p.locator('.jp-Dialog input[name="name"]').fill('squares');
    await p.locator('.jp-Dialog textarea[name="parameters"]').fill('n = 7');
  });
  const r = row(page, 'squares');
  await expect(r).toHaveAttribute('data-state', 'finished', { timeout: 90000 });
  await r.click();
  const view = page.locator('.swm-JobView').filter({ hasText: 'squares' });
  const open = view.locator('.swm-OpenNotebook');
  await expect(open).toBeVisible({ timeout: 30000 });
  await page.screenshot({ path: path.join(IMG, 'job-notebook.png') });
  await open.click();
  // Shown from the job's folder, not copied; "Save a copy" opens it in JupyterLab.
  const viewer = page.locator('.swm-FileView').last();
  await expect(viewer).toContainText('n squared is 49');
  await viewer.locator('.swm-SaveCopy').click();
  const nb = page.locator('.jp-NotebookPanel').last();
  await expect(nb.locator('.jp-OutputArea-output')).toContainText('n squared is 49', {
    timeout: 30000
  });
  await page.screenshot({ path: path.join(IMG, 'executed-notebook.png') });
});

test('the sites panel shows the local site', async ({ page }) => {
  await openLab(page);
  await page.locator('#swm-sidebar .lm-TabBar-tab', { hasText: 'Sites' }).click();
  const card = page.locator('.swm-SiteCard[data-site="local"]');
  await expect(card).toBeVisible();
  await expect(card).toContainText('gate: local');
  await expect(card).toContainText('Limits:');
  await page.locator('#swm-sidebar').screenshot({ path: path.join(IMG, 'sites.png') });
});

test("the submit dialog shows the server's checks of limits and units before sending", async ({
  page
}) => {
  await openLab(page);
  await showFileBrowser(page);
  await page
    .locator('.jp-DirListing-item', { hasText: 'quick.sh' })
    .first()
    .click({ button: 'right' });
  await page.getByRole('menuitem', { name: /Submit to Sky Port/ }).click();
  const dialog = page.locator('.jp-Dialog');
  await dialog.locator('input[name="cpus"]').fill('100000');
  const cpusError = dialog.locator('input[name="cpus"] + .swm-FieldError');
  // The server's dry run checks the limits and names the field.
  await expect(cpusError).toContainText(/100000 cpus but site 'local' has \d+/);
  await dialog.locator('input[name="walltime"]').fill('soon');
  await expect(dialog.locator('input[name="walltime"] + .swm-FieldError')).toContainText(
    'cannot read walltime'
  );
  await dialog.locator('.jp-Dialog-button.jp-mod-reject').click();
});

/** Names of the job rows the user can see in the sidebar, top to bottom. */
async function visibleRowNames(page: Page): Promise<string[]> {
  return page
    .locator('#swm-sidebar .swm-JobRow[data-job-id]:visible .swm-JobRow-name')
    .allTextContents();
}

test('search and the state filter keep only the matching rows', async ({ page }) => {
  const server = { url: URL(), token: TOKEN() } as Parameters<typeof api>[0];
  const names = ['filter-a-1', 'filter-a-2', 'filter-a-3', 'filter-b-1', 'filter-b-2'];
  await api(server, 'jobs', {
    method: 'POST',
    body: names.map(name => ({ name, command: ['true'], hold: true }))
  });
  await openLab(page);
  const panel = page.locator('#swm-sidebar .swm-JobsPanel');
  await expect(row(page, 'filter-b-2')).toBeVisible();
  // How many rows match no filter, once the list has loaded every job (two readings 0.5 s apart agree).
  let last = -1;
  await expect
    .poll(
      async () => {
        const now = Number(await panel.getAttribute('data-visible'));
        const settled = now === last;
        last = now;
        return settled;
      },
      { intervals: [500] }
    )
    .toBe(true);
  const all = last;
  expect(all).toBeGreaterThanOrEqual(names.length);

  await panel.locator('.swm-Search').fill('filter-b');
  await expect
    .poll(async () => (await visibleRowNames(page)).sort())
    .toEqual(['filter-b-1', 'filter-b-2']);
  await expect(panel).toHaveAttribute('data-visible', '2');

  await panel.locator('.swm-Search').fill('');
  await panel.locator('.swm-StateFilter').selectOption('held');
  await expect.poll(async () => (await visibleRowNames(page)).sort()).toEqual(names);
  const states = await page
    .locator('#swm-sidebar .swm-JobRow[data-job-id]:visible')
    .evaluateAll(rows => rows.map(r => (r as HTMLElement).dataset.state));
  expect(new Set(states)).toEqual(new Set(['held']));

  await panel.locator('.swm-Search').fill('no job has this name');
  await expect.poll(() => visibleRowNames(page)).toEqual([]);
  await expect(panel).toHaveAttribute('data-visible', '0');

  await panel.locator('.swm-Search').fill('');
  await panel.locator('.swm-StateFilter').selectOption('');
  await expect(panel).toHaveAttribute('data-visible', String(all));
  await expect(row(page, 'filter-b-2')).toBeVisible();
});
