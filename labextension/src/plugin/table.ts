/**
 * The jobs table in the main area: one instance, opened by a command (palette, the sidebar's
 * "Table" button) and restored after a reload by the layout restorer.
 */
import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';

import { swmIcon } from '../icon';
import { JobSync } from '../sync';
import { COLUMNS, ColumnId } from '../tablemodel';
import { JobsTable } from '../widgets/jobstable';

export const OPEN_TABLE = 'swm:open-table';

export interface IJobsTableOptions {
  app: JupyterFrontEnd;
  sync: JobSync;
  openJob: (id: string) => void;
  palette: ICommandPalette | null;
  restorer: ILayoutRestorer | null;
}

export interface IJobsTableHandle {
  /** Open (or show) the table. */
  open: () => void;
  /** Show these columns (the `tableColumns` setting); also for tables opened later. */
  setColumns: (columns: ColumnId[]) => void;
  /** Draw open tables again (e.g. after the time format changed). */
  redraw: () => void;
  /** The open table, if any. */
  current: () => JobsTable | null;
}

/** Add the table's command; returns how to open it and to apply the settings to it. */
export function addJobsTable(opts: IJobsTableOptions): IJobsTableHandle {
  const { app, sync, openJob } = opts;
  const tracker = new WidgetTracker<MainAreaWidget<JobsTable>>({ namespace: 'swm-jobs-table' });
  // A hub's single-user server knows whose it is (its jobs are that user's); the table shows owners
  // and "My jobs" there when the server says this user sees other users' jobs.
  const hubUser = PageConfig.getOption('hubServerUser') || PageConfig.getOption('hubUser');
  let hidden = new Set<ColumnId>();
  app.commands.addCommand(OPEN_TABLE, {
    label: 'Open Sky Port jobs table',
    caption: 'All jobs in a table: sortable columns, filters, pages',
    execute: () => {
      const open = tracker.currentWidget;
      if (open && !open.isDisposed) {
        app.shell.activateById(open.id);
        return open;
      }
      const content = new JobsTable({ sync, openJob, hubUser });
      content.model.hidden = new Set(hidden);
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
  return {
    open: () => void app.commands.execute(OPEN_TABLE),
    setColumns: columns => {
      hidden = new Set(COLUMNS.map(c => c.id).filter(id => !columns.includes(id)));
      tracker.forEach(w => {
        w.content.model.hidden = new Set(hidden);
        w.content.redraw();
      });
    },
    redraw: () => tracker.forEach(w => w.content.redraw()),
    current: () => {
      const w = tracker.currentWidget;
      return w && !w.isDisposed ? w.content : null;
    }
  };
}
