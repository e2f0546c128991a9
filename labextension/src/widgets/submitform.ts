/**
 * The body of the submit dialog: site, resources, flavor table with prices, notebook parameters,
 * and a preview of the job as the server would run it. The server's dry run
 * (`POST /jobs?dry_run=1`) checks the spec as the user types: its field errors show at their
 * fields, its spec is the preview (the script's own `#SWM` lines included), its cost the estimate.
 */
import { PageConfig } from '@jupyterlab/coreutils';
import { IDisposable } from '@lumino/disposable';
import { Widget } from '@lumino/widgets';

import { IFieldError, SwmApi } from '../api';
import { errorText } from '../format';
import { ISubmitForm, buildSpec, specLines } from '../submitmodel';
import { ISite } from '../types';
import { el } from './dom';

type TextField = 'name' | 'nodes' | 'cpus' | 'memory' | 'gpus' | 'walltime' | 'containerImage';

const FIELDS: { key: TextField; label: string; limit?: keyof ISite['limits']; hint: string }[] = [
  { key: 'name', label: 'Name', hint: '' },
  { key: 'nodes', label: 'Nodes', limit: 'nodes', hint: '1' },
  { key: 'cpus', label: 'CPUs', limit: 'cpus', hint: '1' },
  { key: 'memory', label: 'Memory', limit: 'memory', hint: 'e.g. 4G' },
  { key: 'gpus', label: 'GPUs', limit: 'gpus', hint: '0' },
  { key: 'walltime', label: 'Walltime', limit: 'walltime', hint: 'HH:MM:SS' },
  { key: 'containerImage', label: 'Container image', hint: 'optional' }
];

const SPEC_FIELD: Record<string, string> = {
  name: 'name',
  nodes: 'resources.nodes',
  cpus: 'resources.cpus',
  memory: 'resources.memory',
  gpus: 'resources.gpus',
  walltime: 'resources.walltime',
  containerImage: 'container_image'
};

/**
 * Makes a code editor for a new job's script in `host` (JupyterLab's editor, shell highlighting),
 * starting with `text`; `changed` gets the text after each edit.
 */
export type ScriptEditorFactory = (
  host: HTMLElement,
  text: string,
  changed: (text: string) => void
) => IDisposable;

export class SubmitForm extends Widget {
  readonly form: ISubmitForm;
  private _sites: ISite[];
  private _api: SwmApi;
  private _content: string | null;
  private _inputs = new Map<string, HTMLInputElement>();
  private _fieldErrors = new Map<string, HTMLElement>();
  private _siteSelect: HTMLSelectElement;
  private _siteInfo: HTMLElement;
  private _flavors: HTMLElement;
  private _images: HTMLSelectElement;
  private _imagesRow: HTMLElement;
  private _params: HTMLTextAreaElement;
  private _preview: HTMLPreElement;
  private _cost: HTMLElement;
  private _message: HTMLElement;
  private _dryRunTimer = 0;
  private _dryRunSeq = 0;
  /** What the server said when it refused the last submission: shown until the user edits. */
  private _refusal: { errors: IFieldError[]; message: string } | null;
  private _editor: IDisposable | null = null;

  constructor(opts: {
    form: ISubmitForm;
    sites: ISite[];
    api: SwmApi;
    content: string | null;
    errors?: IFieldError[];
    message?: string;
    /** The editor of a new job's script (a plain text area without it). */
    editor?: ScriptEditorFactory;
  }) {
    super();
    this.addClass('swm-SubmitForm');
    this.form = opts.form;
    this._sites = opts.sites;
    this._api = opts.api;
    this._content = opts.content;

    const file = el('div', 'swm-SubmitForm-file');
    // Errors about the file itself (an empty script, a notebook that cannot be read).
    const fileErr = el('div', 'swm-FieldError');
    if (opts.form.kind === 'new') {
      file.appendChild(this._newJobSource(opts.editor));
    } else {
      file.textContent = `${opts.form.kind === 'notebook' ? 'Notebook' : 'Script'}: ${opts.form.path}`;
      this._fieldErrors.set(opts.form.kind === 'notebook' ? 'notebook' : 'script', fileErr);
    }
    this._message = el('div', 'swm-SubmitForm-message');
    this._refusal =
      opts.errors?.length || opts.message
        ? { errors: opts.errors ?? [], message: opts.message ?? '' }
        : null;

    const grid = el('div', 'swm-SubmitForm-grid');
    const siteLabel = el('label', '', 'Site');
    this._siteSelect = el('select', 'jp-mod-styled swm-SiteSelect');
    this._siteSelect.name = 'site';
    for (const s of this._sites) {
      const o = el('option', '', `${s.name} (${s.kind})${s.healthy ? '' : ' — unavailable'}`);
      o.value = s.name;
      this._siteSelect.appendChild(o);
    }
    if (!this._sites.some(s => s.name === this.form.site) && this._sites.length) {
      this.form.site = this._sites[0].name;
    }
    this._siteSelect.value = this.form.site;
    this._siteSelect.addEventListener('change', () => {
      this.form.site = this._siteSelect.value;
      this.form.flavor = '';
      this.form.cloudImage = '';
      this._renderSite();
      this._changed();
    });
    grid.append(siteLabel, this._siteSelect);
    this._siteInfo = el('div', 'swm-SiteInfo');
    grid.append(el('span', ''), this._siteInfo);
    for (const f of FIELDS) {
      const label = el('label', '', f.label);
      const input = el('input', 'jp-mod-styled');
      input.name = f.key;
      input.value = this.form[f.key];
      input.addEventListener('input', () => {
        this.form[f.key] = input.value;
        this._changed();
      });
      label.htmlFor = input.id = `swm-submit-${f.key}`;
      const cell = el('div', 'swm-SubmitForm-cell');
      const err = el('div', 'swm-FieldError');
      cell.append(input, err);
      this._inputs.set(f.key, input);
      this._fieldErrors.set(SPEC_FIELD[f.key], err);
      grid.append(label, cell);
    }
    this._imagesRow = el('div', 'swm-SubmitForm-images');
    this._images = el('select', 'jp-mod-styled');
    this._images.name = 'cloudImage';
    this._images.addEventListener('change', () => {
      this.form.cloudImage = this._images.value;
      this._changed();
    });
    this._imagesRow.append(el('label', '', 'Cloud image '), this._images);

    this._flavors = el('div', 'swm-Flavors');
    this._params = el('textarea', 'jp-mod-styled swm-Params');
    this._params.name = 'parameters';
    this._params.rows = 3;
    this._params.placeholder = 'alpha = 0.5\nepochs = 10';
    this._params.value = this.form.parameters;
    this._params.addEventListener('input', () => {
      this.form.parameters = this._params.value;
      this._changed();
    });
    const paramsErr = el('div', 'swm-FieldError');
    this._fieldErrors.set('parameters', paramsErr);
    const paramsBox = el('div', 'swm-SubmitForm-params');
    paramsBox.append(
      el('label', '', 'Notebook parameters (name = value, one a line)'),
      this._params,
      paramsErr
    );
    paramsBox.hidden = this.form.kind !== 'notebook';

    this._cost = el('div', 'swm-Cost');
    this._preview = el('pre', 'swm-Preview');
    this.node.append(
      file,
      fileErr,
      this._message,
      grid,
      this._imagesRow,
      this._flavors,
      paramsBox,
      this._cost,
      el('div', 'swm-SubmitForm-previewLabel', 'The job as the server reads it (#SWM lines)'),
      this._preview
    );
    this._preview.textContent = 'Checking with the server…';
    this._renderSite();
    this.showErrors([]);
    void this._dryRun();
  }

  get site(): ISite | undefined {
    return this._sites.find(s => s.name === this.form.site);
  }

  /**
   * Show field errors next to their inputs and `message` on top, with the refusal of the last
   * submission until the user edits the form.
   */
  showErrors(errors: IFieldError[], message = ''): void {
    for (const node of this._fieldErrors.values()) {
      node.textContent = '';
    }
    if (this._refusal) {
      errors = [...this._refusal.errors, ...errors];
      message = [this._refusal.message, message].filter(Boolean).join('\n');
    }
    const other: string[] = [];
    const seen = new Set<string>();
    for (const e of errors) {
      const key = `${e.field}\n${e.message}`;
      if (seen.has(key)) {
        continue;
      }
      seen.add(key);
      const node = this._fieldErrors.get(e.field);
      if (node) {
        node.textContent = node.textContent ? `${node.textContent}; ${e.message}` : e.message;
      } else {
        other.push(e.field ? `${e.field}: ${e.message}` : e.message);
      }
    }
    const text = [message, ...other].filter(Boolean).join('\n');
    this._message.textContent = text;
    this._message.hidden = !text;
  }

  dispose(): void {
    window.clearTimeout(this._dryRunTimer);
    this._editor?.dispose();
    super.dispose();
  }

  /** A new job's source: a script in the editor, or a command line. */
  private _newJobSource(editor?: ScriptEditorFactory): HTMLElement {
    const box = el('div', 'swm-NewJob');
    const modes = el('div', 'swm-NewJob-modes');
    const scriptBox = el('div', 'swm-NewJob-script');
    const commandBox = el('div', 'swm-NewJob-command');
    for (const [mode, label] of [
      ['script', 'Script'],
      ['command', 'Command line']
    ] as const) {
      const l = el('label', 'swm-NewJob-mode');
      const radio = el('input', '');
      radio.type = 'radio';
      radio.name = 'swm-new-job-mode';
      radio.value = mode;
      radio.checked = this.form.mode === mode;
      radio.addEventListener('change', () => {
        this.form.mode = mode;
        scriptBox.hidden = mode !== 'script';
        commandBox.hidden = mode !== 'command';
        this._changed();
      });
      l.append(radio, document.createTextNode(` ${label}`));
      modes.appendChild(l);
    }
    const host = el('div', 'swm-NewJob-editor');
    const changed = (text: string): void => {
      this.form.script = text;
      this._changed();
    };
    if (editor) {
      this._editor = editor(host, this.form.script, changed);
    } else {
      const area = el('textarea', 'jp-mod-styled swm-NewJob-text');
      area.value = this.form.script;
      area.rows = 10;
      area.addEventListener('input', () => changed(area.value));
      host.appendChild(area);
    }
    const scriptErr = el('div', 'swm-FieldError');
    this._fieldErrors.set('script', scriptErr);
    scriptBox.append(host, scriptErr);
    const command = el('input', 'jp-mod-styled swm-NewJob-commandLine');
    command.name = 'command';
    command.placeholder = 'python train.py --epochs 10';
    command.value = this.form.command;
    command.addEventListener('input', () => {
      this.form.command = command.value;
      this._changed();
    });
    const commandErr = el('div', 'swm-FieldError');
    this._fieldErrors.set('command', commandErr);
    commandBox.append(command, commandErr);
    scriptBox.hidden = this.form.mode !== 'script';
    commandBox.hidden = this.form.mode !== 'command';
    box.append(modes, scriptBox, commandBox);
    return box;
  }

  private _renderSite(): void {
    const site = this.site;
    const limits = site?.limits ?? {};
    for (const f of FIELDS) {
      const input = this._inputs.get(f.key);
      if (!input) {
        continue;
      }
      const limit = f.limit ? limits[f.limit] : null;
      input.placeholder = limit
        ? `${f.hint} (max ${limit}${f.limit === 'memory' ? ' MB' : f.limit === 'walltime' ? ' s' : ''})`
        : f.hint;
    }
    this._siteInfo.textContent = site
      ? `${site.description || site.kind}${site.healthy ? '' : ` — ${site.health_message || 'unavailable'}`}`
      : 'No site available';
    this._siteInfo.classList.toggle('swm-mod-error', !!site && !site.healthy);
    // Flavors: a table with one radio per row.
    this._flavors.textContent = '';
    const flavors = site?.flavors ?? [];
    if (flavors.length) {
      const table = el('table', 'swm-FlavorTable');
      const head = el('tr', '');
      for (const h of ['', 'Flavor', 'CPUs', 'GPUs', 'Memory', 'Price/h']) {
        head.appendChild(el('th', '', h));
      }
      table.appendChild(head);
      for (const f of flavors) {
        const tr = el('tr', '');
        const radio = el('input', '');
        radio.type = 'radio';
        radio.name = 'swm-flavor';
        radio.value = f.id;
        radio.checked = this.form.flavor === f.id;
        radio.addEventListener('change', () => {
          this.form.flavor = f.id;
          this._changed();
        });
        const td = el('td', '');
        td.appendChild(radio);
        tr.append(
          td,
          el('td', '', f.name),
          el('td', '', String(f.cpus)),
          el('td', '', String(f.gpus)),
          el('td', '', `${f.mem} MB`),
          el('td', '', f.price.toFixed(2))
        );
        tr.addEventListener('click', () => {
          radio.checked = true;
          this.form.flavor = f.id;
          this._changed();
        });
        table.appendChild(tr);
      }
      this._flavors.appendChild(table);
    }
    const images = site?.images ?? [];
    this._imagesRow.hidden = images.length === 0;
    this._images.textContent = '';
    const none = el('option', '', '(site default)');
    none.value = '';
    this._images.appendChild(none);
    for (const i of images) {
      const o = el('option', '', `${i.name} (${i.kind})`);
      o.value = i.id;
      this._images.appendChild(o);
    }
    this._images.value = this.form.cloudImage;
  }

  private _changed(): void {
    this._refusal = null;
    const { errors } = buildSpec(this.form, this._content, this.site);
    this.showErrors(errors);
    this._preview.classList.add('swm-mod-pending');
    const flavor = this.site?.flavors.find(f => f.id === this.form.flavor);
    this._cost.textContent = flavor ? `${flavor.name}: ${flavor.price.toFixed(2)} per hour` : '';
    window.clearTimeout(this._dryRunTimer);
    if (!errors.length) {
      this._dryRunTimer = window.setTimeout(() => void this._dryRun(), 300);
    }
  }

  /** Ask the server what job the form makes: its errors, its spec (the preview), its cost. */
  private async _dryRun(): Promise<void> {
    const seq = ++this._dryRunSeq;
    const { spec, errors } = buildSpec(
      this.form,
      this._content,
      this.site,
      PageConfig.getOption('serverRoot')
    );
    if (errors.length) {
      this.showErrors(errors);
      return;
    }
    try {
      const answer = await this._api.dryRun(spec);
      if (seq !== this._dryRunSeq || this.isDisposed) {
        return;
      }
      this.showErrors([]);
      const lines = specLines(answer.job.spec);
      const ignored = (answer.warnings ?? []).map(w => `# ignored: ${w}`);
      this._preview.textContent = [...(lines.length ? lines : ['(none)']), ...ignored].join('\n');
      this._preview.dataset.warnings = String(ignored.length);
      this._preview.classList.remove('swm-mod-pending', 'swm-mod-error');
      const flavor = this.site?.flavors.find(f => f.id === this.form.flavor);
      const cost = answer.cost_estimate;
      this._cost.textContent =
        cost !== null && cost !== undefined
          ? `Estimated cost: ${cost.toFixed(2)}${flavor ? ` (${flavor.name}, ${flavor.price.toFixed(2)} per hour)` : ''}`
          : flavor
            ? `${flavor.name}: ${flavor.price.toFixed(2)} per hour; set a walltime for an estimate`
            : '';
    } catch (err) {
      if (seq !== this._dryRunSeq || this.isDisposed) {
        return;
      }
      const e = err as { errors?: IFieldError[] };
      this.showErrors(e.errors ?? [], errorText(err).split('\n')[0]);
      this._preview.textContent = 'The server refuses this job (see above).';
      this._preview.classList.remove('swm-mod-pending');
      this._preview.classList.add('swm-mod-error');
    }
  }
}
