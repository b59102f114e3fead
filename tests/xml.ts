// tests/xml.ts: a strict XML reader for the badge suites, written independently of badge.ts so
// that a badge is judged by other code than the code that made it; it only reads, and never
// accepts what a browser would treat as markup beyond a self-contained SVG.

import assert from 'node:assert/strict';

export interface XmlElement {
  readonly name: string;
  readonly attributes: Map<string, string>;
  readonly children: XmlElement[];
  text: string;
}

const NAME_START = (c: string): boolean => /[A-Za-z_:]/.test(c);
const NAME_CHAR = (c: string): boolean => /[A-Za-z0-9_:.-]/.test(c);
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/**
 * A strict reader for the XML subset a badge may use: elements, attributes in quotes, text and
 * the five predefined entities or character references. Anything else (a raw `<` or `&` in text,
 * a comment, a processing instruction, CDATA, a DOCTYPE, unbalanced tags, text outside the root,
 * a duplicate attribute, a control character) throws.
 */
export function parseXml(source: string): XmlElement {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`${what} at ${i}: ${JSON.stringify(source.slice(Math.max(0, i - 20), i + 20))}`);
  };
  const readName = (): string => {
    const start = i;
    if (!NAME_START(source[i] ?? '')) fail('expected a name');
    while (i < source.length && NAME_CHAR(source[i]!)) i++;
    return source.slice(start, i);
  };
  const skipSpace = (): void => {
    while (i < source.length && ' \t\r\n'.includes(source[i]!)) i++;
  };
  const readChars = (stop: string): string => {
    let out = '';
    while (i < source.length && source[i] !== stop) {
      const c = source[i]!;
      const code = c.charCodeAt(0);
      if (code < 0x20 && !'\t\r\n'.includes(c)) fail('control character');
      if (c === '<') fail('raw < in character data');
      if (c === '&') {
        const end = source.indexOf(';', i);
        if (end === -1) fail('unterminated reference');
        const ref = source.slice(i + 1, end);
        if (/^#[0-9]+$/.test(ref)) out += String.fromCodePoint(Number(ref.slice(1)));
        else if (/^#x[0-9a-fA-F]+$/.test(ref)) out += String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
        else if (Object.hasOwn(ENTITIES, ref)) out += ENTITIES[ref];
        else fail(`unknown entity &${ref};`);
        i = end + 1;
        continue;
      }
      out += c;
      i++;
    }
    return out;
  };
  const readElement = (): XmlElement => {
    if (source[i] !== '<') fail('expected <');
    i++;
    const element: XmlElement = { name: readName(), attributes: new Map(), children: [], text: '' };
    for (;;) {
      const before = i;
      skipSpace();
      if (source.startsWith('/>', i)) {
        i += 2;
        return element;
      }
      if (source[i] === '>') {
        i++;
        break;
      }
      if (i === before) fail('expected a space before an attribute');
      const name = readName();
      if (element.attributes.has(name)) fail(`duplicate attribute ${name}`);
      skipSpace();
      if (source[i] !== '=') fail('expected =');
      i++;
      skipSpace();
      const quote = source[i];
      if (quote !== '"' && quote !== "'") fail('expected a quoted value');
      i++;
      const value = readChars(quote!);
      if (source[i] !== quote) fail('unterminated attribute');
      i++;
      element.attributes.set(name, value);
    }
    for (;;) {
      element.text += readChars('<');
      if (i >= source.length) fail(`unclosed <${element.name}>`);
      if (source.startsWith('</', i)) {
        i += 2;
        const name = readName();
        if (name !== element.name) fail(`</${name}> closes <${element.name}>`);
        skipSpace();
        if (source[i] !== '>') fail('expected >');
        i++;
        return element;
      }
      if (source.startsWith('<!', i) || source.startsWith('<?', i)) fail('markup declaration');
      element.children.push(readElement());
    }
  };
  const root = readElement();
  if (i !== source.length) fail('content after the root element');
  return root;
}

/** The element and all below it, depth first. */
export function* walk(element: XmlElement): Generator<XmlElement> {
  yield element;
  for (const child of element.children) yield* walk(child);
}

const ALLOWED_ELEMENTS = new Set(['svg', 'title', 'linearGradient', 'stop', 'clipPath', 'rect', 'g', 'text']);

/** Parses the SVG and asserts it is self-contained: known elements only, no event handler, no reference out. */
export function assertSafeSvg(svg: string): XmlElement {
  const root = parseXml(svg);
  assert.equal(root.name, 'svg');
  assert.equal(root.attributes.get('xmlns'), 'http://www.w3.org/2000/svg');
  const ids = new Set([...walk(root)].map((e) => e.attributes.get('id')));
  for (const element of walk(root)) {
    assert.ok(ALLOWED_ELEMENTS.has(element.name), `unexpected element <${element.name}>`);
    for (const [name, value] of element.attributes) {
      assert.ok(!/^on/i.test(name), `event handler attribute ${name}`);
      assert.ok(!/href$/i.test(name) && name !== 'style' && name !== 'src', `attribute ${name}`);
      // aria-label is text, like <title>; every other attribute is ours.
      if (name === 'aria-label' || name === 'xmlns') continue;
      assert.doesNotMatch(value, /[a-z]+:\/\//i, `a URL in ${name}`);
      // The only url() allowed points to an element of this document: url(#id).
      for (const ref of value.matchAll(/url\(([^)]*)\)/g)) {
        assert.ok(ref[1]!.startsWith('#') && ids.has(ref[1]!.slice(1)), `reference ${ref[0]}`);
      }
    }
  }
  // Belt and braces over the parse: no such tag even as raw text (a hostile label's `<` is escaped).
  assert.doesNotMatch(svg, /<script|<image|<foreignObject|<style|<iframe|<a[\s>]/i);
  return root;
}

/** The text of every <text> element, in document order. */
export const texts = (root: XmlElement): string[] =>
  [...walk(root)].filter((e) => e.name === 'text').map((e) => e.text);
