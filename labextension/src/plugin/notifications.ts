/** Notifications when one of the user's jobs ends (finished, failed, canceled), with "Open". */
import { Notification } from '@jupyterlab/apputils';

import { endedNotice } from '../format';
import { JobStore } from '../store';

export interface IEndNotifierOptions {
  store: JobStore;
  /** Whether notifications are on (the user setting, read at each end). */
  enabled: () => boolean;
  /** The owner name of this user's jobs ('' when unknown: then every job counts). */
  owner: () => string;
  openJob: (id: string) => void;
}

/** Notify, from now on, each time a job of this user ends. */
export function notifyEndedJobs(opts: IEndNotifierOptions): void {
  opts.store.changed.connect((_, change) => {
    if (!opts.enabled()) {
      return;
    }
    const owner = opts.owner();
    for (const job of change.ended) {
      if (job.owner && owner && job.owner !== owner) {
        continue;
      }
      const { message, type } = endedNotice(job);
      Notification.emit(message, type, {
        autoClose: 8000,
        actions: [{ label: 'Open', callback: () => opts.openJob(job.id) }]
      });
    }
  });
}
