import { Reader } from 'protobufjs/minimal';

/**
 * The `<stamp>.meta` file of a portable backup: a `PortableData` protobuf
 * (`bytes Data = 1; uint64 MaxNodeID = 2`) around the server's whole meta
 * store, `meta.Data` (services/meta/internal/meta.proto). lifeboat reads only
 * what it reports and needs: the databases with their retention policies and
 * continuous queries, and how many users the file carries.
 */
export interface ContinuousQuery {
  name: string;
  /** The whole `CREATE CONTINUOUS QUERY … END` statement, as the server keeps it. */
  query: string;
}

export interface DatabaseMeta {
  name: string;
  defaultRetentionPolicy: string;
  retentionPolicies: string[];
  continuousQueries: ContinuousQuery[];
}

export interface MetaFacts {
  /** Length of the meta store inside the file (what the portable manifest's `meta.size` records). */
  dataBytes: number;
  databases: DatabaseMeta[];
  users: number;
}

const LEN = 2; // wire type of length-delimited fields

/** Calls `on` for each field of a message; fields `on` does not consume are skipped. */
function eachField(buf: Uint8Array, on: (field: number, wire: number, r: Reader) => boolean): void {
  const r = Reader.create(buf);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === 0) throw new Error('a zero field tag');
    if (!on(tag >>> 3, tag & 7, r)) r.skipType(tag & 7);
  }
}

function readDatabase(buf: Uint8Array): DatabaseMeta {
  const db: DatabaseMeta = { name: '', defaultRetentionPolicy: '', retentionPolicies: [], continuousQueries: [] };
  eachField(buf, (f, w, r) => {
    if (w !== LEN) return false;
    if (f === 1) db.name = r.string();
    else if (f === 2) db.defaultRetentionPolicy = r.string();
    else if (f === 3) eachField(r.bytes(), (g, gw, rr) => (g === 1 && gw === LEN ? (db.retentionPolicies.push(rr.string()), true) : false));
    else if (f === 4) {
      const cq: ContinuousQuery = { name: '', query: '' };
      eachField(r.bytes(), (g, gw, rr) => {
        if (gw !== LEN || (g !== 1 && g !== 2)) return false;
        cq[g === 1 ? 'name' : 'query'] = rr.string();
        return true;
      });
      db.continuousQueries.push(cq);
    } else return false;
    return true;
  });
  if (!db.name) throw new Error('a database without a name');
  return db;
}

/** Decodes a portable `.meta` file; throws on anything that is not one. */
export function readPortableMeta(file: Uint8Array): MetaFacts {
  let data: Uint8Array | undefined;
  eachField(file, (f, w, r) => (f === 1 && w === LEN ? ((data = r.bytes()), true) : false));
  if (!data) throw new Error('no meta store in it (PortableData field 1 is missing)');
  const facts: MetaFacts = { dataBytes: data.length, databases: [], users: 0 };
  let term = false;
  eachField(data, (f, w, r) => {
    if (f === 1 && w === 0) {
      r.uint64();
      term = true;
      return true;
    }
    if (w !== LEN) return false;
    if (f === 5) facts.databases.push(readDatabase(r.bytes()));
    else if (f === 6) {
      r.skipType(w);
      facts.users++;
    } else return false;
    return true;
  });
  // Term is a required field: its absence means these bytes are not a meta store.
  if (!term) throw new Error('the meta store has no Term field');
  return facts;
}
