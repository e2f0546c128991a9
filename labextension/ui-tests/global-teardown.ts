import * as fs from 'fs';

import { STATE_FILE } from './global-setup';
import { ILabServer, stopLab } from './server';

export default async function globalTeardown(): Promise<void> {
  if (!fs.existsSync(STATE_FILE)) {
    return;
  }
  const server = JSON.parse(fs.readFileSync(STATE_FILE, 'utf8')) as ILabServer;
  if (process.env.SWM_KEEP_LAB_LOG) {
    fs.copyFileSync(server.logFile, `${STATE_FILE}.log`);
  }
  await stopLab(server);
  fs.rmSync(STATE_FILE, { force: true });
}
