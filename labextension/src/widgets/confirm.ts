/** Asking before an action touches several jobs: a dialog that lists them. */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { JobAction } from '../types';
import { el } from './dom';

/** Actions that ask before they touch more than one job. */
export const CONFIRMED: ReadonlySet<JobAction> = new Set(['cancel', 'requeue']);

/** How many jobs the dialog names before "… and N more". */
const NAMED = 12;

/**
 * True when `action` may go ahead on `jobs` (labels such as "name (id, state)"): at once for one
 * job or an action that is not confirmed, else after the user agrees in a dialog listing them.
 */
export async function confirmAction(action: JobAction, jobs: string[]): Promise<boolean> {
  if (jobs.length <= 1 || !CONFIRMED.has(action)) {
    return true;
  }
  const verb = `${action[0].toUpperCase()}${action.slice(1)}`;
  const body = el('div', 'swm-ConfirmBody');
  body.appendChild(el('p', '', `${verb} these ${jobs.length} jobs?`));
  const list = el('ul', 'swm-ConfirmList');
  for (const label of jobs.slice(0, NAMED)) {
    list.appendChild(el('li', '', label));
  }
  if (jobs.length > NAMED) {
    list.appendChild(el('li', '', `… and ${jobs.length - NAMED} more`));
  }
  body.appendChild(list);
  const result = await showDialog({
    title: `${verb} ${jobs.length} jobs`,
    body: new Widget({ node: body }),
    buttons: [
      Dialog.cancelButton({ label: 'No' }),
      Dialog.warnButton({ label: `${verb} ${jobs.length} jobs` })
    ]
  });
  return result.button.accept;
}
