// Badges: the SVG is well-formed XML whatever the label (checked by a small XML reader written
// here, not by the code under test), holds no script or external reference, and shields.io's
// endpoint JSON has its schema; colours and uptime text.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BADGE_MAX_CHARS,
  badgeSvg,
  badgeText,
  escapeXml,
  formatUptime,
  shieldsEndpoint,
  stateColor,
  textWidth,
  uptimeColor,
} from '../badge.ts';

interface XmlElement {
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
function parseXml(source: string): XmlElement {
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

function* walk(element: XmlElement): Generator<XmlElement> {
  yield element;
  for (const child of element.children) yield* walk(child);
}

const ALLOWED_ELEMENTS = new Set(['svg', 'title', 'linearGradient', 'stop', 'clipPath', 'rect', 'g', 'text']);

/** Parses the SVG and asserts it is self-contained: known elements only, no event handler, no reference out. */
function assertSafeSvg(svg: string): XmlElement {
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

const texts = (root: XmlElement): string[] => [...walk(root)].filter((e) => e.name === 'text').map((e) => e.text);

test('the XML reader used here rejects what is not well-formed', () => {
  for (const bad of [
    '<a><b></a>',
    '<a>x & y</a>',
    '<a>1 < 2</a>',
    '<a b="1" b="2"/>',
    '<a b="x"y/>',
    '<a/>junk',
    '<a><!-- c --></a>',
    '<a>&nbsp;</a>',
    '<a b=1/>',
    '<a>\u0001</a>',
    '<a>',
    '<a b="<"/>',
  ]) {
    assert.throws(() => parseXml(bad), Error, bad);
  }
  assert.equal(parseXml("<a b='&quot;'>&#60;&#x3e;&amp;</a>").text, '<>&');
});

test('a badge is well-formed SVG with a title, role and aria-label, label and message each with a shadow', () => {
  const svg = badgeSvg('status', 'up', 'brightgreen');
  const root = assertSafeSvg(svg);
  assert.equal(root.attributes.get('role'), 'img');
  assert.equal(root.attributes.get('aria-label'), 'status: up');
  assert.equal(root.children.find((e) => e.name === 'title')?.text, 'status: up');
  assert.deepEqual(texts(root), ['status', 'status', 'up', 'up']);
  const rects = [...walk(root)].filter((e) => e.name === 'rect' && !e.attributes.has('rx'));
  assert.ok(
    rects.some((r) => r.attributes.get('fill') === '#4c1'),
    'message drawn on brightgreen',
  );
  assert.ok(
    rects.some((r) => r.attributes.get('fill') === '#555'),
    'label drawn on grey',
  );
});

test('hostile labels and messages stay text: escaped, no script, tags balanced', () => {
  const hostile = [
    '</text><script>alert(1)</script>',
    `"'&<>`,
    '<svg onload=alert(1)>',
    '&amp; &#60; &lt;',
    ']]><!-- <?xml ?>',
    '<image href="https://evil.example/x.png"/>',
    '<foreignObject><iframe src="javascript:alert(1)"></iframe></foreignObject>',
    'a\u0000b\u0001c\u001bd\u007fe\u0085f\u202eg\ud800h\ufffe',
    'line\nbreak\ttab',
  ];
  for (const label of hostile) {
    for (const svg of [badgeSvg(label, 'up', 'red'), badgeSvg('status', label, 'red'), badgeSvg(label, label, label)]) {
      const root = assertSafeSvg(svg);
      const shown = badgeText(label);
      assert.ok(texts(root).includes(shown), `${JSON.stringify(label)} is shown as text`);
      for (const amp of svg.matchAll(/&/g)) assert.match(svg.slice(amp.index), /^&(amp|lt|gt|quot|apos);/);
    }
  }
});

test('control characters, bidi overrides and lone surrogates are removed; line breaks become spaces', () => {
  assert.equal(badgeText('a\u0000b\u0001c\u001bd\u007fe\u0085f\u202eg\ud800h\udc00i\ufffe'), 'abcdefghi');
  assert.equal(badgeText(' line\nbreak\r\ntab\t '), 'line break  tab');
  assert.equal(badgeText('emoji 😀 kept'), 'emoji 😀 kept');
});

test('long labels are cut to BADGE_MAX_CHARS characters ending with an ellipsis', () => {
  const long = 'x'.repeat(500);
  const root = assertSafeSvg(badgeSvg(long, long, 'green'));
  const [label] = texts(root);
  assert.equal(BADGE_MAX_CHARS, 60);
  assert.equal(Array.from(label!).length, BADGE_MAX_CHARS);
  assert.ok(label!.endsWith('…'));
  // Cut by characters, not UTF-16 units: no half emoji.
  assert.equal(badgeText('😀'.repeat(100)), `${'😀'.repeat(59)}…`);
  assert.equal(badgeText('x'.repeat(60)), 'x'.repeat(60));
});

test('the badge is as wide as its texts, so a longer label widens it', () => {
  const width = (svg: string): number => Number(parseXml(svg).attributes.get('width'));
  const short = width(badgeSvg('ok', 'up', 'green'));
  const long = width(badgeSvg('a much longer label', 'up', 'green'));
  assert.ok(long > short);
  assert.equal(Math.round(textWidth('status')), 34); // Verdana 11 px, as shields.io measures it
  assert.ok(textWidth('WWW') > textWidth('iii'));
  assert.ok(textWidth('界') > textWidth('é'));
});

test('an empty label draws the message alone', () => {
  const root = assertSafeSvg(badgeSvg('', 'down', 'red'));
  assert.deepEqual(texts(root), ['down', 'down']);
  assert.equal(root.attributes.get('aria-label'), 'down');
  assert.ok(![...walk(root)].some((e) => e.attributes.get('fill') === '#555'));
});

test('colours: shields.io names and hex are drawn, anything else is lightgrey; light colours get dark text', () => {
  const messageFill = (color: string): string | undefined => {
    const root = parseXml(badgeSvg('l', 'm', color));
    return [...walk(root)].filter((e) => e.name === 'rect')[2]?.attributes.get('fill');
  };
  assert.equal(messageFill('red'), '#e05d44');
  assert.equal(messageFill('#ABCDEF'), '#abcdef');
  assert.equal(messageFill('abc'), '#abc');
  assert.equal(messageFill('url(https://evil.example)'), '#9f9f9f');
  assert.equal(messageFill('toString'), '#9f9f9f');
  const light = parseXml(badgeSvg('l', 'm', '#fff'));
  assert.equal(texts(light).length, 4);
  assert.ok([...walk(light)].some((e) => e.name === 'text' && e.attributes.get('fill') === '#333'));
});

test("shields.io's endpoint JSON has schemaVersion 1, label, message and a known colour", () => {
  assert.deepEqual(JSON.parse(shieldsEndpoint('web', '99.95%', 'brightgreen')), {
    schemaVersion: 1,
    label: 'web',
    message: '99.95%',
    color: 'brightgreen',
  });
  assert.deepEqual(JSON.parse(shieldsEndpoint('a\u0000b\n', 'x'.repeat(100), 'javascript:alert(1)')), {
    schemaVersion: 1,
    label: 'ab',
    message: `${'x'.repeat(59)}…`,
    color: 'lightgrey',
  });
  assert.equal(JSON.parse(shieldsEndpoint('l', 'm', '#4c1')).color, '#4c1');
});

test('state colours: up brightgreen, degraded orange, down red, unknown lightgrey', () => {
  assert.equal(stateColor('up'), 'brightgreen');
  assert.equal(stateColor('degraded'), 'orange');
  assert.equal(stateColor('down'), 'red');
  assert.equal(stateColor(null), 'lightgrey');
});

test('uptime colours step down at 99.9, 99 and 95 percent; no data is lightgrey', () => {
  assert.equal(uptimeColor(100), 'brightgreen');
  assert.equal(uptimeColor(99.9), 'brightgreen');
  assert.equal(uptimeColor(99.89), 'green');
  assert.equal(uptimeColor(99), 'green');
  assert.equal(uptimeColor(98.99), 'yellow');
  assert.equal(uptimeColor(95), 'yellow');
  assert.equal(uptimeColor(94.99), 'red');
  assert.equal(uptimeColor(null), 'lightgrey');
  assert.equal(uptimeColor(Number.NaN), 'lightgrey');
});

test('uptime text has at most two decimals, rounded down, and n/a without data', () => {
  assert.equal(formatUptime(99.95), '99.95%');
  assert.equal(formatUptime(100), '100%');
  assert.equal(formatUptime(99.999), '99.99%');
  assert.equal(formatUptime(99.9), '99.9%');
  assert.equal(formatUptime(0), '0%');
  assert.equal(formatUptime(150), '100%');
  assert.equal(formatUptime(null), 'n/a');
  assert.equal(formatUptime(Number.POSITIVE_INFINITY), 'n/a');
});

test('escapeXml escapes the five XML specials and nothing else', () => {
  assert.equal(
    escapeXml(`<a href="x">Tom & 'Jerry'</a> é`),
    '&lt;a href=&quot;x&quot;&gt;Tom &amp; &apos;Jerry&apos;&lt;/a&gt; é',
  );
});
