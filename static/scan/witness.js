// The phone as a witness of the transparency log (docs/transparency-log.md):
// at each sync it fetches the signed checkpoint, checks its Ed25519
// signature with the log key it saw first (C2SP signed-note), and checks
// that the new tree extends the checkpoint it kept, with a consistency proof
// (RFC 6962, 2.1.2) computed from the served tiles (C2SP tlog-tiles) and
// checked against both signed roots (RFC 9162, 2.1.4.2). A mismatch is
// shown to the venue and reported to the operator; the old checkpoint stays.

import { verifyStrict } from "./verify.js";

const enc = new TextEncoder();

/** A checkpoint that does not verify or does not extend the kept one. */
export class LogAlarm extends Error {
  constructor(problem, detail) {
    super(detail);
    this.problem = problem;
  }
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));
const fromBase64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const b64 = (bytes) => btoa(String.fromCharCode(...bytes));

/** `<name>+<hex key id>+<base64(0x01 ‖ Ed25519 key)>` → { name, id, key }. */
export async function parseVerifierKey(vkey) {
  // The base64 key may hold "+" itself: split at the first two only.
  const match = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/]+={0,2})$/.exec(vkey.trim());
  const [, name, hexId, encoded] = match ?? [];
  let raw = new Uint8Array();
  try {
    raw = encoded ? fromBase64(encoded) : raw;
  } catch {
    // not base64: refused below
  }
  if (!match || raw.length !== 33 || raw[0] !== 1) {
    throw new LogAlarm("bad-key", "la clé du journal est illisible");
  }
  const id = (await sha256(concat(enc.encode(name), Uint8Array.of(0x0a), raw))).subarray(0, 4);
  if (Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("") !== hexId) {
    throw new LogAlarm("bad-key", "l'identifiant de la clé du journal ne correspond pas à la clé");
  }
  return { name, id, key: raw.subarray(1) };
}

/** Opens a signed checkpoint with the verifier key: { origin, size, root }. */
export async function openCheckpoint(note, vkey) {
  const key = await parseVerifierKey(vkey);
  const split = note.indexOf("\n\n");
  if (split < 0 || !note.endsWith("\n")) throw new LogAlarm("bad-signature", "le point de contrôle n'est pas une note signée");
  const text = note.slice(0, split + 1);
  let signed = false;
  for (const line of note.slice(split + 2, -1).split("\n")) {
    const match = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!match || match[1] !== key.name) continue;
    const sig = fromBase64(match[2]);
    if (sig.length !== 68 || !equal(sig.subarray(0, 4), key.id)) continue;
    if (await verifyStrict(key.key, sig.subarray(4), enc.encode(text))) signed = true;
  }
  if (!signed) throw new LogAlarm("bad-signature", "le point de contrôle ne porte pas de signature valide de la clé du journal");
  const [origin, size, root, ...extensions] = text.slice(0, -1).split("\n");
  const rootBytes = root ? fromBase64(root) : new Uint8Array();
  if (origin !== key.name || !/^(0|[1-9][0-9]*)$/.test(size ?? "") || rootBytes.length !== 32 || extensions.some((e) => !e)) {
    throw new LogAlarm("bad-signature", "le point de contrôle signé est mal formé");
  }
  return { origin, size: Number(size), root: rootBytes };
}

/** The C2SP path of tile (level, n) of a tree of `size` entries. */
export function tilePath(level, n, size) {
  let digits = String(n % 1000).padStart(3, "0");
  for (let rest = Math.floor(n / 1000); rest > 0; rest = Math.floor(rest / 1000)) {
    digits = `x${String(rest % 1000).padStart(3, "0")}/${digits}`;
  }
  const count = Math.floor(size / 256 ** level);
  const width = Math.min(256, count - n * 256);
  return `tile/${level}/${digits}${width === 256 ? "" : `.p/${width}`}`;
}

/** Reads node hashes of a tree of `size` entries from its tiles, fetched once each. */
function treeReader(size, fetchTile) {
  const tiles = new Map();
  const tile = (level, n) => {
    const path = tilePath(level, n, size);
    if (!tiles.has(path)) tiles.set(path, fetchTile(path));
    return tiles.get(path);
  };
  const subtree = async (hashes) => {
    while (hashes.length > 1) {
      const next = [];
      for (let i = 0; i < hashes.length; i += 2) next.push(await nodeHash(hashes[i], hashes[i + 1]));
      hashes = next;
    }
    return hashes[0];
  };
  // The hash of the complete subtree at `height` whose leaves start at leaf `k · 2^height`.
  const node = async (height, k) => {
    const [level, r] = [Math.floor(height / 8), height % 8];
    const index = k * 2 ** r;
    const bytes = await tile(level, Math.floor(index / 256));
    const offset = index % 256;
    if (bytes.length < (offset + 2 ** r) * 32) throw new LogAlarm("unreadable", "une tuile du journal est trop courte");
    const hashes = [];
    for (let i = offset; i < offset + 2 ** r; i++) hashes.push(bytes.subarray(i * 32, (i + 1) * 32));
    return subtree(hashes);
  };
  // MTH(D[a:b]), RFC 6962 2.1.
  const mth = async (a, b) => {
    const n = b - a;
    if ((n & (n - 1)) === 0 && a % n === 0) return node(Math.log2(n), a / n);
    let k = 1;
    while (k * 2 < n) k *= 2;
    return nodeHash(await mth(a, a + k), await mth(a + k, b));
  };
  return { mth };
}

/** The consistency proof from `m` to `n` entries (RFC 6962 2.1.2), from the tiles of the tree of `n`. */
export async function consistencyProof(m, n, fetchTile) {
  const { mth } = treeReader(n, fetchTile);
  const sub = async (m, a, b, whole) => {
    const size = b - a;
    if (m === size) return whole ? [] : [await mth(a, b)];
    let k = 1;
    while (k * 2 < size) k *= 2;
    if (m <= k) return [...(await sub(m, a, a + k, whole)), await mth(a + k, b)];
    return [...(await sub(m - k, a + k, b, false)), await mth(a, a + k)];
  };
  return sub(m, 0, n, true);
}

/** Checks a consistency proof against both roots (RFC 9162 2.1.4.2). */
export async function verifyConsistency(m, n, oldRoot, newRoot, proof) {
  if (m === n) return proof.length === 0 && equal(oldRoot, newRoot);
  if (m === 0 || m > n) return false;
  let path = [...proof];
  if ((m & (m - 1)) === 0) path = [oldRoot, ...path];
  if (path.length === 0) return false;
  let [fn, sn] = [m - 1, n - 1];
  while (fn & 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let [fr, sr] = [path[0], path[0]];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn & 1 || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      if (!(fn & 1)) {
        while (!(fn & 1) && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(fr, oldRoot) && equal(sr, newRoot);
}

/**
 * Checks the served checkpoint `note` against the `kept` one (or none):
 * resolves to the opened checkpoint, or throws a LogAlarm.
 */
export async function witness(note, kept, vkey, fetchTile) {
  const fresh = await openCheckpoint(note, vkey);
  if (!kept) return fresh;
  const old = await openCheckpoint(kept, vkey);
  if (fresh.size < old.size) {
    throw new LogAlarm("smaller", `le journal compte ${fresh.size} inscriptions, moins que les ${old.size} déjà vues`);
  }
  const proof = fresh.size === old.size ? [] : await consistencyProof(old.size, fresh.size, fetchTile);
  if (!(await verifyConsistency(old.size, fresh.size, old.root, fresh.root, proof))) {
    throw new LogAlarm(
      "inconsistent",
      `le journal de ${fresh.size} inscriptions ne prolonge pas celui de ${old.size} inscriptions vu avant (racine ${b64(old.root)}) : des inscriptions ont été retirées ou modifiées`,
    );
  }
  return fresh;
}
