/**
 * Notifications when one of the user's jobs ends (finished, failed, canceled), with "Open":
 * every job of the user, whatever submitted it (this tab, another, the CLI, a notebook), as the
 * setting chooses: all ends, failures only, or none.
 */
import { Notification } from '@jupyterlab/apputils';

import { endedNotice } from '../format';
import { JobStore } from '../store';
import { isFailed } from '../types';

/** Which ends are announced. */
export type NotifyWhen = 'all' | 'failures' | 'none';

export interface IEndNotifierOptions {
  store: JobStore;
  /** Which ends are announced (the user setting, read at each end). */
  when: () => NotifyWhen;
  /** The owner name of this user's jobs ('' when unknown: then every job counts). */
  owner: () => string;
  openJob: (id: string) => void;
}

/** Notify, from now on, each time a job of this user ends. */
export function notifyEndedJobs(opts: IEndNotifierOptions): void {
  opts.store.changed.connect((_, change) => {
    const when = opts.when();
    if (when === 'none') {
      return;
    }
    const owner = opts.owner();
    for (const job of change.ended) {
      if (job.owner && owner && job.owner !== owner) {
        continue;
      }
      if (when === 'failures' && !isFailed(job)) {
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
