/**
 * The jobs table in the main area: one instance, opened by a command (palette, the sidebar's
 * "Table" button) and restored after a reload by the layout restorer.
 */
import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';

import { swmIcon } from '../icon';
import { JobSync } from '../sync';
import { JobsTable } from '../widgets/jobstable';

export const OPEN_TABLE = 'swm:open-table';

export interface IJobsTableOptions {
  app: JupyterFrontEnd;
  sync: JobSync;
  openJob: (id: string) => void;
  palette: ICommandPalette | null;
  restorer: ILayoutRestorer | null;
}

/** Add the table's command; returns a function that opens (or shows) the table. */
export function addJobsTable(opts: IJobsTableOptions): () => void {
  const { app, sync, openJob } = opts;
  const tracker = new WidgetTracker<MainAreaWidget<JobsTable>>({ namespace: 'swm-jobs-table' });
  // A hub's single-user server knows its user; the table then shows owners and "My jobs".
  const hub = !!PageConfig.getOption('hubUser');
  app.commands.addCommand(OPEN_TABLE, {
    label: 'Open Sky Port jobs table',
    caption: 'All jobs in a table: sortable columns, filters, pages',
    execute: () => {
      const open = tracker.currentWidget;
      if (open && !open.isDisposed) {
        app.shell.activateById(open.id);
        return open;
      }
      const content = new JobsTable({ sync, openJob, hub });
      const widget = new MainAreaWidget({ content });
      widget.id = 'swm-jobs-table-area';
      widget.title.label = 'Sky Port jobs';
      widget.title.icon = swmIcon;
      void tracker.add(widget);
      app.shell.add(widget, 'main');
      app.shell.activateById(widget.id);
      return widget;
    }
  });
  opts.palette?.addItem({ command: OPEN_TABLE, category: 'Sky Port' });
  void opts.restorer?.restore(tracker, { command: OPEN_TABLE, name: () => 'swm-jobs-table' });
  return () => void app.commands.execute(OPEN_TABLE);
}
