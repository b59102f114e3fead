// checks/url.ts: how a check's URL is shown. A shown URL never holds credentials, query
// values or the fragment: a monitoring URL often carries an API key (see docs/checks.md).

/**
 * The URL without credentials and fragment, each query value replaced by '…':
 * `https://u:p@h/x?apikey=Pa55&v` → `https://h/x?apikey=…&…`. A query part without '='
 * may itself be a secret, so it is shown as '…' too.
 */
export function redactUrl(url: URL): string {
  const parts = url.search === '' ? [] : url.search.slice(1).split('&');
  const query = parts.map((part) => {
    const eq = part.indexOf('=');
    return eq === -1 ? (part === '' ? '' : '…') : `${part.slice(0, eq)}=…`;
  });
  // url.host is empty for a URL without one (push://); the // stays, as in the URL given.
  const slashes = url.href.startsWith(`${url.protocol}//`) ? '//' : '';
  return `${url.protocol}${slashes}${url.host}${url.pathname}${parts.length > 0 ? `?${query.join('&')}` : ''}`;
}

/**
 * For text that did not parse as a URL (a config error quotes it): anything between "//"
 * and an "@" (credentials), and every query value and fragment, replaced by '…'.
 */
export function redactUnparsedUrl(text: string): string {
  return text
    .replace(/^([^/]*\/\/)[^/?#]*@/, '$1…@')
    .replace(/([?&][^=&#]*=)[^&#]*/g, '$1…')
    .replace(/#.*$/, '#…');
}

/** The host as node:net and node:tls take it: IPv6 without its brackets. */
export function connectHost(url: URL): string {
  return url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
}

/** The URL's port, or the scheme's default (80 for http, 443 for https). */
export function portOf(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'https:' ? 443 : 80;
}
