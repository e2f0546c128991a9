/**
 * The jobs table in the main area: one instance, opened by a command (palette, the sidebar's
 * "Table" button) and restored after a reload by the layout restorer. Its column order is the
 * `tableColumns` setting: a moved column is saved there, and a changed setting applies at once.
 */
import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';

import { swmIcon } from '../icon';
import { JobSync } from '../sync';
import { COLUMNS, ColumnId } from '../tablemodel';
import { JobsTable } from '../widgets/jobstable';

export const OPEN_TABLE = 'swm:open-table';
export const MOVE_COLUMN_LEFT = 'swm:table-move-column-left';
export const MOVE_COLUMN_RIGHT = 'swm:table-move-column-right';

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
  /** Show these columns in this order (the `tableColumns` setting); also for tables opened later. */
  setColumns: (columns: ColumnId[]) => void;
  /** Where a column order the user made (dragging a header) is kept: the `tableColumns` setting. */
  saveColumns: (save: (columns: ColumnId[]) => void) => void;
  /** Draw open tables again (e.g. after the time format changed). */
  redraw: () => void;
  /** The open table, if any. */
  current: () => JobsTable | null;
}

/** Add the table's command; returns how to open it and to apply the settings to it. */
export function addJobsTable(opts: IJobsTableOptions): IJobsTableHandle {
  const { app, sync, openJob } = opts;
  const tracker = new WidgetTracker<MainAreaWidget<JobsTable>>({ namespace: 'swm-jobs-table' });
  // A hub's single-user server knows its user; the table then shows owners and "My jobs".
  const hub = !!PageConfig.getOption('hubUser');
  let order: ColumnId[] = COLUMNS.map(c => c.id);
  let save: ((columns: ColumnId[]) => void) | null = null;
  const columnsMoved = (columns: ColumnId[]): void => {
    order = [...columns];
    save?.(order);
  };
  app.commands.addCommand(OPEN_TABLE, {
    label: 'Open Sky Port jobs table',
    caption: 'All jobs in a table: sortable columns, filters, pages',
    execute: () => {
      const open = tracker.currentWidget;
      if (open && !open.isDisposed) {
        app.shell.activateById(open.id);
        return open;
      }
      const content = new JobsTable({ sync, openJob, hub, columnsMoved });
      content.model.setOrder(order);
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
  // A header's right-click menu moves its column (the keyboard's way; dragging is the mouse's).
  const current = (): JobsTable | null => {
    const w = tracker.currentWidget;
    return w && !w.isDisposed ? w.content : null;
  };
  for (const [command, step, label] of [
    [MOVE_COLUMN_LEFT, -1, 'Move column left'],
    [MOVE_COLUMN_RIGHT, 1, 'Move column right']
  ] as const) {
    app.commands.addCommand(command, {
      label,
      isEnabled: () => {
        const table = current();
        return !!table?.contextColumn && table.canMoveColumn(table.contextColumn, step);
      },
      execute: () => {
        const table = current();
        if (table?.contextColumn) {
          table.moveColumn(table.contextColumn, step);
        }
      }
    });
    app.contextMenu.addItem({
      command,
      selector: '.swm-JobsTable th.swm-TableHeader',
      rank: step < 0 ? 1 : 2
    });
  }
  void opts.restorer?.restore(tracker, { command: OPEN_TABLE, name: () => 'swm-jobs-table' });
  return {
    open: () => void app.commands.execute(OPEN_TABLE),
    setColumns: columns => {
      order = [...columns];
      tracker.forEach(w => {
        w.content.model.setOrder(order);
        w.content.redraw();
      });
    },
    saveColumns: fn => {
      save = fn;
    },
    redraw: () => tracker.forEach(w => w.content.redraw()),
    current: () => {
      const w = tracker.currentWidget;
      return w && !w.isDisposed ? w.content : null;
    }
  };
}
