import {
  buildSpec,
  emptyForm,
  formFromSpec,
  formatWalltime,
  newForm,
  splitWords,
  parseParameters,
  specLines
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
  it("writes walltimes as #SWM does (reading them is the server's)", () => {
    expect(formatWalltime(86401)).toBe('1-00:00:01');
    expect(formatWalltime(300)).toBe('00:05:00');
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
      // Units are the server's to read: the text goes as typed.
      resources: { cpus: 4, memory: '8G', walltime: '2h' }
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

  it('leaves limits and units to the server, and names what is not a number', () => {
    const form = {
      ...emptyForm('a.sh', 'azure'),
      cpus: '32',
      gpus: 'two',
      flavor: 'huge',
      walltime: 'x'
    };
    const { spec, errors } = buildSpec(form, '', cloud);
    // Only the flavor is checked here (the site's list is at hand); the rest goes to the dry run.
    expect(errors.map(e => e.field)).toEqual(['flavor']);
    expect(spec.resources).toEqual({ cpus: 32, gpus: 'two', walltime: 'x' });
  });
});

describe("the server's reading of a script", () => {
  it("takes the script's directives as the form's starting values", () => {
    const form = formFromSpec(emptyForm('work/train.sh', 'local'), {
      name: 'nightly-train',
      site: 'local',
      resources: { nodes: 1, cpus: 2, memory: 4096, walltime: 300, gpus: 0 },
      container_image: 'ubuntu:24.04'
    });
    expect(form.name).toBe('nightly-train');
    expect(form.cpus).toBe('2');
    expect(form.nodes).toBe('');
    expect(form.gpus).toBe('');
    expect(form.memory).toBe('4G');
    expect(form.walltime).toBe('00:05:00');
    expect(form.containerImage).toBe('ubuntu:24.04');
  });

  it('keeps the file name when the script names no job', () => {
    const form = formFromSpec(emptyForm('work/train.sh', 'local'), { name: 'job' });
    expect(form.name).toBe('train');
  });

  it('previews the job the server would run as #SWM lines', () => {
    expect(
      specLines({
        name: 'a',
        site: 'azure',
        resources: { nodes: 1, cpus: 2, memory: 1536, walltime: 3600, gpus: 0 },
        flavor: 'gpu',
        cloud_image: 'ubuntu'
      })
    ).toEqual([
      '#SWM name a',
      '#SWM site azure',
      '#SWM nodes 1',
      '#SWM cpus 2',
      '#SWM mem 1536M',
      '#SWM walltime 01:00:00',
      '#SWM flavor gpu',
      '#SWM cloud-image ubuntu'
    ]);
  });
});

describe('a job written in the dialog', () => {
  it('splits a command line as a shell splits words, without expanding anything', () => {
    expect(splitWords('python train.py --lr 0.1')).toEqual(['python', 'train.py', '--lr', '0.1']);
    expect(splitWords(`bash -c "echo 'a b' \\"q\\""`)).toEqual(['bash', '-c', `echo 'a b' "q"`]);
    expect(splitWords("echo '$HOME' a\\ b ''")).toEqual(['echo', '$HOME', 'a b', '']);
    expect(() => splitWords('echo "open')).toThrow(/double quote is not closed/);
  });

  it('sends the script of the editor, or the command line as arguments', () => {
    const form = { ...newForm('local'), script: '#!/bin/bash\necho hi\n' };
    expect(buildSpec(form, null).spec).toEqual({ site: 'local', script: '#!/bin/bash\necho hi\n' });
    const cmd = { ...form, mode: 'command' as const, command: 'sleep 5', name: 'nap' };
    expect(buildSpec(cmd, null).spec).toEqual({
      name: 'nap',
      site: 'local',
      command: ['sleep', '5']
    });
    expect(buildSpec({ ...cmd, command: '  ' }, null).errors[0].field).toBe('command');
  });
});
