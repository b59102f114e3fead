// badge.ts: status badges: a flat shields.io-style SVG, and shields.io's endpoint JSON.
// It never lets a text become markup: every text is cleaned and XML-escaped, and the SVG holds
// no script, no style and no reference outside itself.
//
// Routes and examples: docs/alerts.md#badges. Endpoint schema: https://shields.io/badges/endpoint-badge

import type { CheckState } from './status.ts';

/** Longer labels and messages are cut to this many characters, the last one `…`. */
export const BADGE_MAX_CHARS = 60;

// shields.io's named colours (badge-maker), and its aliases.
const NAMED_COLORS: Readonly<Record<string, string>> = {
  brightgreen: '#4c1',
  green: '#97ca00',
  yellowgreen: '#a4a61d',
  yellow: '#dfb317',
  orange: '#fe7d37',
  red: '#e05d44',
  blue: '#007ec6',
  grey: '#555',
  gray: '#555',
  lightgrey: '#9f9f9f',
  lightgray: '#9f9f9f',
  success: '#4c1',
  important: '#fe7d37',
  critical: '#e05d44',
  informational: '#007ec6',
  inactive: '#9f9f9f',
};
const HEX_COLOR = /^#?([0-9a-f]{3}|[0-9a-f]{6})$/i;

/** A check's state (or the overall status) as a colour name; null = unknown. */
export function stateColor(state: CheckState | null): string {
  if (state === 'up') return 'brightgreen';
  if (state === 'degraded') return 'orange';
  if (state === 'down') return 'red';
  return 'lightgrey';
}

/** An uptime percentage as a colour name: >= 99.9 brightgreen, >= 99 green, >= 95 yellow, else red; null = no data. */
export function uptimeColor(percent: number | null): string {
  if (percent === null || !Number.isFinite(percent)) return 'lightgrey';
  if (percent >= 99.9) return 'brightgreen';
  if (percent >= 99) return 'green';
  if (percent >= 95) return 'yellow';
  return 'red';
}

/** `99.95%`, `100%`, `n/a` for null. Rounded down, so `100%` is never a rounded 99.999. */
export function formatUptime(percent: number | null): string {
  if (percent === null || !Number.isFinite(percent)) return 'n/a';
  const clamped = Math.min(100, Math.max(0, percent));
  // The epsilon keeps 99.95 (stored as 99.94999…) at 99.95.
  return `${Math.floor(clamped * 100 + 1e-6) / 100}%`;
}

/**
 * A badge's text as shown: line breaks and tabs become spaces; other control characters,
 * bidirectional overrides (which could make a label read backwards), noncharacters and lone
 * surrogates are removed (XML 1.0 allows none of them); cut to BADGE_MAX_CHARS.
 */
export function badgeText(text: string): string {
  const cleaned = text
    .replace(/[\t\n\r]/g, ' ')
    .replace(/[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffe\uffff]/g, '')
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '')
    .trim();
  const chars = Array.from(cleaned);
  return chars.length > BADGE_MAX_CHARS ? `${chars.slice(0, BADGE_MAX_CHARS - 1).join('')}…` : cleaned;
}

/** shields.io's endpoint badge JSON: `{"schemaVersion":1,"label","message","color"}`. */
export function shieldsEndpoint(label: string, message: string, color: string): string {
  const known = Object.hasOwn(NAMED_COLORS, color) || HEX_COLOR.test(color);
  return JSON.stringify({
    schemaVersion: 1,
    label: badgeText(label),
    message: badgeText(message),
    color: known ? color : 'lightgrey',
  });
}

// Advance widths of Verdana at 11 px for U+0020..U+007E (the font's units / 2048 * 11), the
// font shields.io measures with; other characters are estimated. textLength in the SVG makes the
// text fill exactly the estimated width, so an estimate that is off shows as spacing, not overflow.
// biome-ignore format: a table, one row per 16 characters
const VERDANA_11PX = [
  3.87, 4.33, 5.05, 9.0, 6.99, 11.84, 7.99, 2.95, 4.99, 4.99, 6.99, 9.0, 4.0, 4.99, 4.0, 4.99, // ' '..'/'
  6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 6.99, 4.99, 4.99, 9.0, 9.0, 9.0, 6.0, // '0'..'?'
  11.0, 7.52, 7.54, 7.68, 8.48, 6.96, 6.32, 8.53, 8.27, 4.63, 5.0, 7.62, 6.12, 9.27, 8.23, 8.66, // '@'..'O'
  6.63, 8.66, 7.65, 7.52, 6.78, 8.05, 7.52, 10.88, 7.54, 6.77, 7.54, 4.99, 4.99, 4.99, 9.0, 6.99, // 'P'..'_'
  6.99, 6.61, 6.85, 5.73, 6.85, 6.55, 3.87, 6.85, 6.96, 3.02, 3.79, 6.51, 3.02, 10.7, 6.96, 6.68, // '`'..'o'
  6.85, 6.85, 4.69, 5.73, 4.33, 6.96, 6.51, 8.98, 6.51, 6.51, 5.78, 6.98, 4.99, 6.98, 9.0, // 'p'..'~'
];
const OTHER_WIDTH = 7; // accented Latin, Greek, Cyrillic: about an average lowercase letter
const WIDE_WIDTH = 11; // from U+1100 (Hangul, CJK, emoji): about a square

/** Estimated width in px of `text` in Verdana 11 px. */
export function textWidth(text: string): number {
  let width = 0;
  for (const ch of text) {
    const code = ch.codePointAt(0) ?? 0;
    width += VERDANA_11PX[code - 0x20] ?? (code >= 0x1100 ? WIDE_WIDTH : OTHER_WIDTH);
  }
  return width;
}

const XML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
};

/** XML 1.0 escaping, safe in text and in attribute values of either quote. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => XML_ESCAPES[ch] ?? ch);
}

/**
 * A flat shields.io-style badge: a grey label on the left, the message on `color` (a shields.io
 * colour name or a hex colour; anything else is lightgrey). An empty label draws the message
 * alone. Texts are cleaned (see badgeText) and XML-escaped; the SVG references only its own
 * gradient and clip path.
 */
export function badgeSvg(label: string, message: string, color: string): string {
  const labelText = badgeText(label);
  const messageText = badgeText(message);
  const fill = colorHex(color);
  // shields.io's flat layout: 5 px padding each side, text drawn at 10x size and scaled by .1.
  const labelWidth = labelText === '' ? 0 : Math.round(textWidth(labelText)) + 10;
  const messageWidth = Math.round(textWidth(messageText)) + 10;
  const width = labelWidth + messageWidth;
  const aria = escapeXml(labelText === '' ? messageText : `${labelText}: ${messageText}`);
  const dark = isLight(fill);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="20" role="img" aria-label="${aria}">`,
    `<title>${aria}</title>`,
    '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/>',
    '<stop offset="1" stop-opacity=".1"/></linearGradient>',
    // The clip's id carries its width: badges inlined in one page share ids, and only badges of
    // the same width may share a clip (the gradient is the same in all).
    `<clipPath id="r${width}"><rect width="${width}" height="20" rx="3" fill="#fff"/></clipPath>`,
    `<g clip-path="url(#r${width})">`,
    labelWidth > 0 ? `<rect width="${labelWidth}" height="20" fill="#555"/>` : '',
    `<rect x="${labelWidth}" width="${messageWidth}" height="20" fill="${fill}"/>`,
    `<rect width="${width}" height="20" fill="url(#s)"/></g>`,
    '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" ',
    'text-rendering="geometricPrecision" font-size="110">',
    labelWidth > 0 ? svgText(labelText, labelWidth / 2, false) : '',
    svgText(messageText, labelWidth + messageWidth / 2, dark),
    '</g></svg>',
  ];
  return parts.join('');
}

// One text with its shadow, centred at `centerX` px.
function svgText(text: string, centerX: number, dark: boolean): string {
  const x = Math.round(centerX * 10);
  const length = Math.round(textWidth(text)) * 10;
  const escaped = escapeXml(text);
  const [fill, shadow] = dark ? ['#333', '#ccc'] : ['#fff', '#010101'];
  return (
    `<text aria-hidden="true" x="${x}" y="150" fill="${shadow}" fill-opacity=".3" transform="scale(.1)" ` +
    `textLength="${length}">${escaped}</text>` +
    `<text x="${x}" y="140" transform="scale(.1)" fill="${fill}" textLength="${length}">${escaped}</text>`
  );
}

function colorHex(color: string): string {
  const named = Object.hasOwn(NAMED_COLORS, color) ? NAMED_COLORS[color] : undefined;
  const hex = HEX_COLOR.exec(color)?.[1];
  return named ?? (hex === undefined ? '#9f9f9f' : `#${hex.toLowerCase()}`);
}

// shields.io draws dark text on light colours; the same brightness rule (YIQ weights).
function isLight(hex: string): boolean {
  const digits =
    hex.length === 4 ? [...hex.slice(1)].map((d) => d + d) : [hex.slice(1, 3), hex.slice(3, 5), hex.slice(5, 7)];
  const [r, g, b] = digits.map((d) => Number.parseInt(d, 16)) as [number, number, number];
  return (r * 299 + g * 587 + b * 114) / 255_000 >= 0.69;
}
