/**
 * The commands of the plugin and where they show: the command palette, the file browser's and
 * the job list's context menus, keyboard shortcuts (the settings schema) and a "Submit" button in
 * notebook and editor toolbars. The selection commands act on the sidebar's job list, or on the
 * jobs table when run from the table's right-click menu (argument `target: 'table'`).
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, InputDialog, ToolbarButton } from '@jupyterlab/apputils';
import { DocumentRegistry, IDocumentWidget } from '@jupyterlab/docregistry';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { IDisposable } from '@lumino/disposable';

import { swmIcon } from '../icon';
import { JobAction } from '../types';
import { Submitter } from './submitter';

export namespace CommandIDs {
  export const submit = 'swm:submit';
  export const submitFile = 'swm:submit-file';
  export const newJob = 'swm:new-job';
  export const openSidebar = 'swm:open-sidebar';
  export const openJob = 'swm:open-job';
  export const openSites = 'swm:open-sites';
  export const refresh = 'swm:refresh';
  export const cancel = 'swm:cancel-selected';
  export const hold = 'swm:hold-selected';
  export const release = 'swm:release-selected';
  export const requeue = 'swm:requeue-selected';
  export const openSelected = 'swm:open-selected';
  export const deleteSelected = 'swm:delete-selected';
}

/** The command of each action on the selected jobs. */
export const ACTION_COMMANDS: Record<JobAction, string> = {
  cancel: CommandIDs.cancel,
  hold: CommandIDs.hold,
  release: CommandIDs.release,
  requeue: CommandIDs.requeue
};

/** What the selection commands act on: the sidebar's job list or the jobs table. */
export interface ISelectionTarget {
  /** The selected job ids (what is shown and ticked). */
  readonly selected: string[];
  runAction(action: JobAction): Promise<void>;
  /** The job under the last right-click, if any. */
  readonly contextJob: string | null;
  /** Whether every selected job has ended (only those may be deleted); absent: no deleting. */
  readonly canDelete?: boolean;
  /** Delete the selected (ended) jobs' records and folders, asking first. */
  deleteSelected?: () => Promise<void>;
}

export interface ICommandsOptions {
  app: JupyterFrontEnd;
  palette: ICommandPalette | null;
  submitter: Submitter;
  showJobs: () => void;
  showSites: () => void;
  openJob: (id: string) => void;
  /** The job list whose selection the action commands act on. */
  jobs: ISelectionTarget;
  /** The open jobs table, if any: the target of the commands run with `target: 'table'`. */
  table: () => ISelectionTarget | null;
  /** Load the job list again from the server. */
  refresh: () => Promise<void>;
}

/** Add the commands, their palette and context menu entries, and the toolbar buttons. */
export function addCommands(opts: ICommandsOptions): void {
  const { app, palette, submitter } = opts;
  const { commands } = app;
  // The table when its menu runs the command (and it is open), else the sidebar's list.
  const target = (args: ReadonlyPartialJSONObject): ISelectionTarget =>
    (args.target === 'table' ? opts.table() : null) ?? opts.jobs;
  commands.addCommand(CommandIDs.submit, {
    label: 'Submit to Sky Port…',
    caption: 'Submit the current script or notebook as a Sky Port job',
    icon: args => (args.toolbar ? swmIcon : undefined),
    execute: async args => {
      const path = await submitter.currentPath(args.path);
      // Nothing open or selected: write a new job in place.
      return path ? submitter.submit(path) : submitter.newJob();
    }
  });
  commands.addCommand(CommandIDs.submitFile, {
    label: 'Submit to Sky Port…',
    caption: 'Submit the selected file as a Sky Port job',
    icon: swmIcon,
    isVisible: () => submitter.selectedFile() !== null,
    execute: async () => {
      const path = submitter.selectedFile();
      return path ? submitter.submit(path) : null;
    }
  });
  commands.addCommand(CommandIDs.newJob, {
    label: 'New Sky Port job…',
    caption: 'Write a job script or a command line and submit it',
    execute: () => submitter.newJob()
  });
  commands.addCommand(CommandIDs.openSidebar, {
    label: 'Show Sky Port jobs',
    execute: () => opts.showJobs()
  });
  commands.addCommand(CommandIDs.openSites, {
    label: 'Show Sky Port sites',
    execute: () => opts.showSites()
  });
  commands.addCommand(CommandIDs.openJob, {
    label: args =>
      args.id ? `Open Sky Port job ${String(args.id).slice(0, 8)}` : 'Open Sky Port job by id…',
    execute: async args => {
      let id = typeof args.id === 'string' ? args.id : '';
      if (!id) {
        const answer = await InputDialog.getText({
          title: 'Open Sky Port job',
          label: 'Job id (or its first characters)',
          placeholder: 'e.g. 3f2a9c1b'
        });
        id = answer.button.accept ? (answer.value ?? '').trim() : '';
      }
      if (id) {
        opts.openJob(id);
      }
    }
  });
  commands.addCommand(CommandIDs.refresh, {
    label: 'Refresh Sky Port jobs',
    caption: 'Load the job list again from the server',
    execute: () => opts.refresh()
  });
  for (const [action, id] of Object.entries(ACTION_COMMANDS) as [JobAction, string][]) {
    const verb = action[0].toUpperCase() + action.slice(1);
    commands.addCommand(id, {
      label: args => selectionLabel(verb, target(args).selected.length),
      caption: `${verb} the jobs selected in the Sky Port sidebar`,
      isEnabled: args => target(args).selected.length > 0,
      execute: args => target(args).runAction(action)
    });
  }
  commands.addCommand(CommandIDs.openSelected, {
    label: 'Open job',
    isEnabled: args => target(args).contextJob !== null,
    execute: args => {
      const id = target(args).contextJob;
      if (id) {
        opts.openJob(id);
      }
    }
  });
  commands.addCommand(CommandIDs.deleteSelected, {
    label: args => selectionLabel('Delete', target(args).selected.length),
    caption: "Delete the selected ended jobs' records and folders",
    isVisible: args => !!target(args).deleteSelected,
    isEnabled: args => !!target(args).canDelete,
    execute: args => target(args).deleteSelected?.()
  });
  // The job list's right-click menu, through JupyterLab's context-menu registry.
  const rowSelector = '#swm-sidebar .swm-JobRow[data-job-id]';
  app.contextMenu.addItem({ command: CommandIDs.openSelected, selector: rowSelector, rank: 1 });
  app.contextMenu.addItem({ type: 'separator', selector: rowSelector, rank: 2 });
  Object.values(ACTION_COMMANDS).forEach((command, i) =>
    app.contextMenu.addItem({ command, selector: rowSelector, rank: 3 + i })
  );
  // The jobs table's menu: the same commands, on the table's selection.
  const tableRow = '.swm-JobsTable .swm-TableRow[data-job-id]';
  const args = { target: 'table' };
  app.contextMenu.addItem({ command: CommandIDs.openSelected, selector: tableRow, rank: 1, args });
  app.contextMenu.addItem({ type: 'separator', selector: tableRow, rank: 2 });
  [...Object.values(ACTION_COMMANDS), CommandIDs.deleteSelected].forEach((command, i) =>
    app.contextMenu.addItem({ command, selector: tableRow, rank: 3 + i, args })
  );
  app.contextMenu.addItem({
    command: CommandIDs.submitFile,
    selector: '.jp-DirListing-item[data-isdir="false"]',
    rank: 60
  });
  if (palette) {
    const category = 'Sky Port';
    palette.addItem({ command: CommandIDs.submit, category });
    palette.addItem({ command: CommandIDs.newJob, category });
    palette.addItem({ command: CommandIDs.openSidebar, category });
    palette.addItem({ command: CommandIDs.openSites, category });
    palette.addItem({ command: CommandIDs.openJob, category });
    palette.addItem({ command: CommandIDs.refresh, category });
    for (const command of Object.values(ACTION_COMMANDS)) {
      palette.addItem({ command, category });
    }
  }
  addSubmitButton(app, 'Notebook');
  addSubmitButton(app, 'Editor');
}

/** A selection command's label: "Cancel 2 selected jobs", or "Cancel selected jobs" for none. */
function selectionLabel(verb: string, n: number): string {
  return n ? `${verb} ${n} selected job${n === 1 ? '' : 's'}` : `${verb} selected jobs`;
}

/** A "Submit" button in the toolbar of the documents of widget factory `factory`. */
function addSubmitButton(app: JupyterFrontEnd, factory: string): void {
  app.docRegistry.addWidgetExtension(factory, {
    createNew: (
      widget: IDocumentWidget,
      context: DocumentRegistry.IContext<DocumentRegistry.IModel>
    ): IDisposable => {
      const button = new ToolbarButton({
        icon: swmIcon,
        label: 'Submit',
        className: 'swm-ToolbarSubmit',
        tooltip: 'Submit to Sky Port…',
        onClick: () => {
          void (async () => {
            if (context.model.dirty) {
              await context.save();
            }
            await app.commands.execute(CommandIDs.submit, { path: context.path });
          })();
        }
      });
      widget.toolbar.insertItem(10, 'swm-submit', button);
      return button;
    }
  });
}
