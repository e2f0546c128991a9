/**
 * "Submit…" with nothing open writes a new job in place: a script in JupyterLab's code editor
 * (shell highlighting), or a command line, with the same fields and the server's dry run.
 */
import { expect, Page, test } from '@playwright/test';

import { openLab, row, runCommand } from '../helpers';

/** Close every main-area tab and clear the file browser's selection: nothing to submit. */
async function nothingOpen(page: Page): Promise<void> {
  await runCommand(page, 'application:close-all');
  // JupyterLab shows its Launcher when nothing else is open: no document to submit.
  await expect(page.locator('#jp-main-dock-panel .lm-TabBar-tab')).toHaveText(['Launcher']);
}

test('Submit… with nothing open writes a script in the editor and runs it', async ({ page }) => {
  await openLab(page);
  await nothingOpen(page);
  await page.locator('#swm-sidebar .swm-SubmitButton').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog.locator('.jp-Dialog-header')).toContainText('New Sky Port job');
  const editor = dialog.locator('.swm-NewJob-editor .cm-editor');
  await expect(editor).toBeVisible();
  // The script's own directives are read by the server's dry run, as for a file.
  await expect(dialog.locator('.swm-Preview')).toContainText('#SWM walltime 00:10:00');
  await editor.locator('.cm-content').click();
  await page.keyboard.press('Control+a');
  await page.keyboard.type('#!/bin/bash\n#SWM name in-place\necho "in place $((6 * 7))"\n');
  await expect(dialog.locator('.swm-Preview')).toContainText('#SWM name in-place');
  // Shell highlighting: the comment and the string are styled spans, not plain text.
  await expect.poll(() => editor.locator('.cm-line span').count()).toBeGreaterThan(1);
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  await expect(dialog).toHaveCount(0);
  const r = row(page, 'in-place');
  await expect(r).toHaveAttribute('data-state', 'finished', { timeout: 60000 });
  await r.locator('.swm-JobRow-name').click();
  const view = page.locator('.swm-JobView').filter({ hasText: 'in-place' });
  await expect(view.locator('.swm-LogText')).toContainText('in place 42');
});

test('a command line is split into arguments as a shell would, and a bad one named', async ({
  page
}) => {
  await openLab(page);
  await nothingOpen(page);
  await page.locator('#swm-sidebar .swm-SubmitButton').click();
  const dialog = page.locator('.jp-Dialog');
  await dialog.locator('input[value="command"]').check();
  const line = dialog.locator('input[name="command"]');
  await line.fill("bash -c \"echo 'one arg'");
  await expect(dialog.locator('input[name="command"] + .swm-FieldError')).toContainText(
    'quote is not closed'
  );
  await line.fill('bash -c "echo command-line ok"');
  await dialog.locator('input[name="name"]').fill('cmd-line');
  await expect(dialog.locator('.swm-Preview')).toContainText('#SWM name cmd-line');
  await dialog.locator('.jp-Dialog-button.jp-mod-accept').click();
  const r = row(page, 'cmd-line');
  await expect(r).toHaveAttribute('data-state', 'finished', { timeout: 60000 });
  await r.locator('.swm-JobRow-name').click();
  const view = page.locator('.swm-JobView').filter({ hasText: 'cmd-line' });
  await expect(view.locator('.swm-LogText')).toContainText('command-line ok');
});
