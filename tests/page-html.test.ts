// page.html as a file: the server's Content-Security-Policy hashes exactly one inline
// <style> and one inline <script>, so the page must keep that shape. This catches an edit
// that breaks it before the browser test does, and on machines without Chromium.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers.ts';

const html = readFileSync(join(ROOT, 'page.html'), 'utf8');

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
  assert.match(html, /new EventSource\(/);
  assert.doesNotMatch(html, /EventSource\(\s*["']\//);
});
