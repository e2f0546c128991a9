/** The DOM helpers of the widgets: make an element with a class and text in one call; fill a site menu. */

/** A new `tag` element with class name `cls` (none when empty) and text content `text`. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/**
 * Fill `select` with "All sites" and `sites`, keeping its choice while that site is listed.
 * Does nothing when the sites are those it already shows (remembered in `data-sites`).
 */
export function fillSiteSelect(select: HTMLSelectElement, sites: string[]): void {
  const key = sites.join('\n');
  if (select.dataset.sites === key) {
    return;
  }
  select.dataset.sites = key;
  const current = select.value;
  select.textContent = '';
  const all = el('option', '', 'All sites');
  all.value = '';
  select.appendChild(all);
  for (const s of sites) {
    const o = el('option', '', s);
    o.value = s;
    select.appendChild(o);
  }
  select.value = sites.includes(current) ? current : '';
}
