/**
 * The jobs table on a real JupyterHub: users log in through the hub's login page (PAM), their own
 * single-user servers forward the swm API to the hub's one swm service. An swm admin sees every
 * user's jobs with their owners and narrows them with "My jobs"; a user sees only their own jobs
 * and cannot see or act on another user's, from the table, the job view or a request of their own.
 */
import { Browser, expect, Locator, Page, test } from '@playwright/test';
import * as fs from 'fs';
import * as path from 'path';

import { HUB_STATE, IHubState } from '../hub-setup';

const IMG = path.resolve(__dirname, '..', '..', '..', 'docs', 'img');

function hub(): IHubState {
  return JSON.parse(fs.readFileSync(HUB_STATE, 'utf8')) as IHubState;
}

/** The names of the jobs `user` submitted (tests/hub_ui.py), by job id. */
function jobsOf(user: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(hub().jobs)
      .filter(([, j]) => j.user === user)
      .map(([id, j]) => [id, j.name])
  );
}

function jobId(name: string): string {
  const found = Object.entries(hub().jobs).find(([, j]) => j.name === name);
  if (!found) {
    throw new Error(`no job ${name} in ${HUB_STATE}`);
  }
  return found[0];
}

/** Log `user` in through the hub's login form in a fresh browser context; their JupyterLab. */
async function login(browser: Browser, user: string): Promise<Page> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${hub().url}/hub/login`);
  await page.locator('#username_input').fill(user);
  await page.locator('#password_input').fill(hub().password);
  await page.locator('#login_submit').click();
  await page.waitForURL(new RegExp(`/user/${user}/lab`), { timeout: 60000 });
  // A fresh workspace, whatever an earlier visit left open.
  await page.goto(`${hub().url}/user/${user}/lab/workspaces/ui-${Date.now()}?reset`);
  await page.waitForSelector('#jp-main-dock-panel', { timeout: 60000 });
  return page;
}

/** Open the Sky Port sidebar (live) and the jobs table; the table once loaded. */
async function openTable(page: Page): Promise<Locator> {
  await page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="swm-sidebar"]').click();
  await expect(page.locator('#swm-sidebar .swm-ConnStatus')).toHaveAttribute('data-status', 'live');
  await page.locator('#swm-sidebar .swm-OpenTable').click();
  const table = page.locator('.swm-JobsTable');
  await expect(table).toBeVisible();
  await expect(table).not.toHaveAttribute('data-loading', 'true');
  return table;
}

/** The table's rows as `{name: owner}` (owner '' when the table has no Owner column). */
async function rows(table: Locator): Promise<Record<string, string>> {
  const pairs = await table
    .locator('.swm-TableRow')
    .evaluateAll(trs =>
      trs.map(tr => [
        tr.querySelector('.swm-TableCell-name')?.textContent ?? '',
        tr.querySelector('.swm-TableCell-owner')?.textContent ?? ''
      ])
    );
  return Object.fromEntries(pairs);
}

async function headers(table: Locator): Promise<string[]> {
  return table.locator('th .swm-TableHeader-label').allTextContents();
}

/** The state of a job as the service says (with the test service's admin token), never through the UI. */
async function serviceState(id: string): Promise<string> {
  const r = await fetch(`${hub().url}/services/swm/swm/api/v1/jobs/${id}`, {
    headers: { Authorization: `token ${hub().admin_token}` }
  });
  expect(r.status).toBe(200);
  return ((await r.json()) as { state: string }).state;
}

test('an swm admin sees every user with their owners, and "My jobs" narrows to their own', async ({
  browser
}) => {
  const page = await login(browser, 'admin');
  const table = await openTable(page);
  await expect.poll(() => headers(table)).toContain('Owner');
  const everyone = Object.fromEntries(Object.values(hub().jobs).map(j => [j.name, j.user]));
  await expect.poll(() => rows(table)).toEqual(everyone);
  const mine = table.locator('.swm-TableMine');
  await expect(mine).toBeVisible();

  // Sorting by owner is the server's.
  await table.locator('th[data-column="owner"] .swm-TableHeader-label').click();
  await expect(table.locator('th[data-column="owner"]')).toHaveAttribute('aria-sort', 'ascending');
  await expect
    .poll(() => table.locator('.swm-TableRow .swm-TableCell-owner').allTextContents())
    .toEqual(
      Object.values(hub().jobs)
        .map(j => j.owner)
        .sort()
    );
  await page.screenshot({ path: path.join(IMG, 'jobs-table-hub.png') });

  await mine.locator('input').check();
  await expect
    .poll(() => rows(table))
    .toEqual(Object.fromEntries(Object.values(jobsOf('admin')).map(n => [n, 'admin'])));
  await expect(table.locator('.swm-TableRange')).toHaveText('1–1 of 1');
  await mine.locator('input').uncheck();
  await expect.poll(() => rows(table)).toEqual(everyone);
  await page.context().close();
});

test("a user sees only their own jobs and cannot act on another user's", async ({ browser }) => {
  const page = await login(browser, 'alice');
  const table = await openTable(page);
  const own = Object.fromEntries(Object.values(jobsOf('alice')).map(n => [n, '']));
  await expect.poll(() => rows(table)).toEqual(own);
  // Only one owner's jobs: no Owner column and no "My jobs" (it could change nothing).
  expect(await headers(table)).not.toContain('Owner');
  await expect(table.locator('.swm-TableMine')).toBeHidden();
  const n = Object.keys(own).length;
  await expect(table.locator('.swm-TableRange')).toHaveText(`1–${n} of ${n}`);
  // Not in the sidebar either.
  await expect(page.locator('#swm-sidebar .swm-JobRow[data-job-id]')).toHaveCount(n);

  // Bob's running job, opened by its id from the palette's command: not found, no actions.
  const bobs = jobId('bob-long');
  await page.evaluate(id => {
    const app = (
      window as unknown as {
        jupyterapp: { commands: { execute: (c: string, a: unknown) => void } };
      }
    ).jupyterapp;
    app.commands.execute('swm:open-job', { id });
  }, bobs);
  const view = page.locator(`#swm-job-${bobs}`);
  await expect(view.locator('.swm-JobView-error')).toContainText(`no job '${bobs}'`);
  await expect(view.locator('.swm-JobView-title')).toHaveText(`No job ${bobs.slice(0, 8)}`);
  const buttons = view.locator('.swm-JobView-actions button');
  await expect(buttons).toHaveCount(5);
  for (const button of await buttons.all()) {
    await expect(button).toBeDisabled();
  }

  // A request of alice's own making (her browser session, her server's API): 404, as for no job.
  const answers = await page.evaluate(async id => {
    const xsrf = /(?:^|; )_xsrf=([^;]*)/.exec(document.cookie)?.[1] ?? '';
    const base = `${location.pathname.split('/lab')[0]}/swm/api/v1`;
    // As JupyterLab calls its server: the login cookie and the _xsrf token (JupyterHub asks for
    // it on every request a cookie authenticates, GET included).
    const call = (method: string, route: string, body?: unknown) =>
      fetch(`${base}/${route}`, {
        method,
        headers: { 'X-XSRFToken': decodeURIComponent(xsrf), 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body)
      }).then(async r => ({ status: r.status, body: await r.text() }));
    return {
      cancel: await call('POST', `jobs/${id}/cancel`),
      bulk: await call('POST', 'jobs/actions/cancel', { ids: [id] }),
      list: await call('GET', 'jobs?owner=bob')
    };
  }, bobs);
  expect(answers.cancel.status).toBe(404);
  expect(answers.bulk.status).toBe(200);
  expect(JSON.parse(answers.bulk.body)).toMatchObject({ done: [], failed: [{ id: bobs }] });
  expect(answers.list.status).toBe(200);
  expect(JSON.parse(answers.list.body)).toMatchObject({ jobs: [], total: 0 });
  expect(await serviceState(bobs)).toBe('running');
  expect(await serviceState(jobId('bob-held'))).toBe('held');
  await page.context().close();
});
