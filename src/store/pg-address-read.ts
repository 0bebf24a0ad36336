/**
 * Reading the whole `address` table from PostgreSQL for a reload, in the address-table load
 * worker (src/acl/load-worker.ts) — off the proxy's thread, like the SQLite read. The worker
 * is kept for the process, and so is this reader's connection: it is opened at the first
 * read and again after any failure.
 *
 * One query returns the table's version and every row, in one snapshot: the rows packed into
 * one text by the server (id US grp US ip_addr US mask US port, rows separated by RS, the
 * format the SQLite reader's chunks use) and the tags as JSON [id, tag] pairs. A million rows
 * thus cross as one string rather than a million row objects. Should the packed text not
 * parse (a separator inside ip_addr, a NULL), the rows are read again one by one in the same
 * snapshot, so that the bad row is named exactly.
 */
import pg from 'pg';
import { describeLocation } from './location.js';
import { pgClientConfig } from './postgres.js';

export interface AddressTableSink {
  /** Rows as packed text plus their tags; false when the text did not parse wholly (nothing kept). */
  packed(text: string, count: number, tags: [unknown, unknown][]): boolean;
  /** One row as stored: id, grp, ip_addr, mask, port, tag. */
  row(values: unknown[]): void;
}

const PACKED = `SELECT (SELECT version FROM table_version WHERE table_name = 'address') AS version,
       count(*) AS n,
       string_agg(id || chr(31) || grp || chr(31) || ip_addr || chr(31) || mask || chr(31) || port, chr(30) ORDER BY id) AS packed,
       json_agg(json_build_array(id, tag) ORDER BY id) FILTER (WHERE tag IS NOT NULL) AS tags
  FROM address`;

const ROW_BY_ROW = 'SELECT id, grp, ip_addr, mask, port, tag FROM address ORDER BY id';

export class PostgresAddressReader {
  private client: pg.Client | null = null;
  readonly location: string;

  constructor(private readonly url: string) {
    this.location = describeLocation(url);
  }

  /** Reads the table into `sink`; returns the table version the rows are (null before migration 003). */
  async read(sink: AddressTableSink): Promise<{ version: number | null }> {
    const client = await this.connected();
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const r = await client.query<[number | null, number, string | null, [unknown, unknown][] | null]>({ text: PACKED, rowMode: 'array' });
      const [version, count, packed, tags] = r.rows[0]!;
      if (count > 0 && (packed === null || !sink.packed(packed, count, tags ?? []))) {
        const rows = await client.query<unknown[]>({ text: ROW_BY_ROW, rowMode: 'array' });
        for (const values of rows.rows) sink.row(values);
      }
      await client.query('COMMIT');
      return { version: version === null ? null : Number(version) };
    } catch (err) {
      // Whatever failed (the connection, a bad row mid-transaction), start clean next time.
      this.drop();
      throw err;
    }
  }

  private async connected(): Promise<pg.Client> {
    if (this.client !== null) return this.client;
    const client = new pg.Client(pgClientConfig(this.url, { applicationName: 'sipctl address load', readOnly: true, queryTimeoutMs: 120_000 }));
    // The server closing an idle connection: forget it; the next read connects again.
    client.on('error', () => {
      if (this.client === client) this.client = null;
    });
    client.on('end', () => {
      if (this.client === client) this.client = null;
    });
    await client.connect();
    this.client = client;
    return client;
  }

  private drop(): void {
    const client = this.client;
    this.client = null;
    client?.end().catch(() => undefined);
  }
}
