// The scan page: activation of the phone, camera, photo and typed code, the
// verdict in large type, the workshop form, and the queue of offline scans.

import { film, readPhoto } from "./camera.js";
import * as scanner from "./scanner.js";
import * as store from "./store.js";
import { Problem } from "./api.js";

/** Every reason a voucher may be refused, in the words venue staff read. */
const REFUSALS = {
  "malformed-code": ["Code illisible", "Ce n'est pas un coupon du pass numérique, ou le code est mal lu."],
  "invalid-signature": ["Coupon refusé\u00a0: faux", "La signature ne correspond pas\u00a0: ce coupon n'a pas été émis par le pass numérique."],
  "unknown-key": ["Coupon refusé\u00a0: non reconnu", "Ce coupon est signé d'une clé inconnue ou retirée."],
  "key-withdrawn": ["Coupon refusé\u00a0: clé retirée", "La clé qui a signé ce coupon a été retirée par l'opérateur."],
  "voucher-expired": ["Coupon expiré", "La date de validité de ce coupon est passée."],
  "voucher-revoked": ["Coupon annulé", "Le carnet de ce coupon a été annulé par le prescripteur."],
  "program-closed": ["Programme clôturé", "Le programme qui finance ce coupon est clos."],
  "venue-not-accredited": ["Lieu non habilité", "Votre lieu n'est pas habilité à recevoir ce coupon aujourd'hui."],
  "venue-out-of-territory": ["Hors territoire", "Ce coupon est financé pour un autre territoire."],
  "already-redeemed": ["Déjà utilisé", "Ce coupon a déjà servi pour un atelier."],
  "not-found": ["Code inconnu", "Aucun coupon ne porte ce code\u00a0: vérifiez la saisie."],
  "validation-error": ["Saisie à corriger", "Vérifiez le thème, la date (7 derniers jours) et la durée."],
  unauthorized: ["Téléphone non autorisé", "Ce téléphone a été retiré\u00a0: activez-le de nouveau."],
  "typed-offline": ["Connexion nécessaire", "Un code tapé ne se vérifie qu'en ligne. Scannez le QR code, ou réessayez une fois connecté."],
};

const OUTCOMES = {
  waiting: "En attente d'envoi",
  redeemed: "Envoyé\u00a0: atelier enregistré",
  duplicate: "Déjà enregistré par votre lieu",
  conflict: "Déjà utilisé dans un autre lieu\u00a0: transmis au financeur",
  rejected: "Refusé",
};

const SYNC_EVERY_MS = 3 * 60_000;

const $ = (id) => document.getElementById(id);
const time = (iso) => new Date(iso).toLocaleTimeString("fr-FR", { hour: "2-digit", minute: "2-digit" });
const dateTime = (iso) =>
  new Date(iso).toLocaleString("fr-FR", { day: "numeric", month: "long", hour: "2-digit", minute: "2-digit" });

let verdict = null;
let stopCamera = null;
/** The queued scan the verdict box speaks of, until the server has judged it. */
let shownNonce = null;

function refusal(problem) {
  return REFUSALS[problem] ?? ["Refusé", `Le serveur refuse ce coupon (${problem}).`];
}

function showVerdict(v) {
  verdict = v;
  const box = $("verdict");
  box.hidden = false;
  box.className = `verdict ${v.ok ? "verdict--valid" : "verdict--refused"}`;
  if (v.ok) {
    $("verdict-title").textContent = v.keyUnknown
      ? `À confirmer — atelier ${v.voucher.position} / ${v.voucher.bookSize}`
      : `Valide — atelier ${v.voucher.position} / ${v.voucher.bookSize}`;
    $("verdict-detail").textContent = v.online
      ? "Renseignez l'atelier puis enregistrez."
      : v.keyUnknown
        ? "Hors connexion\u00a0: ce coupon est signé d'une clé récente que le téléphone ne connaît pas encore. Enregistrez l'atelier\u00a0: le serveur le vérifiera au retour du réseau."
        : "Hors connexion\u00a0: vérifié sur le téléphone, il sera envoyé au retour du réseau.";
  } else {
    const [title, detail] = refusal(v.problem);
    $("verdict-title").textContent = title;
    $("verdict-detail").textContent = v.local && v.problem !== "already-redeemed" ? `${detail} Vérifié sur le téléphone.` : detail + usedWhen(v);
  }
  $("workshop").hidden = !v.ok;
  // A valid coupon waits for "Enregistrer": leaving it takes a button of its own, set apart.
  $("next").hidden = v.ok;
  if (v.ok) {
    // The server takes workshops held in the last 7 days.
    const today = scanner.today();
    const weekAgo = new Date(Date.parse(today) - 7 * 86_400_000).toISOString().slice(0, 10);
    Object.assign($("held-on"), { value: today, max: today, min: weekAgo });
  }
  box.focus();
}

/** " Utilisé le 3 décembre à 14:05 par votre lieu." when the server said when. */
function usedWhen(v) {
  if (!v.redeemedAt) return "";
  return ` Utilisé le ${dateTime(v.redeemedAt)}${v.redeemedHere ? " par votre lieu" : " dans un autre lieu"}.`;
}

function showRecorded(text, detail, ok, { focus = true } = {}) {
  const box = $("verdict");
  box.className = `verdict ${ok ? "verdict--valid" : "verdict--refused"}`;
  $("verdict-title").textContent = text;
  $("verdict-detail").textContent = detail;
  $("workshop").hidden = true;
  $("next").hidden = false;
  if (focus) box.focus();
}

async function onCode(text) {
  if (verdict) return; // one voucher at a time: "Scanner un autre coupon" resumes
  verdict = { pending: true };
  try {
    showVerdict(await scanner.judge(text));
  } catch (error) {
    verdict = null;
    throw error;
  }
}

async function onRecord(event) {
  event.preventDefault();
  if (!verdict?.ok || verdict.recording) return;
  // A second tap while this one runs does nothing (no "Déjà utilisé" for a scan that succeeded).
  verdict.recording = true;
  $("record").disabled = true;
  const form = new FormData($("workshop"));
  const workshop = {
    theme: form.get("theme"),
    held_on: form.get("held_on"),
    duration_minutes: Number(form.get("duration_minutes")),
  };
  try {
    await store.setSetting("lastWorkshop", { theme: workshop.theme, duration_minutes: workshop.duration_minutes });
    const done = await scanner.record(verdict, workshop);
    const where = `Atelier ${verdict.voucher.position} / ${verdict.voucher.bookSize}`;
    if (done.recorded === "redeemed") {
      showRecorded("Atelier enregistré", `${where}, enregistré à ${time(done.receipt.redeemed_at)}.`, true);
    } else if (done.recorded === "queued") {
      showRecorded("Enregistré sur le téléphone", `${where}\u00a0: il sera envoyé dès le retour du réseau.`, true);
      shownNonce = done.nonce;
    } else {
      const [title, detail] = refusal(done.problem);
      const when = done.body?.redeemed_at ? usedWhen({ redeemedAt: done.body.redeemed_at, redeemedHere: "redemption_id" in done.body }) : "";
      showRecorded(title, detail + when, false);
    }
  } finally {
    $("record").disabled = false;
    verdict = { done: true, ok: false };
    await showQueue();
  }
}

/** Ready for the next coupon; the typed code stays unless `clearTyped`. */
function next({ clearTyped = true } = {}) {
  verdict = null;
  shownNonce = null;
  $("verdict").hidden = true;
  $("workshop").hidden = true;
  $("next").hidden = true;
  if (clearTyped) $("typed-code").value = "";
}

async function showQueue() {
  const scans = (await store.queued()).sort((a, b) => b.scanned_at.localeCompare(a.scanned_at));
  const waiting = scans.filter((s) => s.outcome === "waiting").length;
  $("queue-count").textContent =
    waiting === 0 ? "Aucun scan en attente" : waiting === 1 ? "1 scan en attente d'envoi" : `${waiting} scans en attente d'envoi`;
  $("queue-list").replaceChildren(
    ...scans.map((scan) => {
      const li = document.createElement("li");
      li.className = `queue__item queue__item--${scan.outcome}`;
      const what = document.createElement("span");
      what.textContent = `Atelier ${scan.position} / ${scan.book_size}, scanné à ${time(scan.scanned_at)}`;
      const outcome = document.createElement("strong");
      outcome.textContent = outcomeText(scan);
      li.append(what, " — ", outcome);
      return li;
    }),
  );
  $("queue").hidden = scans.length === 0;
  const judged = scans.find((scan) => scan.nonce === shownNonce && scan.outcome !== "waiting");
  if (judged) {
    // The scan on screen was sent: say what became of it, without moving the focus.
    shownNonce = null;
    const ok = judged.outcome === "redeemed" || judged.outcome === "duplicate";
    const where = `Atelier ${judged.position} / ${judged.book_size}`;
    const [title, detail] = {
      redeemed: ["Atelier enregistré", "envoyé au retour du réseau."],
      duplicate: ["Déjà enregistré", "votre lieu l'avait déjà enregistré."],
      conflict: ["Déjà utilisé", "un autre lieu l'avait enregistré avant vous\u00a0; transmis au financeur."],
    }[judged.outcome] ?? refusal(judged.problem);
    showRecorded(title, `${where}\u00a0: ${detail}`, ok, { focus: false });
  }
}

function outcomeText(scan) {
  return scan.outcome === "rejected" ? `${OUTCOMES.rejected}\u00a0: ${refusal(scan.problem)[0]}` : OUTCOMES[scan.outcome];
}

async function showNetwork(reached) {
  const syncedAt = await store.getSetting("syncedAt");
  const online = reached ?? navigator.onLine;
  $("network").className = `network ${online ? "network--online" : "network--offline"}`;
  // Nothing can be sent without a network: no button that would do nothing.
  $("send-now").hidden = !online;
  $("network").textContent = online
    ? `En ligne${syncedAt ? ` · listes à jour à ${time(syncedAt)}` : ""}`
    : `Hors connexion · les scans sont gardés sur le téléphone${syncedAt ? ` · listes du ${dateTime(syncedAt)}` : ""}`;
}

async function showLog() {
  const [size, alarm] = [await store.getSetting("logSize"), await store.getSetting("logAlarm")];
  $("log-status").hidden = size === undefined || Boolean(alarm);
  $("log-status").textContent = `Journal public vérifié · ${size} inscriptions`;
  $("log-alarm").hidden = !alarm;
  $("log-alarm").textContent = alarm
    ? `Alerte : le journal public ne correspond pas à ce que ce téléphone a vu (${alarm.detail}). L'opérateur est prévenu.`
    : "";
}

async function syncNow() {
  try {
    const reached = await scanner.syncNow();
    await showNetwork(reached);
    await showLog();
  } catch (error) {
    if (error instanceof Problem && error.problem === "unauthorized") {
      await store.setSetting("deviceToken", undefined);
      return start();
    }
    throw error;
  } finally {
    await showQueue();
  }
}

async function activate(event) {
  event.preventDefault();
  const form = $("activation-form");
  const response = await fetch(form.action, {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(new FormData(form)),
  });
  if (!response.ok) {
    $("activation-error").hidden = false;
    $("activation-error").textContent =
      response.status === 422 ? "Donnez un nom de 1 à 100 caractères." : "L'activation a échoué\u00a0: rechargez la page.";
    return;
  }
  const device = await response.json();
  // Another venue's lists and scans have no business on this phone any more,
  // but its scans not yet sent are workshops it must be paid for: keep them.
  if ((await store.getSetting("venueId")) !== device.venue_organisation_id) {
    const waiting = await store.waitingCount();
    if (waiting > 0) {
      $("activation-error").hidden = false;
      $("activation-error").textContent =
        `Ce téléphone garde ${waiting} scan(s) d'un autre lieu, pas encore envoyés\u00a0: ` +
        "connectez-vous d'abord avec ce lieu, en ligne, pour les envoyer.";
      return;
    }
    await store.clearAll();
  }
  await store.setSetting("deviceToken", device.token);
  await store.setSetting("venueId", device.venue_organisation_id);
  await start();
}

async function startCamera() {
  $("camera-error").hidden = true;
  try {
    stopCamera = await film($("video"), onCode);
    $("video").hidden = false;
    $("start-camera").hidden = true;
    $("stop-camera").hidden = false;
  } catch {
    $("camera-error").hidden = false;
  }
}

function closeCamera() {
  stopCamera?.();
  stopCamera = null;
  $("video").hidden = true;
  $("start-camera").hidden = false;
  $("stop-camera").hidden = true;
}

async function onPhoto() {
  const file = $("photo").files[0];
  if (!file) return;
  next();
  const text = await readPhoto(file).catch(() => null);
  $("photo").value = "";
  if (text) await onCode(text);
  else showVerdict({ ok: false, problem: "malformed-code", local: true });
}

async function onTyped(event) {
  event.preventDefault();
  // The code stays in its field after the verdict, to be corrected if mistyped.
  const code = $("typed-code").value;
  next({ clearTyped: false });
  await onCode(code);
}

async function start() {
  const token = await store.getSetting("deviceToken");
  const venue = Number($("scan-app").dataset.venue);
  $("activation").hidden = Boolean(token);
  $("scanner").hidden = !token;
  if (!token || (await store.getSetting("venueId")) !== venue) {
    $("activation").hidden = false;
    $("scanner").hidden = true;
    return;
  }
  const last = await store.getSetting("lastWorkshop");
  if (last) {
    $("theme").value = last.theme;
    $("duration").value = String(last.duration_minutes);
  }
  await syncNow();
  $("scan-app").dataset.ready = "true";
}

/** What staff see when something unforeseen fails, rather than nothing. */
function unexpected(event) {
  event.preventDefault?.();
  verdict = { done: true, ok: false };
  $("verdict").hidden = false;
  showRecorded("Erreur inattendue", "Réessayez\u00a0; si cela se répète, rechargez la page.", false);
  $("next").hidden = false;
}

function wire() {
  addEventListener("unhandledrejection", unexpected);
  $("activation-form").addEventListener("submit", activate);
  $("start-camera").addEventListener("click", startCamera);
  $("stop-camera").addEventListener("click", closeCamera);
  $("photo").addEventListener("change", onPhoto);
  $("typed").addEventListener("submit", onTyped);
  $("workshop").addEventListener("submit", onRecord);
  $("next").addEventListener("click", () => next());
  $("skip").addEventListener("click", () => next());
  $("send-now").addEventListener("click", syncNow);
  addEventListener("online", syncNow);
  addEventListener("offline", () => showNetwork(false));
  setInterval(syncNow, SYNC_EVERY_MS);
  addEventListener("pagehide", closeCamera);
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register($("scan-app").dataset.serviceWorker, { scope: "/lieu/" }).catch(() => {});
  }
}

wire();
start();
