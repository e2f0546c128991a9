/**
 * The submit form's model: turns the form's fields into a job spec, takes the form's starting
 * values from the server's reading of a script, and writes a spec as `#SWM` lines. Units, limits
 * and costs are the server's (its dry run): the dialog never parses a walltime or prices a job.
 */
import type { IFieldError } from './api';
import type { IJobSpec, ISite } from './types';

export interface ISubmitForm {
  /** Path of the file, relative to the Jupyter root ('' for a job written in the dialog). */
  path: string;
  /** A file (script or notebook), or a new job written in the dialog. */
  kind: 'script' | 'notebook' | 'new';
  /** A new job: a script written in the dialog's editor, or a command line. */
  mode: 'script' | 'command';
  /** A new job's script. */
  script: string;
  /** A new job's command line (split into arguments as a shell would, without expansions). */
  command: string;
  name: string;
  site: string;
  nodes: string;
  cpus: string;
  memory: string;
  gpus: string;
  walltime: string;
  flavor: string;
  cloudImage: string;
  containerImage: string;
  /** Notebook parameters, one `name = value` a line (values read as JSON when they parse). */
  parameters: string;
}

export function emptyForm(path: string, site = ''): ISubmitForm {
  const base = path.split('/').pop() ?? path;
  return {
    path,
    kind: path.endsWith('.ipynb') ? 'notebook' : 'script',
    mode: 'script',
    script: '',
    command: '',
    name: base.replace(/\.[^.]*$/, '') || 'job',
    site,
    nodes: '',
    cpus: '',
    memory: '',
    gpus: '',
    walltime: '',
    flavor: '',
    cloudImage: '',
    containerImage: '',
    parameters: ''
  };
}

/** The form of a job written in the dialog (no file). */
export function newForm(site = ''): ISubmitForm {
  return {
    ...emptyForm('', site),
    kind: 'new',
    name: '',
    script: '#!/bin/bash\n#SWM walltime 00:10:00\n\necho "Hello from $(hostname)"\n'
  };
}

/**
 * The arguments of a command line, split as a shell splits words: spaces separate, single quotes
 * keep everything, double quotes keep all but `\"` and `\\`, a backslash escapes the next
 * character. No variables or globs are expanded. Throws on an unclosed quote.
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '' | "'" | '"' = '';
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote === "'") {
      if (c === "'") {
        quote = '';
      } else {
        word += c;
      }
    } else if (quote === '"') {
      if (c === '"') {
        quote = '';
      } else if (c === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) {
        word += line[++i];
      } else {
        word += c;
      }
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) {
        words.push(word);
        word = '';
        inWord = false;
      }
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) {
    throw new Error(`the ${quote === '"' ? 'double' : 'single'} quote is not closed`);
  }
  if (inWord) {
    words.push(word);
  }
  return words;
}

/** `D-HH:MM:SS` (or `HH:MM:SS`) of a number of seconds, as `#SWM walltime` writes it. */
export function formatWalltime(seconds: number): string {
  const days = Math.floor(seconds / 86400);
  let rest = seconds % 86400;
  const h = Math.floor(rest / 3600);
  rest %= 3600;
  const pad = (n: number): string => String(n).padStart(2, '0');
  const hms = `${pad(h)}:${pad(Math.floor(rest / 60))}:${pad(rest % 60)}`;
  return days ? `${days}-${hms}` : hms;
}

/** Read `name = value` lines; values that parse as JSON are typed, others kept as text. */
export function parseParameters(text: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) {
      return;
    }
    const eq = line.indexOf('=');
    if (eq <= 0) {
      throw new Error(`parameters line ${i + 1}: write name = value`);
    }
    const key = line.slice(0, eq).trim();
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new Error(`parameters line ${i + 1}: "${key}" is not a Python name`);
    }
    const value = line.slice(eq + 1).trim();
    try {
      out[key] = JSON.parse(value);
    } catch {
      out[key] = value.replace(/^(['"])(.*)\1$/, '$2');
    }
  });
  return out;
}

/** A whole number as a number; any other text as it is, for the server to name what is wrong. */
function count(text: string): number | string | undefined {
  const t = text.trim();
  if (!t) {
    return undefined;
  }
  return /^\d+$/.test(t) ? parseInt(t, 10) : t;
}

export interface IBuiltSpec {
  spec: IJobSpec;
  errors: IFieldError[];
}

/**
 * Build the spec to POST for `form` (with the file's `content` for a script). Units, limits and
 * flavors are the server's to check (its dry run names the field); only the notebook parameters,
 * which are the form's own syntax, are read here.
 */
export function buildSpec(
  form: ISubmitForm,
  content: string | null,
  site?: ISite,
  serverRoot = ''
): IBuiltSpec {
  const errors: IFieldError[] = [];
  const resources: NonNullable<IJobSpec['resources']> = {};
  const nodes = count(form.nodes);
  const cpus = count(form.cpus);
  const gpus = count(form.gpus);
  if (nodes !== undefined) {
    resources.nodes = nodes as number;
  }
  if (cpus !== undefined) {
    resources.cpus = cpus as number;
  }
  if (gpus !== undefined) {
    resources.gpus = gpus as number;
  }
  if (form.memory.trim()) {
    resources.memory = form.memory.trim();
  }
  if (form.walltime.trim()) {
    resources.walltime = form.walltime.trim();
  }
  const spec: IJobSpec = { name: form.name.trim() || undefined };
  if (form.site) {
    spec.site = form.site;
  }
  if (Object.keys(resources).length) {
    spec.resources = resources;
  }
  if (form.flavor) {
    if (site && site.flavors.length && !site.flavors.some(f => f.id === form.flavor)) {
      errors.push({ field: 'flavor', message: `site ${site.name} has no flavor ${form.flavor}` });
    }
    spec.flavor = form.flavor;
  }
  if (form.cloudImage) {
    spec.cloud_image = form.cloudImage;
  }
  if (form.containerImage.trim()) {
    spec.container_image = form.containerImage.trim();
  }
  if (form.kind === 'new' && form.mode === 'command') {
    try {
      const words = splitWords(form.command);
      if (words.length) {
        spec.command = words;
      } else {
        errors.push({
          field: 'command',
          message: 'write the command to run, e.g. python train.py'
        });
      }
    } catch (e) {
      errors.push({ field: 'command', message: (e as Error).message });
    }
  } else if (form.kind === 'new') {
    spec.script = form.script;
  } else if (form.kind === 'notebook') {
    spec.notebook = form.path;
    try {
      const params = parseParameters(form.parameters);
      if (Object.keys(params).length) {
        spec.parameters = params;
      }
    } catch (e) {
      errors.push({ field: 'parameters', message: (e as Error).message });
    }
  } else {
    spec.script = content ?? '';
  }
  // A script runs in its own folder (the server wants an absolute workdir); a notebook runs in
  // the job folder, where the server copies it.
  const root = serverRoot.replace(/\/+$/, '');
  if (form.kind === 'script' && root.startsWith('/')) {
    const dir = form.path.includes('/') ? form.path.slice(0, form.path.lastIndexOf('/')) : '';
    spec.workdir = dir ? `${root}/${dir}` : root;
  }
  if (spec.name === undefined) {
    delete spec.name;
  }
  return { spec, errors };
}

/** The name the server gives a job nothing names (JobSpec's default). */
export const DEFAULT_JOB_NAME = 'job';

/**
 * The form's starting values from the server's reading of the script (a dry run of the script
 * alone): its `#SWM` directives. A script that names no job keeps the file's name.
 */
export function formFromSpec(form: ISubmitForm, spec: IJobSpec): ISubmitForm {
  const r = spec.resources ?? {};
  const text = (v: unknown): string => (v === null || v === undefined ? '' : String(v));
  const out = { ...form };
  if (spec.name && spec.name !== DEFAULT_JOB_NAME) {
    out.name = spec.name;
  }
  out.nodes = r.nodes && r.nodes !== 1 ? text(r.nodes) : out.nodes;
  out.cpus = r.cpus && r.cpus !== 1 ? text(r.cpus) : out.cpus;
  out.gpus = r.gpus ? text(r.gpus) : out.gpus;
  out.memory = r.memory ? memoryText(r.memory) : out.memory;
  out.walltime =
    typeof r.walltime === 'number' ? formatWalltime(r.walltime) : text(r.walltime) || out.walltime;
  out.flavor = spec.flavor ?? out.flavor;
  out.cloudImage = spec.cloud_image ?? out.cloudImage;
  out.containerImage = spec.container_image ?? out.containerImage;
  return out;
}

/** `4G` for 4096 (MB), `512M` otherwise. */
function memoryText(mb: number | string): string {
  if (typeof mb === 'string') {
    return mb;
  }
  return mb % 1024 === 0 ? `${mb / 1024}G` : `${mb}M`;
}

/**
 * The `#SWM` lines of the job the server would run (the spec of its dry run): what the job
 * really is, the script's own directives included.
 */
export function specLines(spec: IJobSpec): string[] {
  const lines: string[] = [];
  const add = (key: string, value: unknown): void => {
    if (value !== null && value !== undefined && value !== '') {
      lines.push(`#SWM ${key} ${String(value)}`);
    }
  };
  const r = spec.resources ?? {};
  add('name', spec.name);
  add('site', spec.site);
  add('nodes', r.nodes);
  add('cpus', r.cpus);
  add('mem', r.memory !== null && r.memory !== undefined ? memoryText(r.memory) : undefined);
  add('gpus', r.gpus || undefined);
  add('walltime', typeof r.walltime === 'number' ? formatWalltime(r.walltime) : r.walltime);
  add('flavor', spec.flavor);
  add('cloud-image', spec.cloud_image);
  add('container-image', spec.container_image);
  return lines;
}
