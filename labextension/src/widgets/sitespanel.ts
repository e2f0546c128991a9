/** The sites panel: each site's gate, health, limits, flavors, images and live job counts. */
import { Widget } from '@lumino/widgets';

import { errorText, formatDuration } from '../format';
import { JobSync } from '../sync';
import { ISite, STATES } from '../types';
import { el } from './dom';

export class SitesPanel extends Widget {
  private _sync: JobSync;
  private _list: HTMLElement;
  private _message: HTMLElement;
  private _sites: ISite[] = [];
  private _default = '';
  private _loading: Promise<void> | null = null;

  constructor(sync: JobSync) {
    super();
    this._sync = sync;
    this.addClass('swm-SitesPanel');
    const bar = el('div', 'swm-SitesPanel-bar');
    const refresh = el('button', 'jp-mod-styled swm-Refresh', 'Refresh');
    refresh.addEventListener('click', () => void this.refresh());
    bar.appendChild(refresh);
    this._message = el('div', 'swm-SitesPanel-message');
    this._list = el('div', 'swm-SitesPanel-list');
    this.node.append(bar, this._message, this._list);
  }

  get sites(): ISite[] {
    return this._sites;
  }

  refresh(): Promise<void> {
    if (!this._loading) {
      this._loading = this._load().finally(() => {
        this._loading = null;
      });
    }
    return this._loading;
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  private async _load(): Promise<void> {
    try {
      const answer = await this._sync.api.sites();
      this._sites = answer.sites;
      this._default = answer.default;
      this._message.textContent = '';
    } catch (err) {
      this._message.textContent = errorText(err);
    }
    this._render();
  }

  private _render(): void {
    this._list.textContent = '';
    for (const site of this._sites) {
      const card = el('div', `swm-SiteCard${site.healthy ? '' : ' swm-mod-unhealthy'}`);
      card.dataset.site = site.name;
      const head = el('div', 'swm-SiteCard-head');
      head.append(
        el(
          'span',
          `swm-Health ${site.healthy ? 'swm-mod-ok' : 'swm-mod-bad'}`,
          site.healthy ? '●' : '✕'
        ),
        el('strong', '', site.name),
        el(
          'span',
          'swm-SiteCard-kind',
          `gate: ${site.kind}${site.name === this._default ? ' · default' : ''}`
        )
      );
      card.appendChild(head);
      if (site.description) {
        card.appendChild(el('div', 'swm-SiteCard-desc', site.description));
      }
      if (!site.healthy) {
        card.appendChild(el('div', 'swm-SiteCard-health', site.health_message || 'unavailable'));
      }
      const l = site.limits ?? {};
      const limits: string[] = [];
      if (l.nodes) {
        limits.push(`${l.nodes} nodes`);
      }
      if (l.cpus) {
        limits.push(`${l.cpus} CPUs`);
      }
      if (l.memory) {
        limits.push(`${l.memory} MB`);
      }
      if (l.gpus) {
        limits.push(`${l.gpus} GPUs`);
      }
      if (l.walltime) {
        limits.push(`walltime ${formatDuration(l.walltime)}`);
      }
      if (site.max_running) {
        limits.push(`${site.max_running} running at most`);
      }
      if (limits.length) {
        card.appendChild(el('div', 'swm-SiteCard-limits', `Limits: ${limits.join(', ')}`));
      }
      const counts = site.counts ?? {};
      const c = STATES.filter(s => counts[s]).map(s => `${counts[s]} ${s}`);
      if (c.length) {
        card.appendChild(el('div', 'swm-SiteCard-counts', `Jobs: ${c.join(', ')}`));
      }
      if (site.flavors?.length) {
        const t = el('table', 'swm-FlavorTable');
        const h = el('tr', '');
        for (const x of ['Flavor', 'CPUs', 'GPUs', 'Memory', 'Price/h']) {
          h.appendChild(el('th', '', x));
        }
        t.appendChild(h);
        for (const f of site.flavors) {
          const tr = el('tr', '');
          tr.append(
            el('td', '', f.name),
            el('td', '', String(f.cpus)),
            el('td', '', String(f.gpus)),
            el('td', '', `${f.mem} MB`),
            el('td', '', f.price.toFixed(2))
          );
          t.appendChild(tr);
        }
        card.appendChild(t);
      }
      if (site.images?.length) {
        card.appendChild(
          el(
            'div',
            'swm-SiteCard-images',
            `Images: ${site.images.map(i => `${i.name} (${i.kind})`).join(', ')}`
          )
        );
      }
      this._list.appendChild(card);
    }
  }
}
