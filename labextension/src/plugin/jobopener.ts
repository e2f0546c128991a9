/**
 * Opening things from the sidebar: a job's view in the main area (one per job), and a job's
 * files: in JupyterLab when the job folder is inside the Jupyter root, else shown read-only from
 * the server (FileView), with "Save a copy" to copy one into the root and open it there.
 */
import { ILayoutRestorer, JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { ServerConnection } from '@jupyterlab/services';

import { API_PREFIX, SwmApiError } from '../api';
import { errorText } from '../format';
import { swmIcon } from '../icon';
import { JobSync } from '../sync';
import { FileView } from '../widgets/fileview';
import { JobView } from '../widgets/jobview';

/** Folder (in the Jupyter root) where job files from outside the root are copied to open them. */
export const COPY_FOLDER = 'swm-outputs';

export interface IJobOpenerOptions {
  app: JupyterFrontEnd;
  sync: JobSync;
  serverSettings: ServerConnection.ISettings;
  docManager: IDocumentManager | null;
  /** Restores the open job views after a reload (with the command that opens a job by id). */
  restorer?: ILayoutRestorer | null;
  openJobCommand?: string;
}

/** Opens job views and job files. */
export class JobOpener {
  private _opts: IJobOpenerOptions;
  private _tracker = new WidgetTracker<MainAreaWidget<JobView>>({ namespace: 'swm-job' });

  constructor(opts: IJobOpenerOptions) {
    this._opts = opts;
    if (opts.restorer && opts.openJobCommand) {
      void opts.restorer.restore(this._tracker, {
        command: opts.openJobCommand,
        args: w => ({ id: w.content.jobId }),
        name: w => w.content.jobId
      });
    }
  }

  /** Show the view of job `id`, opening it if it is not open yet. */
  openJob(id: string): void {
    const { shell } = this._opts.app;
    const widgetId = `swm-job-${id}`;
    for (const w of shell.widgets('main')) {
      if (w.id === widgetId) {
        shell.activateById(widgetId);
        return;
      }
    }
    const content = new JobView({
      sync: this._opts.sync,
      id,
      openPath: path => this.openPath(path),
      openCopy: (jobId, path) => this.viewFile(jobId, path)
    });
    const widget = new MainAreaWidget({ content });
    widget.id = widgetId;
    widget.title.icon = swmIcon;
    content.title.changed.connect(() => {
      widget.title.label = content.title.label;
      widget.title.caption = content.title.caption;
    });
    widget.title.label = content.title.label;
    void this._tracker.add(widget);
    shell.add(widget, 'main');
    shell.activateById(widgetId);
  }

  /** Show a job's file read-only from the server, without copying it into the root. */
  viewFile(jobId: string, path: string): void {
    const { shell } = this._opts.app;
    const content = new FileView({
      jobId,
      path,
      fetch: () => this._fetch(jobId, path),
      saveCopy: async () => {
        const copy = await this.copyToRoot(jobId, path);
        if (copy) {
          this.openPath(copy);
        }
      }
    });
    for (const w of shell.widgets('main')) {
      if (w.id === `${content.id}-area`) {
        content.dispose();
        shell.activateById(w.id);
        return;
      }
    }
    const widget = new MainAreaWidget({ content });
    widget.id = `${content.id}-area`;
    widget.title.label = content.title.label;
    widget.title.caption = content.title.caption;
    widget.title.icon = swmIcon;
    shell.add(widget, 'main');
    shell.activateById(widget.id);
  }

  /** The bytes of a job's file from the server. */
  private async _fetch(jobId: string, path: string): Promise<Uint8Array> {
    const { sync, serverSettings } = this._opts;
    const url = URLExt.join(serverSettings.baseUrl, API_PREFIX, sync.api.filePath(jobId, path));
    const response = await ServerConnection.makeRequest(url, {}, serverSettings);
    if (!response.ok) {
      throw await SwmApiError.fromResponse(response);
    }
    return new Uint8Array(await response.arrayBuffer());
  }

  /** Open `path` (relative to the Jupyter root) in JupyterLab. */
  openPath(path: string): void {
    const { docManager, app } = this._opts;
    if (docManager) {
      docManager.openOrReveal(path);
    } else {
      void app.commands.execute('docmanager:open', { path });
    }
  }

  /**
   * Copy a job file into `swm-outputs/<job id>/` in the Jupyter root through the contents API,
   * so JupyterLab can open it (job folders usually live outside the root). Returns its path, or
   * null (after telling the user why) when it cannot.
   */
  async copyToRoot(jobId: string, path: string): Promise<string | null> {
    const { app } = this._opts;
    try {
      const bytes = await this._fetch(jobId, path);
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
        await contents.save(target, {
          type: 'notebook',
          format: 'json',
          content: JSON.parse(text)
        });
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
}
