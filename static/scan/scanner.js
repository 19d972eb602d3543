// What happens to a scanned code: judged on the phone first (signature, synced
// lists), then by the server when it can be reached; recorded at once online,
// queued offline and sent in a batch when the network returns.

import * as api from "./api.js";
import * as store from "./store.js";
import { verifyVoucher, voucherKeys } from "./verify.js";
import { readCode, VoucherError } from "./voucher.js";
import { LogAlarm, witness } from "./witness.js";

/** The phone's calendar is the programme's: Europe/Paris unless told otherwise. */
const TIME_ZONE = "Europe/Paris";
/** Scans are sent within 7 days (the server refuses older ones). */
const KEEP_SENT_DAYS = 7;
const BATCH_MAX = 500;

export function today(timeZone = TIME_ZONE) {
  // en-CA formats dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat("en-CA", { timeZone }).format(new Date());
}

/**
 * A verdict: `{ ok, problem?, voucher?, code, online, scannedAt, detail? }`:
 * `voucher` holds `position`, `bookSize`, `voucherId`; `online` says whether
 * the server confirmed it (and so whether "Enregistrer" redeems at once).
 */
export async function judge(input) {
  const scannedAt = new Date().toISOString();
  const code = input.trim();
  let read;
  try {
    read = readCode(code);
  } catch (error) {
    if (error instanceof VoucherError) return { ok: false, problem: error.problem, code, scannedAt, local: true };
    throw error;
  }
  if (read.kind === "typed") return judgeOnline(code, scannedAt, { voucherId: read.voucherId });
  const voucher = read.voucher;
  const refusal = await localRefusal(voucher);
  if (refusal === "unknown-key") {
    // A key the phone has not learnt yet (made since its last sync): only
    // the server can say. Offline, the scan is queued for it to judge.
    return judgeOnline(code, scannedAt, voucher, { keyUnknown: true });
  }
  if (refusal) return { ok: false, problem: refusal, code, scannedAt, voucher, local: true };
  return judgeOnline(code, scannedAt, voucher);
}

/**
 * The phone's own reasons to refuse a voucher, or null; sends nothing.
 * "unknown-key" is no refusal: the caller asks the server, or queues the scan.
 */
async function localRefusal(voucher) {
  const withdrawn = (await store.getSetting("withdrawnKids")) ?? [];
  // A key withdrawn after a compromise: what it signed is refused, even offline.
  if (withdrawn.includes(String(voucher.kid))) return "key-withdrawn";
  let keys = voucherKeys(await store.getSetting("jwks"), withdrawn);
  if (!keys.has(voucher.kid) && navigator.onLine) {
    // A key made since the phone last synced: fetch the set once more.
    await refreshKeys().catch(() => {});
    keys = voucherKeys(await store.getSetting("jwks"), withdrawn);
  }
  try {
    await verifyVoucher(voucher, keys);
  } catch (error) {
    if (error instanceof VoucherError) return error.problem;
    throw error;
  }
  if (voucher.expiresOn < today()) return "voucher-expired";
  if ((await store.getSetting("closedPrograms"))?.includes(voucher.programId)) return "program-closed";
  const state = await store.voucherState(voucher.voucherId);
  if (state === "revoked") return "voucher-revoked";
  if (await store.queuedFor(voucher.voucherId)) return "already-redeemed";
  // Online, the server has the last word: a redemption may have been cancelled since the last sync.
  if (state === "redeemed" && !navigator.onLine) return "already-redeemed";
  return null;
}

async function judgeOnline(code, scannedAt, voucher, { keyUnknown = false } = {}) {
  try {
    const answer = await api.check(code);
    // The scanned voucher (with its signature, so it can still be queued if
    // the network drops before "Enregistrer"), as the server confirms it.
    const confirmed = { ...voucher, voucherId: answer.voucher_id, position: answer.position, bookSize: answer.book_size };
    if (answer.problem === "already-redeemed") await store.markRedeemed(answer.voucher_id);
    return answer.redeemable
      ? { ok: true, code, scannedAt, voucher: confirmed, online: true }
      : {
          ok: false,
          problem: answer.problem,
          code,
          scannedAt,
          voucher: confirmed,
          redeemedAt: answer.redeemed_at,
          redeemedHere: answer.redeemed_here,
        };
  } catch (error) {
    if (error instanceof api.Problem) return { ok: false, problem: error.problem, code, scannedAt, voucher };
    if (!(error instanceof api.Offline)) throw error;
    if (!("signature" in voucher)) return { ok: false, problem: "typed-offline", code, scannedAt };
    return { ok: true, code, scannedAt, voucher, online: false, keyUnknown };
  }
}

/**
 * Records the workshop of a valid scan: redeemed at once when the server is
 * reachable, queued otherwise. Answers `{ recorded: "redeemed", receipt }`,
 * `{ recorded: "queued", nonce }` or `{ problem, body }`.
 */
export async function record(verdict, workshop) {
  if (verdict.online || !("signature" in (verdict.voucher ?? {}))) {
    try {
      const receipt = await api.redeem(verdict.code, workshop, crypto.randomUUID());
      await store.markRedeemed(receipt.voucher_id);
      return { recorded: "redeemed", receipt };
    } catch (error) {
      if (error instanceof api.Problem) {
        if (error.problem === "already-redeemed") await store.markRedeemed(verdict.voucher.voucherId);
        return { problem: error.problem, body: error.body };
      }
      if (!(error instanceof api.Offline)) throw error;
      // The answer was lost: the batch says "duplicate" if it had been recorded.
      if (!("signature" in (verdict.voucher ?? {}))) return { problem: "typed-offline" };
    }
  }
  const nonce = crypto.randomUUID();
  await store.enqueue({
    nonce,
    code: verdict.code,
    scanned_at: verdict.scannedAt,
    workshop,
    voucher_id: verdict.voucher.voucherId,
    position: verdict.voucher.position,
    book_size: verdict.voucher.bookSize,
    outcome: "waiting",
  });
  return { recorded: "queued", nonce };
}

async function refreshKeys() {
  await store.setSetting("jwks", await api.jwks());
}

/** Pulls the key set and the changes since the last sync. */
async function pull() {
  await refreshKeys();
  const cursor = await store.getSetting("syncCursor");
  await store.applySync(await api.sync(cursor), !cursor);
}

/** Sends the waiting scans, 500 at a time, and keeps each outcome. */
async function push() {
  const waiting = (await store.queued()).filter((scan) => scan.outcome === "waiting");
  for (let i = 0; i < waiting.length; i += BATCH_MAX) {
    const items = waiting
      .slice(i, i + BATCH_MAX)
      .map(({ nonce, code, scanned_at, workshop }) => ({ nonce, code, scanned_at, workshop }));
    const { results } = await api.batch(items);
    await store.recordOutcomes(results);
    for (const r of results) {
      const scan = waiting.find((s) => s.nonce === r.nonce);
      if (scan && (r.outcome === "redeemed" || r.outcome === "duplicate")) await store.markRedeemed(scan.voucher_id);
    }
  }
  await store.pruneSent(KEEP_SENT_DAYS);
}

async function fetchLog(path) {
  let response;
  try {
    response = await fetch(path, { cache: "no-store" });
  } catch (error) {
    throw new api.Offline(error.message);
  }
  if ([502, 503, 504].includes(response.status)) throw new api.Offline(`HTTP ${response.status}`);
  return response;
}

/**
 * The phone as a witness of the public log: the served checkpoint must be
 * signed by the log key seen first and extend the checkpoint kept at the
 * last sync. Keeps the new one, or keeps the old one, shows the alarm and
 * reports it once (settings `logCheckpoint`, `logSize`, `logAlarm`).
 */
export async function checkLog() {
  const res = await fetchLog("/log/checkpoint");
  if (res.status === 404) return;
  if (!res.ok) throw new api.Offline(`HTTP ${res.status}`);
  const note = await res.text();
  let vkey = await store.getSetting("logKey");
  if (!vkey) {
    const key = await fetchLog("/log/key");
    if (!key.ok) throw new api.Offline(`HTTP ${key.status}`);
    vkey = (await key.text()).trim();
    await store.setSetting("logKey", vkey);
  }
  const kept = await store.getSetting("logCheckpoint");
  const fetchTile = async (path) => {
    const tile = await fetchLog(`/log/${path}`);
    if (!tile.ok) throw new LogAlarm("unreadable", `la tuile ${path} du journal manque (HTTP ${tile.status})`);
    return new Uint8Array(await tile.arrayBuffer());
  };
  try {
    const fresh = await witness(note, kept, vkey, fetchTile);
    await store.setSetting("logCheckpoint", note);
    await store.setSetting("logSize", fresh.size);
    await store.setSetting("logAlarm", undefined);
  } catch (error) {
    if (error instanceof api.Offline) throw error;
    const alarm = error instanceof LogAlarm ? error : new LogAlarm("unreadable", `le journal est illisible : ${error.message}`);
    const reported = await store.getSetting("logAlarm");
    if (reported?.note !== note) {
      await api.call("POST", "/api/v1/log/alarms", {
        problem: alarm.problem,
        detail: alarm.message.slice(0, 2000),
        kept_checkpoint: (kept ?? note).slice(0, 4000),
        new_checkpoint: note.slice(0, 4000),
      });
    }
    await store.setSetting("logAlarm", { note, problem: alarm.problem, detail: alarm.message });
  }
}

/**
 * One round: send what waits, then pull the lists. Runs once at a time
 * across the phone's tabs; answers whether the server was reached.
 */
export function syncNow() {
  const round = async () => {
    try {
      await push();
      await pull();
      await checkLog();
      return true;
    } catch (error) {
      if (error instanceof api.Offline) return false;
      throw error;
    }
  };
  return navigator.locks ? navigator.locks.request("passnum-sync", round) : round();
}
