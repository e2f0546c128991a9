import {
  buildSpec,
  emptyForm,
  estimateCost,
  formCost,
  formatWalltime,
  parseMemoryMb,
  parseParameters,
  parseWalltime,
  swmLines
} from '../src/submitmodel';
import type { ISite } from '../src/types';

const cloud: ISite = {
  name: 'azure',
  kind: 'cloud',
  description: 'Azure via Sky Port gate',
  healthy: true,
  health_message: '',
  max_running: 10,
  limits: { cpus: 16, memory: 65536, gpus: 2, nodes: 4, walltime: 86400 },
  flavors: [
    { id: 'small', name: 'small', cpus: 2, gpus: 0, mem: 4096, price: 0.1 },
    { id: 'gpu', name: 'gpu', cpus: 8, gpus: 1, mem: 32768, price: 2.5 }
  ],
  images: [{ id: 'ubuntu', name: 'Ubuntu 24.04', kind: 'vm' }],
  counts: {}
};

describe('units', () => {
  it('reads memory like the server does', () => {
    expect(parseMemoryMb('4096')).toBe(4096);
    expect(parseMemoryMb('4G')).toBe(4096);
    expect(parseMemoryMb('1.5GB')).toBe(1536);
    expect(parseMemoryMb('512m')).toBe(512);
    expect(() => parseMemoryMb('lots')).toThrow(/cannot read memory/);
  });

  it('reads walltimes like the server does', () => {
    expect(parseWalltime('90')).toBe(5400);
    expect(parseWalltime('01:30:00')).toBe(5400);
    expect(parseWalltime('10:00')).toBe(600);
    expect(parseWalltime('1-00:00:01')).toBe(86401);
    expect(parseWalltime('2h')).toBe(7200);
    expect(() => parseWalltime('1:75:00')).toThrow(/cannot read walltime/);
    expect(() => parseWalltime('soon')).toThrow(/cannot read walltime/);
    expect(formatWalltime(86401)).toBe('1-00:00:01');
  });

  it('reads notebook parameters with JSON values', () => {
    expect(
      parseParameters('alpha = 0.5\nname = run1\nflags = [1, 2]\n# comment\nq = "x y"')
    ).toEqual({
      alpha: 0.5,
      name: 'run1',
      flags: [1, 2],
      q: 'x y'
    });
    expect(() => parseParameters('1abc = 3')).toThrow(/not a Python name/);
    expect(() => parseParameters('novalue')).toThrow(/line 1/);
  });
});

describe('buildSpec', () => {
  it('builds a script spec with resources and a workdir', () => {
    const form = {
      ...emptyForm('work/train.sh', 'local'),
      cpus: '4',
      memory: '8G',
      walltime: '2h'
    };
    expect(form.name).toBe('train');
    const { spec, errors } = buildSpec(form, 'echo hi\n', undefined, '/home/u/');
    expect(errors).toEqual([]);
    expect(spec).toEqual({
      name: 'train',
      site: 'local',
      script: 'echo hi\n',
      workdir: '/home/u/work',
      resources: { cpus: 4, memory: 8192, walltime: 7200 }
    });
  });

  it('builds a notebook spec with parameters', () => {
    const form = { ...emptyForm('nb.ipynb', 'local'), parameters: 'n = 3' };
    const { spec, errors } = buildSpec(form, null);
    expect(errors).toEqual([]);
    expect(spec.notebook).toBe('nb.ipynb');
    expect(spec.parameters).toEqual({ n: 3 });
    expect(spec.script).toBeUndefined();
    expect(spec.workdir).toBeUndefined();
  });

  it("checks resources against the site's limits and flavors", () => {
    const form = {
      ...emptyForm('a.sh', 'azure'),
      cpus: '32',
      gpus: 'two',
      flavor: 'huge',
      walltime: 'x'
    };
    const { errors } = buildSpec(form, '', cloud);
    expect(errors.map(e => e.field).sort()).toEqual([
      'flavor',
      'resources.cpus',
      'resources.gpus',
      'resources.walltime'
    ]);
    expect(errors.find(e => e.field === 'resources.cpus')?.message).toBe(
      'at most 16 on site azure'
    );
  });
});

describe('directives and cost', () => {
  it('previews the #SWM lines of the form', () => {
    const form = {
      ...emptyForm('a.sh', 'azure'),
      cpus: '2',
      memory: '4G',
      flavor: 'gpu',
      cloudImage: 'ubuntu',
      walltime: '01:00:00'
    };
    expect(swmLines(form)).toEqual([
      '#SWM name a',
      '#SWM site azure',
      '#SWM cpus 2',
      '#SWM mem 4G',
      '#SWM walltime 01:00:00',
      '#SWM flavor gpu',
      '#SWM cloud-image ubuntu'
    ]);
  });

  it('estimates cost as price × nodes × hours', () => {
    expect(estimateCost(cloud.flavors[1], 2, 5400)).toBe(7.5);
    expect(estimateCost(cloud.flavors[1], 1, undefined)).toBeNull();
    expect(estimateCost(undefined, 1, 3600)).toBeNull();
    const form = { ...emptyForm('a.sh', 'azure'), flavor: 'small', nodes: '3', walltime: '10h' };
    expect(formCost(form, cloud)).toBe(3);
    expect(formCost({ ...form, walltime: 'bad' }, cloud)).toBeNull();
  });
});
