// What the phone keeps in IndexedDB: its device token and settings, the
// synced lists (revoked and redeemed vouchers, withdrawn keys, closed
// programmes) and the queue of offline scans with their outcomes.

const DB_NAME = "passnum-scan";
const DB_VERSION = 1;

let opened;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function db() {
  opened ??= new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      const d = req.result;
      d.createObjectStore("settings");
      // { id, state: "revoked" | "redeemed" }, by voucher id (decimal string)
      d.createObjectStore("vouchers", { keyPath: "id" });
      // { nonce, code, scanned_at, workshop, voucher_id, position, book_size, outcome, problem?, redemption_id? }
      d.createObjectStore("queue", { keyPath: "nonce" }).createIndex("voucher_id", "voucher_id");
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return opened;
}

/** Runs `work(stores)` in one transaction over `names`; resolves when it commits. */
async function transaction(names, mode, work) {
  const tx = (await db()).transaction(names, mode);
  const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
  const result = work(stores);
  await new Promise((resolve, reject) => {
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("transaction aborted"));
  });
  return result instanceof IDBRequest ? result.result : result;
}

export const getSetting = (key) => transaction(["settings"], "readonly", (s) => s.settings.get(key));
export const setSetting = (key, value) => transaction(["settings"], "readwrite", (s) => void s.settings.put(value, key));

/** What the synced lists say about a voucher: "revoked", "redeemed" or undefined. */
export async function voucherState(voucherId) {
  const row = await transaction(["vouchers"], "readonly", (s) => s.vouchers.get(voucherId));
  return row?.state;
}

/** Marks a voucher redeemed locally, before the next sync says so. */
export const markRedeemed = (voucherId) =>
  transaction(["vouchers"], "readwrite", (s) => void s.vouchers.put({ id: voucherId, state: "redeemed" }));

/**
 * Applies one answer of `GET /api/v1/sync`, with its cursor, in one
 * transaction, so a phone that dies half-way syncs again from the old cursor.
 * A first sync (`fresh`) replaces the lists instead of adding to them.
 */
export async function applySync(answer, fresh) {
  const [withdrawn, closed] = fresh
    ? [[], []]
    : await Promise.all([getSetting("withdrawnKids"), getSetting("closedPrograms")]);
  await transaction(["settings", "vouchers"], "readwrite", ({ settings, vouchers }) => {
    if (fresh) vouchers.clear();
    for (const id of answer.reopened_voucher_ids) vouchers.delete(id);
    for (const id of answer.revoked_voucher_ids) vouchers.put({ id, state: "revoked" });
    for (const id of answer.redeemed_voucher_ids) vouchers.put({ id, state: "redeemed" });
    settings.put([...new Set([...(withdrawn ?? []), ...answer.withdrawn_kids])], "withdrawnKids");
    settings.put([...new Set([...(closed ?? []), ...answer.closed_program_ids])], "closedPrograms");
    settings.put(answer.cursor, "syncCursor");
    settings.put(new Date().toISOString(), "syncedAt");
  });
}

export const enqueue = (scan) => transaction(["queue"], "readwrite", (s) => void s.queue.add(scan));

export const queued = () => transaction(["queue"], "readonly", (s) => s.queue.getAll());

/**
 * Whether this phone holds a scan of the voucher still waiting to be sent.
 * Sent ones are left to the server and the synced lists: the venue may have
 * cancelled one since, and the voucher is then good again.
 */
export async function queuedFor(voucherId) {
  const scans = await transaction(["queue"], "readonly", (s) => s.queue.index("voucher_id").getAll(voucherId));
  return scans.some((scan) => scan.outcome === "waiting");
}

/** How many scans wait to be sent. */
export const waitingCount = async () => (await queued()).filter((scan) => scan.outcome === "waiting").length;

/** Records the server's outcome of each sent scan. */
export const recordOutcomes = (results) =>
  transaction(["queue"], "readwrite", ({ queue }) => {
    for (const r of results) {
      const get = queue.get(r.nonce);
      get.onsuccess = () => {
        if (get.result) queue.put({ ...get.result, ...r, sent_at: new Date().toISOString() });
      };
    }
  });

/** Forgets sent scans older than `days`: their outcome was shown long ago. */
export const pruneSent = (days) =>
  transaction(["queue"], "readwrite", ({ queue }) => {
    const limit = Date.now() - days * 86_400_000;
    const cursor = queue.openCursor();
    cursor.onsuccess = () => {
      const c = cursor.result;
      if (!c) return;
      if (c.value.outcome !== "waiting" && Date.parse(c.value.scanned_at) < limit) c.delete();
      c.continue();
    };
  });

/** Forgets everything (another venue logs in on this phone). */
export const clearAll = () =>
  transaction(["settings", "vouchers", "queue"], "readwrite", (s) => {
    for (const store of Object.values(s)) store.clear();
  });
