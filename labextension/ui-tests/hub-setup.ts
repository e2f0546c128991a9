/**
 * Start a real JupyterHub for the hub UI tests: `python -m tests.hub_ui start` (tests/hub_ui.py)
 * starts the example hub with the users alice, bob and admin, their servers and a few jobs of each,
 * and writes HUB_STATE (URL, login password, the jobs and their owners) for the tests.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

export const REPO = path.resolve(__dirname, '..', '..');
export const HUB_STATE = path.join(__dirname, 'test-results', 'hub.json');

export interface IHubJob {
  name: string;
  owner: string;
  user: string;
}

export interface IHubState {
  url: string;
  password: string;
  admin_token: string;
  users: string[];
  jobs: Record<string, IHubJob>;
}

/** The Python of the environment under test: $SWM_PYTHON, else $VIRTUAL_ENV's, else python3. */
export function python(): string {
  if (process.env.SWM_PYTHON) {
    return process.env.SWM_PYTHON;
  }
  const candidate = path.join(process.env.VIRTUAL_ENV ?? '', 'bin', 'python');
  return process.env.VIRTUAL_ENV && fs.existsSync(candidate) ? candidate : 'python3';
}

/** Run `python -m tests.hub_ui <command> HUB_STATE` from the checkout; throws with its output on failure. */
export function hubUi(command: 'start' | 'stop'): string {
  const run = spawnSync(python(), ['-m', 'tests.hub_ui', command, HUB_STATE], {
    cwd: REPO,
    env: { ...process.env, PYTHONPATH: REPO },
    encoding: 'utf8',
    timeout: 240000
  });
  if (run.status !== 0) {
    throw new Error(
      `tests.hub_ui ${command} failed (${run.status}):\n${run.stdout}\n${run.stderr}`
    );
  }
  return run.stdout;
}

export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  hubUi('start');
  const state = JSON.parse(fs.readFileSync(HUB_STATE, 'utf8')) as IHubState;
  console.log(
    `jupyterhub at ${state.url}, ready in ${((Date.now() - started) / 1000).toFixed(1)} s`
  );
}
