/**
 * Helpers of the UI tests: open JupyterLab with the Sky Port sidebar, find job rows, and set up
 * jobs, files and settings through the server's REST APIs (never through the UI under test).
 */
import { expect, Locator, Page } from '@playwright/test';

import { api, ILabServer } from './server';

export const URL = (): string => process.env.SWM_LAB_URL ?? '';
export const TOKEN = (): string => process.env.SWM_LAB_TOKEN ?? '';

/** The lab server of this run (started by global-setup.ts), for `api()`. */
export function server(): ILabServer {
  return { url: URL(), token: TOKEN() } as ILabServer;
}

/** A fresh workspace of JupyterLab with the Sky Port sidebar shown and live. */
export async function openLab(page: Page, query = ''): Promise<void> {
  await page.goto(`${URL()}/lab/workspaces/ui-${Date.now()}?reset&token=${TOKEN()}${query}`);
  await page.waitForSelector('#jp-main-dock-panel', { timeout: 60000 });
  await page.waitForSelector('.jp-DirListing-item', { timeout: 60000 });
  const tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="swm-sidebar"]');
  await tab.click();
  await expect(page.locator('#swm-sidebar .swm-ConnStatus')).toHaveAttribute('data-status', 'live');
}

/** Run a JupyterLab command in the page (as the palette or a menu would), and wait for it. */
export async function runCommand(page: Page, command: string, args: unknown = {}): Promise<void> {
  await page.evaluate(
    ([c, a]) =>
      (
        window as unknown as {
          jupyterapp: { commands: { execute: (id: string, args: unknown) => Promise<unknown> } };
        }
      ).jupyterapp.commands
        .execute(c as string, a)
        .then(() => undefined),
    [command, args]
  );
}

/** The sidebar's row of the (newest) job named `name`. */
export function row(page: Page, name: string): Locator {
  return page.locator(`#swm-sidebar .swm-JobRow:has(.swm-JobRow-name:text-is("${name}"))`).first();
}

/** Names of the job rows shown in the sidebar, top to bottom. */
export async function shownNames(page: Page): Promise<string[]> {
  return page
    .locator('#swm-sidebar .swm-JobRow[data-job-id]:visible .swm-JobRow-name')
    .allTextContents();
}

export interface IJobBrief {
  id: string;
  name: string;
  state: string;
  exit_code: number | null;
}

/** Submit `specs` through the REST API; the new jobs. */
export async function submitJobs(specs: Record<string, unknown>[]): Promise<IJobBrief[]> {
  const answer = await api<{ jobs: IJobBrief[] }>(server(), 'jobs', {
    method: 'POST',
    body: specs
  });
  return answer.jobs;
}

/** Wait until job `id` is in one of `states` (REST polling); its last summary. */
export async function waitJob(id: string, states: string[], timeout = 60000): Promise<IJobBrief> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const job = await api<IJobBrief>(server(), `jobs/${id}`);
    if (states.includes(job.state)) {
      return job;
    }
    if (Date.now() > deadline) {
      throw new Error(`job ${id} is ${job.state}, not ${states.join('/')}, after ${timeout} ms`);
    }
    await new Promise(r => setTimeout(r, 300));
  }
}

/** Run `action` on the jobs matching `filter` (REST bulk action). */
export async function bulk(action: string, filter: Record<string, unknown>): Promise<void> {
  await api(server(), `jobs/actions/${action}`, { method: 'POST', body: { filter } });
}

/** Write a text file into the Jupyter root through the contents API. */
export async function putFile(path: string, content: string): Promise<void> {
  const r = await fetch(`${URL()}/api/contents/${path}`, {
    method: 'PUT',
    headers: { Authorization: `token ${TOKEN()}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ type: 'file', format: 'text', content })
  });
  if (!r.ok) {
    throw new Error(`PUT ${path}: ${r.status} ${await r.text()}`);
  }
}

/** Save the user settings of the Sky Port plugin (JupyterLab's settings API). */
export async function putSettings(values: Record<string, unknown>): Promise<void> {
  const r = await fetch(`${URL()}/lab/api/settings/swm-jupyter-labextension:plugin`, {
    method: 'PUT',
    headers: { Authorization: `token ${TOKEN()}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ raw: JSON.stringify(values) })
  });
  if (!r.ok) {
    throw new Error(`settings: ${r.status} ${await r.text()}`);
  }
}

/** Open the submit dialog of `file` from the file browser's context menu. */
export async function openSubmitDialog(page: Page, file: string): Promise<Locator> {
  const tab = page.getByRole('tab', { name: /File Browser/ });
  if ((await tab.getAttribute('aria-selected', { timeout: 10000 })) !== 'true') {
    await tab.click();
  }
  await page.locator('.jp-DirListing-item', { hasText: file }).first().click({ button: 'right' });
  await page.getByRole('menuitem', { name: /Submit to Sky Port/ }).click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.locator('.swm-SubmitForm')).toBeVisible();
  return dialog;
}
