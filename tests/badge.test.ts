// Badges: the SVG is well-formed XML whatever the label (checked by the small XML reader of
// tests/xml.ts, not by the code under test), holds no script or external reference, and
// shields.io's endpoint JSON has its schema; colours and uptime text.

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
import { assertSafeSvg, parseXml, texts, walk } from './xml.ts';

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
