/** The Sky Port sidebar: a tab for the job list and one for the sites. */
import { TabPanel } from '@lumino/widgets';

import { JobsPanel } from './jobspanel';
import { SitesPanel } from './sitespanel';

export class SwmSidebar extends TabPanel {
  constructor(
    readonly jobs: JobsPanel,
    readonly sites: SitesPanel
  ) {
    super({ tabPlacement: 'top' });
    this.addClass('swm-Sidebar');
    jobs.title.label = 'Jobs';
    sites.title.label = 'Sites';
    this.addWidget(jobs);
    this.addWidget(sites);
  }

  showSites(): void {
    this.currentWidget = this.sites;
  }

  showJobs(): void {
    this.currentWidget = this.jobs;
  }
}
