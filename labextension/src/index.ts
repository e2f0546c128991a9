/**
 * The JupyterLab plugin of swm-jupyter: Sky Port sidebar (jobs and sites), job views, the
 * submit dialog (file browser context menu, editor and notebook toolbars, command palette),
 * status bar counts and notifications when a job ends. This module only wires the parts, which
 * live in `plugin/` and `widgets/`.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { IEditorServices } from '@jupyterlab/codeeditor';
import { PageConfig } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { setTimeFormat } from './format';
import { swmIcon } from './icon';
import { CommandIDs, addCommands } from './plugin/commands';
import { connect } from './plugin/connection';
import { scriptEditor } from './plugin/editor';
import { JobOpener } from './plugin/jobopener';
import { notifyEndedJobs } from './plugin/notifications';
import { addSchedulesTab } from './plugin/schedules';
import { defaultSettings, followSettings } from './plugin/settings';
import { Submitter } from './plugin/submitter';
import { addJobsTable } from './plugin/table';
import { JobsPanel } from './widgets/jobspanel';
import { SwmSidebar } from './widgets/sidebar';
import { SitesPanel } from './widgets/sitespanel';
import { SwmStatus } from './widgets/statusbar';

export { swmIcon } from './icon';
export { COPY_FOLDER } from './plugin/jobopener';

const PLUGIN_ID = 'swm-jupyter-labextension:plugin';

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
    ILayoutRestorer,
    IEditorServices
  ],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null,
    browserFactory: IFileBrowserFactory | null,
    docManager: IDocumentManager | null,
    restorer: ILayoutRestorer | null,
    editorServices: IEditorServices | null
  ) => {
    const { serverSettings, api, store, sync } = connect();
    const settings = defaultSettings();
    const { commands, shell } = app;
    const opener = new JobOpener({
      app,
      sync,
      serverSettings,
      docManager,
      restorer,
      openJobCommand: CommandIDs.openJob
    });
    const openJob = (id: string): void => opener.openJob(id);

    const table = addJobsTable({ app, sync, openJob, palette, restorer });
    const jobs = new JobsPanel({
      sync,
      openJob,
      submit: () => void commands.execute(CommandIDs.submit),
      openTable: table.open
    });
    const sidebar = new SwmSidebar(jobs, new SitesPanel(sync));
    sidebar.id = 'swm-sidebar';
    sidebar.title.icon = swmIcon;
    sidebar.title.caption = 'Sky Port jobs';
    shell.add(sidebar, 'left', { rank: 600 });
    restorer?.add(sidebar, 'swm-sidebar');
    const showJobs = (): void => {
      shell.activateById(sidebar.id);
      sidebar.showJobs();
    };
    const showSites = (): void => {
      shell.activateById(sidebar.id);
      sidebar.showSites();
    };
    addSchedulesTab({
      sidebar,
      sync,
      serverSettings,
      openJob,
      notify: () => settings.notifications !== 'none'
    });
    void sync.start();

    // The server records the jobs of its token/cookie user under one owner name, not the random
    // name Jupyter gives this browser; its hello says which.
    notifyEndedJobs({
      store,
      when: () => settings.notifications,
      owner: () => sync.owner || (app.serviceManager.user?.identity?.username ?? ''),
      openJob
    });

    const submitter = new Submitter({
      app,
      api,
      store,
      docManager,
      browserFactory,
      defaultSite: () => settings.defaultSite,
      showJobs,
      openJob,
      editor: editorServices ? scriptEditor(editorServices) : undefined
    });
    addCommands({
      app,
      palette,
      submitter,
      showJobs,
      showSites,
      openJob,
      jobs,
      table: table.current,
      refresh: () => sync.reload()
    });

    if (statusBar) {
      const status = new SwmStatus(store, () => shell.activateById(sidebar.id));
      statusBar.registerStatusItem('swm-jupyter:status', { item: status, align: 'left', rank: 50 });
    }
    if (settingRegistry) {
      const save = followSettings(settingRegistry, PLUGIN_ID, settings, s => {
        setTimeFormat(s.timeFormat);
        jobs.setGroupBy(s.groupBy);
        jobs.list.refresh();
        table.setColumns(s.tableColumns);
        table.redraw();
      });
      table.saveColumns(columns => save('tableColumns', columns));
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

export default plugin;
