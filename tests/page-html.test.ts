// page.html as a file: the server's Content-Security-Policy hashes exactly one inline
// <style> and one inline <script>, so the page must keep that shape, and its script must
// never turn service text into markup. This catches an edit that breaks either before the
// browser test does, and on machines without Chromium.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers.ts';

const html = readFileSync(join(ROOT, 'page.html'), 'utf8');
const script = /<script>([^]*?)<\/script>/.exec(html)?.[1] ?? '';

test('page.html has exactly one <style> and one <script>, both without attributes', () => {
  assert.equal(html.match(/<style\b/gi)?.length, 1);
  assert.equal(html.match(/<script\b/gi)?.length, 1);
  assert.match(html, /<style>[^]*?<\/style>/);
  assert.match(html, /<script>[^]*?<\/script>/);
});

test('page.html has no style or event-handler attributes, which the CSP would block', () => {
  const markup = html.replace(/<style>[^]*?<\/style>/, '').replace(/<script>[^]*?<\/script>/, '');
  assert.doesNotMatch(markup, /\sstyle\s*=/i);
  assert.doesNotMatch(markup, /\son[a-z]+\s*=/i);
});

test('page.html loads nothing from elsewhere and opens a relative EventSource', () => {
  assert.doesNotMatch(html.replace('"http://www.w3.org/2000/svg"', ''), /(src|href)\s*=\s*["']?(https?:)?\/\//i);
  assert.doesNotMatch(html, /@import|url\(\s*["']?(https?:)?\/\//i);
  assert.match(script, /new EventSource\(url\("events"\)\)/);
  assert.doesNotMatch(script, /EventSource\(\s*["']\//);
  // Every request goes through url(), which builds relative URLs (an Nginx sub-path).
  for (const call of script.match(/fetch\([^,)]*/g) ?? []) assert.match(call, /^fetch\((url\(|u$)/, call);
});

test('the script never parses text as HTML and never writes a style attribute', () => {
  for (const sink of [
    'innerHTML',
    'outerHTML',
    'insertAdjacentHTML',
    'document.write',
    'eval(',
    'new Function',
    'createContextualFragment',
    'DOMParser',
    'cssText',
  ]) {
    assert.equal(script.includes(sink), false, `the script uses ${sink}`);
  }
  assert.doesNotMatch(script, /setAttribute\(\s*["'](style|on[a-z]+)["']/i);
  // CSSOM writes (el.style.left = ...) are allowed under a hash-only style-src; a string is not.
  assert.doesNotMatch(script, /\.style\s*=/);
});

test("the Web Lock and the BroadcastChannel are named by the page's path", () => {
  assert.match(script, /var KEY = "status-stream-" \+ location\.pathname;/);
  assert.match(script, /new BroadcastChannel\(KEY\)/);
  assert.match(script, /locks\.request\(KEY,/);
});

test('the ?token= leaves the address bar through history.replaceState', () => {
  assert.match(script, /params\.delete\("token"\)/);
  assert.match(script, /history\.replaceState\(/);
});
