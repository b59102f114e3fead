// bench/parser-pool.ts: counts the request parsers Node's HTTP layer hands out and takes back,
// by wrapping its pool (lib/_http_common.js's `parsers`, server and client side; not a
// documented API). Used by bench/heap-watch.ts and by the tests of a connection's parser.

/** Node's pool of HTTP parsers. */
interface ParserPool {
  list: unknown[];
  alloc(...args: unknown[]): unknown;
  free(parser: unknown): boolean;
}

export interface ParserCounts {
  /** Taken from the pool or made, and not given back. */
  out: number;
  /** The most out at once since the last read. */
  outMax: number;
  pooled: number;
  /** Made because the pool was empty, since the watch began. */
  created: number;
}

export interface ParserWatch {
  /** The counts now; the next outMax counts from here. */
  read(): ParserCounts;
  /** Puts the pool back as it was. */
  stop(): void;
}

/** Starts counting; null where this Node has no such pool. */
export function watchParserPool(): ParserWatch | null {
  const pool = (process.getBuiltinModule?.('_http_common') as { parsers?: ParserPool } | undefined)?.parsers;
  if (pool === undefined) return null;
  let out = 0;
  let outMax = 0;
  let created = 0;
  const { alloc, free } = pool;
  pool.alloc = function (this: ParserPool, ...args: unknown[]) {
    if (this.list.length === 0) created++;
    outMax = Math.max(outMax, ++out);
    return alloc.apply(this, args);
  };
  pool.free = function (this: ParserPool, parser: unknown) {
    out--;
    return free.call(this, parser);
  };
  return {
    read() {
      const counts = { out, outMax, pooled: pool.list.length, created };
      outMax = out;
      return counts;
    },
    stop() {
      pool.alloc = alloc;
      pool.free = free;
    },
  };
}
