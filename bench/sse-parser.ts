// bench/sse-parser.ts: the load generator's client side of the wire, written against the
// specs rather than against our server, so that it measures any SSE server the same way:
// an HTTP/1.1 response head, then the chunked transfer coding (RFC 9112 §7.1) or a
// close-delimited body, then the event stream (WHATWG HTML §9.2.6, "Interpreting an event
// stream"). Bytes may be split anywhere: inside the head, a chunk-size line, a CRLF, a
// UTF-8 sequence, a line or a frame. Never touches a socket: the caller feeds it bytes.

import { StringDecoder } from 'node:string_decoder';

/** The longest response head accepted; Node's own default for requests is 16 KiB. */
const MAX_HEAD_BYTES = 16 * 1024;
/** The longest chunk-size line accepted (hex digits plus chunk extensions). */
const MAX_CHUNK_LINE_BYTES = 1024;

/** U+FEFF's UTF-8 bytes read one character a byte. */
const LATIN1_BOM = '\xef\xbb\xbf';
const CR = 13;
const LF = 10;
const COLON = 58;
const SPACE = 32;

export interface ResponseHead {
  readonly statusCode: number;
  /** Header names lower-cased; repeated headers joined with ", ". */
  readonly headers: Readonly<Record<string, string>>;
  readonly chunked: boolean;
}

/** Parses a response head (status line and header lines, without the final blank line). */
export function parseResponseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!status) throw new Error(`sse-parser: bad status line ${JSON.stringify((lines[0] ?? '').slice(0, 80))}`);
  const headers: Record<string, string> = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`sse-parser: bad header line ${JSON.stringify(line.slice(0, 80))}`);
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  // RFC 9112 §6.3: chunked is the final coding when it is last in Transfer-Encoding.
  const te = (headers['transfer-encoding'] ?? '')
    .toLowerCase()
    .split(',')
    .map((s) => s.trim());
  return { statusCode: Number(status[1]), headers, chunked: te[te.length - 1] === 'chunked' };
}

/**
 * Decodes the chunked transfer coding incrementally. `onData` receives views into the
 * caller's buffers (no copies); `onEnd` runs once after the last chunk and its trailers.
 */
export class ChunkedDecoder {
  private state: 'size' | 'ext' | 'sizeLF' | 'data' | 'dataCR' | 'dataLF' | 'trailer' | 'trailerLF' | 'done' = 'size';
  private size = 0;
  private sizeDigits = 0;
  private lineBytes = 0;
  private trailerLineBytes = 0;
  private remaining = 0;
  private readonly onData: (bytes: Buffer) => void;
  private readonly onEnd: () => void;

  constructor(onData: (bytes: Buffer) => void, onEnd: () => void) {
    this.onData = onData;
    this.onEnd = onEnd;
  }

  get done(): boolean {
    return this.state === 'done';
  }

  feed(buf: Buffer): void {
    let i = 0;
    const n = buf.length;
    while (i < n) {
      switch (this.state) {
        case 'size': {
          const c = buf[i] as number;
          const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (digit >= 0) {
            if (++this.sizeDigits > 12) throw new Error('sse-parser: chunk size too large');
            this.size = this.size * 16 + digit;
          } else if (this.sizeDigits === 0) {
            throw new Error(`sse-parser: bad chunk size byte ${c}`);
          } else if (c === CR) {
            this.state = 'sizeLF';
          } else if (c === 59 /* ; */ || c === SPACE || c === 9) {
            this.state = 'ext';
          } else {
            throw new Error(`sse-parser: bad chunk size byte ${c}`);
          }
          if (++this.lineBytes > MAX_CHUNK_LINE_BYTES) throw new Error('sse-parser: chunk-size line too long');
          i++;
          break;
        }
        case 'ext': {
          // Chunk extensions are ignored (RFC 9112 §7.1.1); skip to the CR.
          const cr = buf.indexOf(CR, i);
          const end = cr === -1 ? n : cr;
          this.lineBytes += end - i;
          if (this.lineBytes > MAX_CHUNK_LINE_BYTES) throw new Error('sse-parser: chunk-size line too long');
          i = end;
          if (cr !== -1) {
            this.state = 'sizeLF';
            i++;
          }
          break;
        }
        case 'sizeLF': {
          if (buf[i] !== LF) throw new Error('sse-parser: chunk-size line not ended by CRLF');
          i++;
          this.lineBytes = 0;
          this.sizeDigits = 0;
          if (this.size === 0) {
            this.state = 'trailer';
          } else {
            this.remaining = this.size;
            this.state = 'data';
          }
          this.size = 0;
          break;
        }
        case 'data': {
          const take = Math.min(this.remaining, n - i);
          this.onData(buf.subarray(i, i + take));
          this.remaining -= take;
          i += take;
          if (this.remaining === 0) this.state = 'dataCR';
          break;
        }
        case 'dataCR':
          if (buf[i] !== CR) throw new Error('sse-parser: chunk data not followed by CRLF');
          this.state = 'dataLF';
          i++;
          break;
        case 'dataLF':
          if (buf[i] !== LF) throw new Error('sse-parser: chunk data not followed by CRLF');
          this.state = 'size';
          i++;
          break;
        case 'trailer': {
          // Trailer fields, each ended by CRLF; an empty line ends the message.
          const c = buf[i] as number;
          i++;
          if (c === CR) {
            this.state = 'trailerLF';
          } else if (++this.trailerLineBytes > MAX_HEAD_BYTES) {
            throw new Error('sse-parser: trailer too long');
          }
          break;
        }
        case 'trailerLF': {
          if (buf[i] !== LF) throw new Error('sse-parser: trailer line not ended by CRLF');
          i++;
          if (this.trailerLineBytes === 0) {
            this.state = 'done';
            this.onEnd();
          } else {
            this.trailerLineBytes = 0;
            this.state = 'trailer';
          }
          break;
        }
        case 'done':
          throw new Error('sse-parser: bytes after the last chunk');
      }
    }
  }
}

/** One dispatched event, as EventSource would hand it to a listener. */
export interface SseEvent {
  /** The `event:` field, or "message". */
  readonly type: string;
  /** The `data:` lines joined with "\n". */
  readonly data: string;
  /** The last event ID string after this event (it persists across events). */
  readonly lastEventId: string;
}

/**
 * `text` as a string of its own. V8 makes a slice of a long string a view into it, which keeps
 * all of it alive; a string kept past the read it came from must not be one.
 */
function detached(text: string): string {
  return text.length < 13 ? text : Buffer.from(text, 'utf8').toString('utf8');
}

/**
 * The event-stream interpreter of WHATWG HTML §9.2.6, fed with decoded body bytes.
 * Lines end with CRLF, LF or CR; a CR at the end of one feed followed by LF at the start
 * of the next is one line end.
 */
export class SseParser {
  /** The reconnection time from the last valid `retry:` field, or -1. */
  retryMs = -1;
  /** Comment lines seen (heartbeats are comments). */
  comments = 0;
  private readonly decoder: StringDecoder;
  private readonly latin1: boolean;
  private readonly onEvent: (event: SseEvent) => void;
  /** latin1: the start of the stream while it may still be a byte order mark. */
  private bomHead = '';
  private pending = '';
  private skipLF = false;
  private started = false;
  private data = '';
  private hasData = false;
  private eventType = '';
  private lastEventIdBuffer = '';

  /**
   * `latin1`: one character per byte instead of UTF-8 decoding, for the load generator. Every
   * byte the format gives meaning to (line ends, colon, space, the field names) is ASCII, so
   * events, types and ids come out the same; only a value's non-ASCII text comes out as
   * several characters (its UTF-8 bytes). Decoding 10 KiB snapshots with some non-ASCII text
   * (a redacted query's `…`) costs four times as much CPU in UTF-8, and the load generator
   * reads nothing but ASCII fields.
   */
  constructor(onEvent: (event: SseEvent) => void, options: { latin1?: boolean } = {}) {
    this.onEvent = onEvent;
    this.latin1 = options.latin1 === true;
    this.decoder = new StringDecoder(this.latin1 ? 'latin1' : 'utf8');
  }

  feed(bytes: Buffer): void {
    let text = this.decoder.write(bytes);
    if (!this.started) {
      // "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are present."
      if (this.latin1) {
        text = this.bomHead + text;
        if (text.length < LATIN1_BOM.length && LATIN1_BOM.startsWith(text)) {
          this.bomHead = text;
          return;
        }
        this.bomHead = '';
        this.started = true;
        if (text.startsWith(LATIN1_BOM)) text = text.slice(LATIN1_BOM.length);
      } else if (text.length > 0) {
        this.started = true;
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      }
    }
    if (text.length === 0) return;
    let i = 0;
    // skipLF is set only when a CR ended the previous feed, which leaves nothing pending.
    if (this.skipLF) {
      this.skipLF = false;
      if (text.charCodeAt(0) === LF) i = 1;
    }
    const s = this.pending.length > 0 ? this.pending + text : text;
    this.pending = '';
    const n = s.length;
    // Native indexOf for both line ends; a stream without CR searches for it once.
    let lf = s.indexOf('\n', i);
    let cr = s.indexOf('\r', i);
    while (i < n) {
      if (lf !== -1 && lf < i) lf = s.indexOf('\n', i);
      if (cr !== -1 && cr < i) cr = s.indexOf('\r', i);
      let j: number;
      if (cr === -1 || (lf !== -1 && lf < cr)) {
        if (lf === -1) break;
        j = lf;
        this.line(s, i, j);
      } else {
        j = cr;
        this.line(s, i, j);
        if (j + 1 < n) {
          if (s.charCodeAt(j + 1) === LF) j++;
        } else {
          this.skipLF = true;
        }
      }
      i = j + 1;
    }
    if (i < n) this.pending = detached(s.slice(i));
  }

  /** Bytes of an unfinished line held back; a bound for the caller to check. */
  get pendingLength(): number {
    return this.pending.length;
  }

  private line(s: string, start: number, end: number): void {
    if (start === end) {
      this.dispatch();
      return;
    }
    if (s.charCodeAt(start) === COLON) {
      this.comments++;
      return;
    }
    const colon = s.indexOf(':', start);
    let field: string;
    let value: string;
    if (colon === -1 || colon >= end) {
      field = s.slice(start, end);
      value = '';
    } else {
      field = s.slice(start, colon);
      let v = colon + 1;
      if (v < end && s.charCodeAt(v) === SPACE) v++;
      value = s.slice(v, end);
    }
    switch (field) {
      case 'data':
        this.data = this.hasData ? `${this.data}\n${value}` : value;
        this.hasData = true;
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'id':
        // A copy: a slice would keep the whole decoded read alive for as long as the id is
        // kept (until the next id), which at 10,000 streams of 10 KiB events is 100 MB.
        if (value.indexOf('\0') === -1) this.lastEventIdBuffer = detached(value);
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.retryMs = Number(value);
        break;
      default:
        // "Otherwise: The field is ignored."
        break;
    }
  }

  private dispatch(): void {
    const type = this.eventType === '' ? 'message' : this.eventType;
    const hasData = this.hasData;
    const data = this.data;
    this.data = '';
    this.hasData = false;
    this.eventType = '';
    // "If the data buffer is an empty string, set the data buffer and the event type
    // buffer to the empty string and return." The id is kept all the same.
    if (!hasData) return;
    this.onEvent({ type, data, lastEventId: this.lastEventIdBuffer });
  }
}

/**
 * Splits a response into head and body. Call `feed` with each socket read; `onHead`
 * runs once, then `onBody` gets the (de-chunked) body bytes, `onEnd` the end of a
 * chunked body. Keeps no reference to a buffer it was fed, so the caller may reuse it.
 */
export class ResponseParser {
  head: ResponseHead | null = null;
  private headBuf: Buffer | null = null;
  private chunked: ChunkedDecoder | null = null;
  private readonly onHead: (head: ResponseHead) => void;
  private readonly onBody: (bytes: Buffer) => void;
  private readonly onEnd: () => void;

  constructor(onHead: (head: ResponseHead) => void, onBody: (bytes: Buffer) => void, onEnd: () => void) {
    this.onHead = onHead;
    this.onBody = onBody;
    this.onEnd = onEnd;
  }

  feed(buf: Buffer): void {
    if (this.head !== null) {
      if (this.chunked !== null) this.chunked.feed(buf);
      else this.onBody(buf);
      return;
    }
    const all = this.headBuf === null ? buf : Buffer.concat([this.headBuf, buf]);
    const end = all.indexOf('\r\n\r\n');
    if (end === -1) {
      if (all.length > MAX_HEAD_BYTES) throw new Error('sse-parser: response head too long');
      // A copy: the caller may reuse `buf` for its next read.
      this.headBuf = all === buf ? Buffer.from(buf) : all;
      return;
    }
    this.headBuf = null;
    const head = parseResponseHead(all.toString('latin1', 0, end));
    this.head = head;
    if (head.chunked) this.chunked = new ChunkedDecoder(this.onBody, this.onEnd);
    this.onHead(head);
    const rest = all.subarray(end + 4);
    if (rest.length > 0) this.feed(rest);
  }
}
