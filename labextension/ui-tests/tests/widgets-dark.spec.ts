/**
 * Bug 8 of issue #18: the notebook widgets in JupyterLab's dark theme. The Timeline's labels and
 * axis must be readable (not black on black); JobMonitor's buttons must show their whole word, and
 * a disabled button must look disabled.
 */
import { expect, Page, test } from '@playwright/test';

import { openLab, putFile, runCommand, submitJobs, waitJob } from '../helpers';

function notebook(cells: string[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {
      kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' },
      language_info: { name: 'python' }
    },
    cells: cells.map((source, i) => ({
      cell_type: 'code',
      id: `c${i}`,
      metadata: {},
      execution_count: null,
      outputs: [],
      source
    }))
  });
}

/** Relative luminance (0 black … 1 white) of a CSS `rgb(...)` colour. */
async function luminance(page: Page, color: string): Promise<number> {
  return page.evaluate(c => {
    const m = /rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)/.exec(c);
    if (!m) {
      throw new Error(`not a colour: ${c}`);
    }
    const lin = (v: number): number => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(+m[1]) + 0.7152 * lin(+m[2]) + 0.0722 * lin(+m[3]);
  }, color);
}

test('bug 8: the Timeline and JobMonitor are readable in the dark theme', async ({ page }) => {
  const [job] = await submitJobs([{ name: 'dark-check', command: ['true'] }]);
  await waitJob(job.id, ['finished']);
  await putFile(
    'dark.ipynb',
    notebook([
      'import time\nfrom IPython.display import HTML\nfrom swm_jupyter.widgets.timeline import gantt_svg\n' +
        "now = time.time()\njobs = [{'id': 'abcdef12', 'name': 'dark-check', 'submit_time': now - 20, " +
        "'start_time': now - 10, 'end_time': now, 'state': 'finished'}]\nHTML(gantt_svg(jobs, now))",
      'from swm_jupyter.widgets import JobMonitor\nmonitor = JobMonitor()\nmonitor',
      `from swm_jupyter.client.api import Client\nClient().job('${job.id}').wait()\nNone`
    ])
  );
  await openLab(page);
  await runCommand(page, 'apputils:change-theme', { theme: 'JupyterLab Dark' });
  try {
    await checkWidgets(page);
  } finally {
    // The theme is a user setting of this run's JupyterLab: the other tests want the light one.
    await runCommand(page, 'apputils:change-theme', { theme: 'JupyterLab Light' });
  }
});

async function checkWidgets(page: Page): Promise<void> {
  await expect(page.locator('body')).toHaveAttribute('data-jp-theme-light', 'false');
  await runCommand(page, 'docmanager:open', { path: 'dark.ipynb' });
  // A notebook made through the contents API asks for its kernel.
  const choose = page.locator('.jp-Dialog .jp-Dialog-button.jp-mod-accept');
  await choose.waitFor({ timeout: 15000 }).then(
    () => choose.click(),
    () => undefined
  );
  const nb = page.locator('.jp-NotebookPanel').last();
  await expect(nb.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')).toHaveCount(1, {
    timeout: 60000
  });
  await runCommand(page, 'notebook:run-all-cells');

  // The Timeline's labels and axis against the notebook's background.
  const label = nb.locator('svg.swm-timeline text').first();
  await expect(label).toBeVisible({ timeout: 60000 });
  const colors = await label.evaluate(t => {
    const area = t.closest('.jp-OutputArea-output') as HTMLElement;
    let bg = 'rgba(0, 0, 0, 0)';
    for (let n: HTMLElement | null = area; n; n = n.parentElement) {
      bg = getComputedStyle(n).backgroundColor;
      if (bg !== 'rgba(0, 0, 0, 0)' && bg !== 'transparent') {
        break;
      }
    }
    const axis = t.ownerSVGElement?.querySelector('.swm-timeline-axis');
    return {
      text: getComputedStyle(t).fill,
      axis: axis ? getComputedStyle(axis).stroke : 'none',
      bg
    };
  });
  const bg = await luminance(page, colors.bg);
  expect(bg).toBeLessThan(0.2);
  expect((await luminance(page, colors.text)) - bg).toBeGreaterThan(0.3);
  expect((await luminance(page, colors.axis)) - bg).toBeGreaterThan(0.15);

  // JobMonitor: whole words on its buttons; a disabled one looks different from an enabled one.
  const row = nb.locator('.widget-hbox', { hasText: 'dark-check' }).first();
  await expect(row).toBeVisible({ timeout: 60000 });
  const buttons = row.locator('button.swm-monitor-action');
  await expect(buttons).toHaveCount(5);
  const looks = await buttons.evaluateAll(bs =>
    bs.map(b => ({
      word: b.textContent?.trim(),
      cut: b.scrollWidth > b.clientWidth + 1,
      disabled: (b as HTMLButtonElement).disabled,
      opacity: getComputedStyle(b).opacity
    }))
  );
  expect(looks.filter(l => l.cut)).toEqual([]);
  const disabled = looks.find(l => l.word === 'release');
  const enabled = looks.find(l => l.word === 'requeue');
  expect(disabled?.disabled).toBe(true);
  expect(enabled?.disabled).toBe(false);
  expect(Number(disabled?.opacity)).toBeLessThan(Number(enabled?.opacity) - 0.2);

  // job.wait(): one progress row (a bar and a line), not a second bar and a whole job view.
  const wait = nb.locator('.jp-Cell').nth(2).locator('.jp-OutputArea');
  await expect(wait.locator('.widget-hprogress')).toHaveCount(1, { timeout: 60000 });
  await expect(wait).toContainText('dark-check');
  await expect(wait.locator('.swm-job')).toHaveCount(0);
}
