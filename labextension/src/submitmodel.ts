/**
 * The submit form's model: turns the form's fields into a job spec and the matching `#SWM`
 * lines, checks resources against the site's limits, and estimates the cost of a cloud flavor.
 * Unit parsing follows swm_jupyter/core/units.py so the dialog and the server agree.
 */
import type { IFieldError } from './api';
import type { IFlavor, IJobSpec, ISite } from './types';

export interface ISubmitForm {
  /** Path of the file, relative to the Jupyter root. */
  path: string;
  kind: 'script' | 'notebook';
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

const MEM = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i;
const MEM_FACTORS: Record<string, number> = { k: 1 / 1024, '': 1, m: 1, g: 1024, t: 1024 * 1024 };

/** Megabytes from `4096`, `512M`, `4G`, `1.5GB`, `2T` (a bare number is MB). */
export function parseMemoryMb(text: string): number {
  const m = MEM.exec(text);
  if (!m) {
    throw new Error(
      `cannot read memory "${text}": write MB as a number, or a size such as 512M or 4G`
    );
  }
  const mb = parseFloat(m[1]) * MEM_FACTORS[m[2].toLowerCase()];
  if (mb <= 0) {
    throw new Error('memory must be positive');
  }
  return Math.max(1, Math.floor(mb));
}

/** Seconds from `90` (minutes), `MM:SS`, `HH:MM:SS`, `D-HH:MM:SS`, `30s`, `10m`, `2h`, `1d`. */
export function parseWalltime(text: string): number {
  const t = text.trim();
  const fail = (): never => {
    throw new Error(
      `cannot read walltime "${text}": write HH:MM:SS, D-HH:MM:SS, minutes, or 30s/10m/2h/1d`
    );
  };
  let seconds: number;
  const suffix = /^(\d+(?:\.\d+)?)\s*([smhd])$/i.exec(t);
  if (suffix) {
    const f: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
    seconds = parseFloat(suffix[1]) * f[suffix[2].toLowerCase()];
  } else if (/^\d+$/.test(t)) {
    seconds = parseInt(t, 10) * 60;
  } else {
    let rest = t;
    let days = 0;
    const dash = rest.indexOf('-');
    if (dash >= 0) {
      const d = rest.slice(0, dash);
      if (!/^\d+$/.test(d)) {
        fail();
      }
      days = parseInt(d, 10);
      rest = rest.slice(dash + 1);
    }
    const parts = rest.split(':');
    if (parts.some(p => !/^\d+$/.test(p))) {
      fail();
    }
    let nums = parts.map(p => parseInt(p, 10));
    if (nums.length === 2) {
      nums = [0, ...nums];
    }
    if (nums.length !== 3 || nums[1] > 59 || nums[2] > 59) {
      fail();
    }
    seconds = days * 86400 + nums[0] * 3600 + nums[1] * 60 + nums[2];
  }
  if (!(seconds > 0)) {
    throw new Error('walltime must be positive');
  }
  return Math.floor(seconds);
}

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

function positiveInt(text: string, field: string, errors: IFieldError[]): number | undefined {
  const t = text.trim();
  if (!t) {
    return undefined;
  }
  if (!/^\d+$/.test(t) || parseInt(t, 10) < 0) {
    errors.push({ field, message: 'must be a whole number' });
    return undefined;
  }
  return parseInt(t, 10);
}

export interface IBuiltSpec {
  spec: IJobSpec;
  errors: IFieldError[];
}

/**
 * Build the spec to POST for `form` (with the file's `content` for a script), checking the
 * resources against `site`'s limits. Errors name the form field.
 */
export function buildSpec(
  form: ISubmitForm,
  content: string | null,
  site?: ISite,
  serverRoot = ''
): IBuiltSpec {
  const errors: IFieldError[] = [];
  const resources: NonNullable<IJobSpec['resources']> = {};
  const nodes = positiveInt(form.nodes, 'resources.nodes', errors);
  const cpus = positiveInt(form.cpus, 'resources.cpus', errors);
  const gpus = positiveInt(form.gpus, 'resources.gpus', errors);
  if (nodes !== undefined) {
    resources.nodes = nodes;
  }
  if (cpus !== undefined) {
    resources.cpus = cpus;
  }
  if (gpus !== undefined) {
    resources.gpus = gpus;
  }
  let memoryMb: number | undefined;
  if (form.memory.trim()) {
    try {
      memoryMb = parseMemoryMb(form.memory);
      resources.memory = memoryMb;
    } catch (e) {
      errors.push({ field: 'resources.memory', message: (e as Error).message });
    }
  }
  let walltime: number | undefined;
  if (form.walltime.trim()) {
    try {
      walltime = parseWalltime(form.walltime);
      resources.walltime = walltime;
    } catch (e) {
      errors.push({ field: 'resources.walltime', message: (e as Error).message });
    }
  }
  const limits = site?.limits ?? {};
  const over = (
    field: string,
    value: number | undefined,
    limit: number | null | undefined,
    unit = ''
  ): void => {
    if (value !== undefined && limit !== undefined && limit !== null && value > limit) {
      errors.push({ field, message: `at most ${limit}${unit} on site ${site?.name}` });
    }
  };
  over('resources.nodes', nodes, limits.nodes);
  over('resources.cpus', cpus, limits.cpus);
  over('resources.gpus', gpus, limits.gpus);
  over('resources.memory', memoryMb, limits.memory, ' MB');
  over('resources.walltime', walltime, limits.walltime, ' s');

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
  if (form.kind === 'notebook') {
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

/** The `#SWM` lines that say what the form says (Sky Port's job-script vocabulary). */
export function swmLines(form: ISubmitForm): string[] {
  const lines: string[] = [];
  const add = (key: string, value: string): void => {
    const v = value.trim();
    if (v) {
      lines.push(`#SWM ${key} ${v}`);
    }
  };
  add('name', form.name);
  add('site', form.site);
  add('nodes', form.nodes);
  add('cpus', form.cpus);
  add('mem', form.memory);
  add('gpus', form.gpus);
  add('walltime', form.walltime);
  add('flavor', form.flavor);
  add('cloud-image', form.cloudImage);
  add('container-image', form.containerImage);
  return lines;
}

/**
 * Estimated cost of running `nodes` machines of `flavor` for `walltimeSeconds` (prices are per
 * machine-hour). Null without a flavor or a walltime.
 */
export function estimateCost(
  flavor: IFlavor | undefined,
  nodes: number,
  walltimeSeconds: number | undefined
): number | null {
  if (!flavor || !walltimeSeconds || !Number.isFinite(flavor.price)) {
    return null;
  }
  return Math.round(flavor.price * Math.max(1, nodes) * (walltimeSeconds / 3600) * 100) / 100;
}

/** The cost estimate for the form's current values on `site`, or null. */
export function formCost(form: ISubmitForm, site: ISite | undefined): number | null {
  const flavor = site?.flavors.find(f => f.id === form.flavor);
  let walltime: number | undefined;
  try {
    walltime = form.walltime.trim() ? parseWalltime(form.walltime) : undefined;
  } catch {
    walltime = undefined;
  }
  const nodes = /^\d+$/.test(form.nodes.trim()) ? parseInt(form.nodes, 10) : 1;
  return estimateCost(flavor, nodes, walltime);
}
