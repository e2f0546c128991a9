/**
 * A job's file shown from the server, read-only, without copying it into the notebook folder:
 * text, images, and notebooks (their cells and text/image outputs). "Save a copy" puts it in the
 * Jupyter root to open it in JupyterLab; "Download" saves it.
 */
import { Widget } from '@lumino/widgets';

import { errorText, formatBytes } from '../format';
import { el } from './dom';

export interface IFileViewOptions {
  jobId: string;
  path: string;
  /** The file's bytes from the server. */
  fetch: () => Promise<Uint8Array>;
  /** Copy the file into the Jupyter root and open it there. */
  saveCopy: () => Promise<void>;
}

const IMAGES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp'
};

/** Most characters of a text file shown (the rest: download it). */
const MAX_TEXT = 2_000_000;

export class FileView extends Widget {
  private _opts: IFileViewOptions;
  private _body: HTMLElement;
  private _urls: string[] = [];
  private _bytes: Uint8Array | null = null;

  constructor(opts: IFileViewOptions) {
    super();
    this._opts = opts;
    this.addClass('swm-FileView');
    this.id = `swm-file-${opts.jobId.slice(0, 8)}-${opts.path.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
    this.title.label = opts.path.split('/').pop() ?? opts.path;
    this.title.caption = `${opts.path} of job ${opts.jobId} (read-only, from the job's folder)`;
    this.title.closable = true;
    const bar = el('div', 'swm-FileView-bar');
    const name = el('span', 'swm-FileView-path', `${opts.path} — job ${opts.jobId.slice(0, 8)}`);
    const save = el('button', 'jp-mod-styled jp-mod-accept swm-SaveCopy', 'Save a copy');
    save.title = 'Copy this file into the notebook folder and open it there';
    save.addEventListener('click', () => void opts.saveCopy());
    const download = el('button', 'jp-mod-styled swm-FileDownload', 'Download');
    download.addEventListener('click', () => this._download());
    bar.append(name, save, download);
    this._body = el('div', 'swm-FileView-body', 'Loading…');
    this.node.append(bar, this._body);
    void this._load();
  }

  dispose(): void {
    for (const url of this._urls) {
      URL.revokeObjectURL(url);
    }
    super.dispose();
  }

  private async _load(): Promise<void> {
    try {
      const bytes = await this._opts.fetch();
      this._bytes = bytes;
      this._body.textContent = '';
      const ext = (this._opts.path.split('.').pop() ?? '').toLowerCase();
      if (IMAGES[ext]) {
        const img = el('img', 'swm-FileView-image');
        img.src = this._url(bytes, IMAGES[ext]);
        img.alt = this._opts.path;
        this._body.appendChild(img);
        return;
      }
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        this._body.textContent = `A binary file of ${formatBytes(bytes.length)}: download it or save a copy.`;
        return;
      }
      if (ext === 'ipynb') {
        try {
          this._renderNotebook(JSON.parse(text) as INotebook);
          return;
        } catch {
          // Not a notebook after all: shown as text.
        }
      }
      const pre = el('pre', 'swm-FileView-text', text.slice(0, MAX_TEXT));
      this._body.appendChild(pre);
      if (text.length > MAX_TEXT) {
        this._body.appendChild(
          el('p', '', `… ${formatBytes(bytes.length)} in all: download it to see the rest.`)
        );
      }
    } catch (err) {
      this._body.textContent = `Cannot show ${this._opts.path}: ${errorText(err)}`;
      this._body.classList.add('swm-mod-error');
    }
  }

  /** Cells and their text and image outputs; HTML and other rich outputs need a copy. */
  private _renderNotebook(nb: INotebook): void {
    const join = (v: string | string[] | undefined): string =>
      Array.isArray(v) ? v.join('') : (v ?? '');
    for (const cell of nb.cells ?? []) {
      const box = el('div', `swm-FileView-cell swm-FileView-${cell.cell_type}`);
      box.appendChild(el('pre', 'swm-FileView-source', join(cell.source)));
      for (const out of cell.outputs ?? []) {
        const data = out.data ?? {};
        if (out.output_type === 'stream') {
          box.appendChild(el('pre', 'swm-FileView-output', join(out.text)));
        } else if (out.output_type === 'error') {
          box.appendChild(
            el('pre', 'swm-FileView-output swm-mod-error', `${out.ename}: ${out.evalue}`)
          );
        } else if (data['image/png']) {
          const img = el('img', 'swm-FileView-image');
          img.src = `data:image/png;base64,${join(data['image/png']).trim()}`;
          box.appendChild(img);
        } else if (data['text/plain']) {
          box.appendChild(el('pre', 'swm-FileView-output', join(data['text/plain'])));
        } else if (Object.keys(data).length) {
          box.appendChild(el('p', 'swm-FileView-note', '[a rich output: save a copy to see it]'));
        }
      }
      this._body.appendChild(box);
    }
  }

  private _url(bytes: Uint8Array, type: string): string {
    const url = URL.createObjectURL(new Blob([bytes], { type }));
    this._urls.push(url);
    return url;
  }

  private _download(): void {
    if (!this._bytes) {
      return;
    }
    const a = el('a', '');
    a.href = this._url(this._bytes, 'application/octet-stream');
    a.download = this._opts.path.split('/').pop() ?? 'file';
    document.body.appendChild(a);
    a.click();
    a.remove();
  }
}

interface INotebook {
  cells?: {
    cell_type: string;
    source?: string | string[];
    outputs?: {
      output_type: string;
      text?: string | string[];
      data?: Record<string, string | string[]>;
      ename?: string;
      evalue?: string;
    }[];
  }[];
}
