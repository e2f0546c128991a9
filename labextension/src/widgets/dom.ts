/** The one DOM helper of the widgets: make an element with a class and text in one call. */

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
