/**
 * The JupyterLab plugin of swm-jupyter: Sky Port sidebar (jobs and sites), job views, the
 * submit dialog (file browser context menu, editor and notebook toolbars, command palette),
 * status bar counts and notifications when a job ends.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  MainAreaWidget,
  Notification,
  ToolbarButton,
  showDialog
} from '@jupyterlab/apputils';
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { DocumentRegistry, IDocumentWidget } from '@jupyterlab/docregistry';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { IDisposable } from '@lumino/disposable';

import iconSvg from '../style/icon.svg';
import { API_PREFIX, IFieldError, SwmApi, SwmApiError } from './api';
import { errorText, jobLabel } from './format';
import { JobStore, GroupBy } from './store';
import { emptyForm, buildSpec } from './submitmodel';
import { JobSync } from './sync';
import { IJob, ISite } from './types';
import { JobView } from './widgets/jobview';
import { JobsPanel } from './widgets/jobspanel';
import { SitesPanel } from './widgets/sitespanel';
import { SwmSidebar } from './widgets/sidebar';
import { SwmStatus } from './widgets/statusbar';
import { SubmitForm } from './widgets/submitform';
import type { IWebSocketLike } from './events';

const PLUGIN_ID = 'swm-jupyter-labextension:plugin';

export const swmIcon = new LabIcon({ name: 'swm-jupyter:skyport', svgstr: iconSvg });

namespace CommandIDs {
  export const submit = 'swm:submit';
  export const submitFile = 'swm:submit-file';
  export const openSidebar = 'swm:open-sidebar';
  export const openJob = 'swm:open-job';
  export const openSites = 'swm:open-sites';
}

interface ISwmSettings {
  defaultSite: string;
  notifications: boolean;
  groupBy: GroupBy;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Sky Port sidebar: live jobs, submit dialog, logs and sites.',
  autoStart: true,
  optional: [
    ICommandPalette,
    ISettingRegistry,
    IStatusBar,
    IFileBrowserFactory,
    IDocumentManager,
    ILayoutRestorer
  ],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    browserFactory: IFileBrowserFactory | null,
    docManager: IDocumentManager | null,
    restorer: ILayoutRestorer | null
  ) => {
    const serverSettings = ServerConnection.makeSettings();
    const api = new SwmApi((path, init) =>
      ServerConnection.makeRequest(
        URLExt.join(serverSettings.baseUrl, API_PREFIX, path),
        init,
        serverSettings
      )
    );
    const store = new JobStore();
    const sync = new JobSync({
      api,
      store,
      wsUrl: URLExt.join(serverSettings.wsUrl, API_PREFIX, 'events'),
      token: serverSettings.token || undefined,
      socketFactory: url => new WebSocket(url) as unknown as IWebSocketLike
    });
    const settings: ISwmSettings = { defaultSite: '', notifications: true, groupBy: 'none' };
    const { commands, shell } = app;

    const openJob = (id: string): void => {
      const widgetId = `swm-job-${id}`;
      for (const w of shell.widgets('main')) {
        if (w.id === widgetId) {
          shell.activateById(widgetId);
          return;
        }
      }
      const content = new JobView({
        sync,
        id,
        openPath: path => {
          if (docManager) {
            docManager.openOrReveal(path);
          } else {
            void commands.execute('docmanager:open', { path });
          }
        },
        openCopy: (jobId, path) =>
          void openCopy(app, api, jobId, path, serverSettings).then(copy => {
            if (copy) {
              if (docManager) {
                docManager.openOrReveal(copy);
              } else {
                void commands.execute('docmanager:open', { path: copy });
              }
            }
          })
      });
      const widget = new MainAreaWidget({ content });
      widget.id = widgetId;
      widget.title.icon = swmIcon;
      content.title.changed.connect(() => {
        widget.title.label = content.title.label;
        widget.title.caption = content.title.caption;
      });
      widget.title.label = content.title.label;
      shell.add(widget, 'main');
      shell.activateById(widgetId);
    };

    const jobs = new JobsPanel({
      sync,
      openJob,
      submit: () => void commands.execute(CommandIDs.submit)
    });
    const sites = new SitesPanel(sync);
    const sidebar = new SwmSidebar(jobs, sites);
    sidebar.id = 'swm-sidebar';
    sidebar.title.icon = swmIcon;
    sidebar.title.caption = 'Sky Port jobs';
    shell.add(sidebar, 'left', { rank: 600 });
    restorer?.add(sidebar, 'swm-sidebar');
    void sync.start();

    // Notifications when a job ends.
    // The server records the jobs of its token/cookie user under one owner name, not the random
    // name Jupyter gives this browser; its hello says which.
    const username = (): string => sync.owner || (app.serviceManager.user?.identity?.username ?? '');
    store.changed.connect((_, change) => {
      if (!settings.notifications) {
        return;
      }
      for (const job of change.ended) {
        if (job.owner && username() && job.owner !== username()) {
          continue;
        }
        const type =
          job.state === 'finished' && (job.exit_code ?? 0) === 0
            ? 'success'
            : job.state === 'canceled'
              ? 'warning'
              : 'error';
        const how =
          job.state === 'finished'
            ? `finished${job.exit_code ? ` with exit code ${job.exit_code}` : ''}`
            : job.state === 'error'
              ? `failed${job.state_details ? `: ${job.state_details}` : ''}`
              : 'was canceled';
        Notification.emit(`Job ${jobLabel(job)} ${how}`, type, {
          autoClose: 8000,
          actions: [{ label: 'Open', callback: () => openJob(job.id) }]
        });
      }
    });

    /** The path to submit: the argument, the current document, or the file browser's selection. */
    const currentPath = async (args: Record<string, unknown>): Promise<string | null> => {
      if (typeof args.path === 'string' && args.path) {
        return args.path;
      }
      const current = shell.currentWidget;
      const context = current && docManager ? docManager.contextForWidget(current) : undefined;
      if (context) {
        if (context.model.dirty) {
          await context.save();
        }
        return context.path;
      }
      const browser = browserFactory?.tracker.currentWidget;
      if (browser) {
        const item = Array.from(browser.selectedItems()).find(i => i.type !== 'directory');
        if (item) {
          return item.path;
        }
      }
      return null;
    };

    const submitPath = async (path: string): Promise<IJob | null> => {
      let siteList: ISite[];
      let defaultSite: string;
      let content: string | null = null;
      try {
        const answer = await api.sites();
        siteList = answer.sites;
        defaultSite = settings.defaultSite || answer.default;
        if (!path.endsWith('.ipynb')) {
          const model = await app.serviceManager.contents.get(path, {
            content: true,
            format: 'text',
            type: 'file'
          });
          content = String(model.content ?? '');
        }
      } catch (err) {
        Notification.error(`Cannot submit ${path}: ${errorText(err)}`, { autoClose: 10000 });
        return null;
      }
      const form = emptyForm(path, defaultSite);
      let errors: IFieldError[] = [];
      let message = '';
      for (;;) {
        const body = new SubmitForm({ form, sites: siteList, api, content, errors, message });
        const result = await showDialog({
          title: 'Submit to Sky Port',
          body,
          buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Submit' })],
          focusNodeSelector: 'input[name="name"]'
        });
        if (!result.button.accept) {
          return null;
        }
        const built = buildSpec(
          form,
          content,
          siteList.find(s => s.name === form.site),
          PageConfig.getOption('serverRoot')
        );
        if (built.errors.length) {
          errors = built.errors;
          message = 'Please correct the fields below.';
          continue;
        }
        try {
          const job = await api.submit(built.spec);
          store.upsert([job]);
          shell.activateById(sidebar.id);
          sidebar.showJobs();
          Notification.info(`Submitted ${jobLabel(job)} to ${job.site}`, {
            autoClose: 4000,
            actions: [{ label: 'Open', callback: () => openJob(job.id) }]
          });
          return job;
        } catch (err) {
          const e = err as { errors?: IFieldError[]; message?: string };
          errors = e.errors ?? [];
          message = e.message ?? errorText(err);
        }
      }
    };

    commands.addCommand(CommandIDs.submit, {
      label: 'Submit to Sky Port…',
      caption: 'Submit the current script or notebook as a Sky Port job',
      icon: args => (args.toolbar ? swmIcon : undefined),
      execute: async args => {
        const path = await currentPath(args);
        if (!path) {
          Notification.warning('Open or select a script or notebook to submit it to Sky Port.', {
            autoClose: 6000
          });
          return null;
        }
        return submitPath(path);
      }
    });
    commands.addCommand(CommandIDs.submitFile, {
      label: 'Submit to Sky Port…',
      caption: 'Submit the selected file as a Sky Port job',
      icon: swmIcon,
      isVisible: () => {
        const browser = browserFactory?.tracker.currentWidget;
        const item = browser ? Array.from(browser.selectedItems())[0] : undefined;
        return !!item && item.type !== 'directory';
      },
      execute: async () => {
        const browser = browserFactory?.tracker.currentWidget;
        const item = browser ? Array.from(browser.selectedItems())[0] : undefined;
        if (!item) {
          return null;
        }
        return submitPath(item.path);
      }
    });
    commands.addCommand(CommandIDs.openSidebar, {
      label: 'Show Sky Port jobs',
      execute: () => {
        shell.activateById(sidebar.id);
        sidebar.showJobs();
      }
    });
    commands.addCommand(CommandIDs.openSites, {
      label: 'Show Sky Port sites',
      execute: () => {
        shell.activateById(sidebar.id);
        sidebar.showSites();
      }
    });
    commands.addCommand(CommandIDs.openJob, {
      label: args =>
        args.id ? `Open Sky Port job ${String(args.id).slice(0, 8)}` : 'Open Sky Port job',
      execute: args => {
        if (typeof args.id === 'string') {
          openJob(args.id);
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

    // Toolbar buttons in notebooks and editors.
    const addButton = (factory: string): void => {
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
                await commands.execute(CommandIDs.submit, { path: context.path });
              })();
            }
          });
          widget.toolbar.insertItem(10, 'swm-submit', button);
          return button;
        }
      });
    };
    addButton('Notebook');
    addButton('Editor');

    if (statusBar) {
      const status = new SwmStatus(store, () => shell.activateById(sidebar.id));
      statusBar.registerStatusItem('swm-jupyter:status', {
        item: status,
        align: 'left',
        rank: 50
      });
    }

    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(s => {
          const apply = (): void => {
            settings.defaultSite = (s.get('defaultSite').composite as string) ?? '';
            settings.notifications = (s.get('notifications').composite as boolean) ?? true;
            settings.groupBy = ((s.get('groupBy').composite as string) ?? 'none') as GroupBy;
            jobs.setGroupBy(settings.groupBy);
          };
          apply();
          s.changed.connect(apply);
        })
        .catch(err => console.warn('swm-jupyter: cannot load settings', err));
    }

    if (PageConfig.getOption('exposeAppInBrowser') === 'true') {
      (window as unknown as Record<string, unknown>).swmJupyter = {
        store,
        sync,
        api,
        openJob,
        jobs
      };
    }
  }
};

/** Folder (in the Jupyter root) where job files from outside the root are copied to open them. */
export const COPY_FOLDER = 'swm-outputs';

/**
 * Copy a job file into `swm-outputs/<job id>/` in the Jupyter root through the contents API,
 * so JupyterLab can open it (job folders usually live outside the root). Returns its path.
 */
async function openCopy(
  app: JupyterFrontEnd,
  api: SwmApi,
  jobId: string,
  path: string,
  settings: ServerConnection.ISettings
): Promise<string | null> {
  try {
    const url = URLExt.join(settings.baseUrl, API_PREFIX, api.filePath(jobId, path));
    const response = await ServerConnection.makeRequest(url, {}, settings);
    if (!response.ok) {
      throw await SwmApiError.fromResponse(response);
    }
    const bytes = new Uint8Array(await response.arrayBuffer());
    const contents = app.serviceManager.contents;
    const dirs = [COPY_FOLDER, `${COPY_FOLDER}/${jobId.slice(0, 8)}`];
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      dirs.push(`${dirs[1]}/${parts.slice(0, i).join('/')}`);
    }
    for (const dir of dirs) {
      try {
        await contents.get(dir, { content: false });
      } catch {
        await contents.save(dir, { type: 'directory' });
      }
    }
    const target = `${dirs[1]}/${path}`;
    let text: string | null = null;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      text = null;
    }
    if (path.endsWith('.ipynb') && text !== null) {
      await contents.save(target, { type: 'notebook', format: 'json', content: JSON.parse(text) });
    } else if (text !== null) {
      await contents.save(target, { type: 'file', format: 'text', content: text });
    } else {
      let binary = '';
      for (let i = 0; i < bytes.length; i += 0x8000) {
        binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      }
      await contents.save(target, { type: 'file', format: 'base64', content: btoa(binary) });
    }
    return target;
  } catch (err) {
    Notification.error(`Cannot open ${path}: ${errorText(err)}`, { autoClose: 10000 });
    return null;
  }
}

export default plugin;
