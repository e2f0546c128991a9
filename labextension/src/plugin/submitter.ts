/**
 * Submitting a file as a job: find the file (the argument, the current document, or the file
 * browser's selection), show the submit dialog until the spec is valid or the user cancels,
 * send it, and show the new job.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';

import { IFieldError, SwmApi } from '../api';
import { errorText, jobLabel } from '../format';
import { JobStore } from '../store';
import { ISubmitForm, buildSpec, emptyForm, formFromSpec, newForm } from '../submitmodel';
import { IJob, ISite } from '../types';
import { ScriptEditorFactory, SubmitForm } from '../widgets/submitform';

export interface ISubmitterOptions {
  app: JupyterFrontEnd;
  api: SwmApi;
  store: JobStore;
  docManager: IDocumentManager | null;
  browserFactory: IFileBrowserFactory | null;
  /** The site to preselect ('' for the server's default). */
  defaultSite: () => string;
  /** Show the job list (after a submission). */
  showJobs: () => void;
  openJob: (id: string) => void;
  /** The code editor of a new job's script (JupyterLab's, with shell highlighting). */
  editor?: ScriptEditorFactory;
}

export class Submitter {
  private _opts: ISubmitterOptions;

  constructor(opts: ISubmitterOptions) {
    this._opts = opts;
  }

  /** The file selected in the file browser, or null (none, or a folder). */
  selectedFile(): string | null {
    const browser = this._opts.browserFactory?.tracker.currentWidget;
    const item = browser ? Array.from(browser.selectedItems())[0] : undefined;
    return item && item.type !== 'directory' ? item.path : null;
  }

  /** The path to submit: `path`, the current document (saved first), or the selected file. */
  async currentPath(path?: unknown): Promise<string | null> {
    if (typeof path === 'string' && path) {
      return path;
    }
    const { app, docManager, browserFactory } = this._opts;
    const current = app.shell.currentWidget;
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
  }

  /** Show the submit dialog for `path` and submit; the new job, or null if none was made. */
  async submit(path: string): Promise<IJob | null> {
    const { app, api } = this._opts;
    let siteList: ISite[];
    let defaultSite: string;
    let content: string | null = null;
    try {
      const answer = await api.sites();
      siteList = answer.sites;
      defaultSite = this._opts.defaultSite() || answer.default;
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
    let form = emptyForm(path, defaultSite);
    if (content !== null) {
      // The script's own #SWM lines, as the server reads them, are the dialog's starting values.
      try {
        const answer = await api.dryRun({
          script: content,
          ...(defaultSite ? { site: defaultSite } : {})
        });
        form = formFromSpec(form, answer.job.spec);
      } catch {
        // A script the server refuses: the dialog's own dry run shows why.
      }
    }
    return this._dialog(form, siteList, content, 'Submit to Sky Port');
  }

  /** Write a new job in the dialog (a script in the editor, or a command line) and submit it. */
  async newJob(): Promise<IJob | null> {
    let siteList: ISite[];
    let defaultSite: string;
    try {
      const answer = await this._opts.api.sites();
      siteList = answer.sites;
      defaultSite = this._opts.defaultSite() || answer.default;
    } catch (err) {
      Notification.error(`Cannot write a new job: ${errorText(err)}`, { autoClose: 10000 });
      return null;
    }
    return this._dialog(newForm(defaultSite), siteList, null, 'New Sky Port job');
  }

  /** Show the dialog until the server takes the job or the user cancels. */
  private async _dialog(
    form: ISubmitForm,
    siteList: ISite[],
    content: string | null,
    title: string
  ): Promise<IJob | null> {
    const { api, store } = this._opts;
    let errors: IFieldError[] = [];
    let message = '';
    for (;;) {
      const body = new SubmitForm({
        form,
        sites: siteList,
        api,
        content,
        errors,
        message,
        editor: this._opts.editor
      });
      const result = await showDialog({
        title,
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
        this._opts.showJobs();
        Notification.info(`Submitted ${jobLabel(job)} to ${job.site}`, {
          autoClose: 4000,
          actions: [{ label: 'Open', callback: () => this._opts.openJob(job.id) }]
        });
        return job;
      } catch (err) {
        // The refusal shows in the dialog, at its field when it names one.
        const e = err as { errors?: IFieldError[]; message?: string };
        errors = e.errors ?? [];
        message = e.message || errorText(err);
      }
    }
  }
}
