/**
 * The commands of the plugin and where they show: the command palette, the file browser's
 * context menu and a "Submit" button in notebook and editor toolbars.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, Notification, ToolbarButton } from '@jupyterlab/apputils';
import { DocumentRegistry, IDocumentWidget } from '@jupyterlab/docregistry';
import { IDisposable } from '@lumino/disposable';

import { swmIcon } from '../icon';
import { Submitter } from './submitter';

export namespace CommandIDs {
  export const submit = 'swm:submit';
  export const submitFile = 'swm:submit-file';
  export const openSidebar = 'swm:open-sidebar';
  export const openJob = 'swm:open-job';
  export const openSites = 'swm:open-sites';
}

export interface ICommandsOptions {
  app: JupyterFrontEnd;
  palette: ICommandPalette | null;
  submitter: Submitter;
  showJobs: () => void;
  showSites: () => void;
  openJob: (id: string) => void;
}

/** Add the commands, their palette and context menu entries, and the toolbar buttons. */
export function addCommands(opts: ICommandsOptions): void {
  const { app, palette, submitter } = opts;
  const { commands } = app;
  commands.addCommand(CommandIDs.submit, {
    label: 'Submit to Sky Port…',
    caption: 'Submit the current script or notebook as a Sky Port job',
    icon: args => (args.toolbar ? swmIcon : undefined),
    execute: async args => {
      const path = await submitter.currentPath(args.path);
      if (!path) {
        Notification.warning('Open or select a script or notebook to submit it to Sky Port.', {
          autoClose: 6000
        });
        return null;
      }
      return submitter.submit(path);
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
      args.id ? `Open Sky Port job ${String(args.id).slice(0, 8)}` : 'Open Sky Port job',
    execute: args => {
      if (typeof args.id === 'string') {
        opts.openJob(args.id);
      }
    }
  });
  app.contextMenu.addItem({
    command: CommandIDs.submitFile,
    selector: '.jp-DirListing-item[data-isdir="false"]',
    rank: 60
  });
  if (palette) {
    const category = 'Sky Port';
    palette.addItem({ command: CommandIDs.submit, category });
    palette.addItem({ command: CommandIDs.openSidebar, category });
    palette.addItem({ command: CommandIDs.openSites, category });
  }
  addSubmitButton(app, 'Notebook');
  addSubmitButton(app, 'Editor');
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
