// The venue's scan page on a phone-sized Chromium: a fake camera films a
// voucher, photos of others are taken, the network goes away and comes back,
// a forged QR code is refused on the phone, and the page reopens from the
// phone's cache when the server is gone. axe-core checks every state.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import QRCode from 'qrcode';
import {
  ACCOUNTS, api, apiToken, checkAccessibility, launchBrowser, login, newPage, screenshot, startServer,
} from './lib/harness.mjs';

const PHONE = { width: 390, height: 844 };

/** A book of 5 issued by the demo social worker for someone in Strasbourg. */
async function issueBook(server, issuer) {
  const programs = await api(server, issuer, 'GET', '/api/v1/programs');
  const program = (programs.items ?? programs)[0];
  return api(server, issuer, 'POST', '/api/v1/books', {
    program_id: program.id, size: 5, beneficiary: { reference: 'SCAN-TEST', postcode: '67000' },
  });
}

/** The printed QR code, as the server renders it. */
async function printedQr(server, issuer, voucherId) {
  const res = await fetch(server.url(`/api/v1/vouchers/${voucherId}/qr.png`), { headers: { authorization: `Bearer ${issuer}` } });
  assert.equal(res.status, 200);
  return Buffer.from(await res.arrayBuffer());
}

/**
 * A Y4M video of one frame showing `text` as a QR code: what Chromium's fake
 * camera films (it loops the file).
 */
function qrVideo(text, path) {
  const { modules } = QRCode.create(text, { errorCorrectionLevel: 'Q' });
  const [width, height, scale, quiet] = [640, 480, 8, 4];
  const side = (modules.size + 2 * quiet) * scale;
  const [left, top] = [(width - side) / 2, (height - side) / 2];
  const luma = Buffer.alloc(width * height, 235);
  for (let y = 0; y < modules.size; y++) {
    for (let x = 0; x < modules.size; x++) {
      if (!modules.get(y, x)) continue;
      for (let dy = 0; dy < scale; dy++) {
        const row = (top + (y + quiet) * scale + dy) * width + left + (x + quiet) * scale;
        luma.fill(16, row, row + scale);
      }
    }
  }
  const chroma = Buffer.alloc((width / 2) * (height / 2) * 2, 128);
  writeFileSync(path, Buffer.concat([
    Buffer.from(`YUV4MPEG2 W${width} H${height} F10:1 Ip A1:1 C420jpeg\nFRAME\n`), luma, chroma,
  ]));
}

/** The voucher text with one signature symbol changed: well formed, falsely signed. */
function forge(text) {
  const at = text.length - 10;
  const changed = text[at] === '0' ? '1' : '0';
  return text.slice(0, at) + changed + text.slice(at + 1);
}

/** Nothing makes the page scroll sideways at phone width. */
async function fitsThePhone(page) {
  const [scrollWidth, width] = await page.evaluate(() => [document.documentElement.scrollWidth, innerWidth]);
  assert.ok(scrollWidth <= width, `${page.url()} is ${scrollWidth} px wide on a ${width} px screen`);
}

describe('the scan page', () => {
  let server;
  let browser;
  let page;
  let issuer;
  let venueToken;
  let book;
  let otherBook;
  let dir;

  const title = () => page.locator('#verdict-title');
  const verdictIs = async (text) => {
    await page.locator('#verdict-title', { hasText: text }).waitFor();
  };
  const photo = (buffer) => page.setInputFiles('#photo', { name: 'coupon.png', mimeType: 'image/png', buffer });
  const shot = async (name) => {
    await fitsThePhone(page);
    return screenshot(page, name, PHONE.width);
  };
  const redemptions = async () => (await api(server, venueToken, 'GET', '/api/v1/redemptions?limit=100')).items;

  before(async () => {
    server = await startServer();
    issuer = await apiToken(server, ACCOUNTS.issuer);
    venueToken = await apiToken(server, ACCOUNTS.venue);
    book = await issueBook(server, issuer);
    otherBook = await issueBook(server, issuer);
    dir = mkdtempSync(join(tmpdir(), 'passnum-scan-'));
    const video = join(dir, 'camera.y4m');
    qrVideo(book.vouchers[0].code, video);
    browser = await launchBrowser({
      args: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${video}`],
    });
    page = await newPage(browser, PHONE);
    await page.context().grantPermissions(['camera'], { origin: server.baseUrl });
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a venue user activates the phone as a scanner device', async () => {
    await login(page, server, ACCOUNTS.venue);
    assert.equal(new URL(page.url()).pathname, '/lieu/');
    await page.getByRole('heading', { name: 'Activer ce téléphone' }).waitFor();
    await checkAccessibility(page, 'scan page, activation');
    await shot('scan-activation');
    await page.getByLabel('Nom de ce téléphone').fill('Téléphone de test');
    await page.getByRole('button', { name: 'Activer ce téléphone' }).click();
    await page.locator('#scan-app[data-ready="true"]').waitFor();
    await page.getByText(/^En ligne/).waitFor();
    await checkAccessibility(page, 'scan page, ready');
    await shot('scan-ready');
    // Chromium's own verdict on adding it to a home screen (manifest, icons, service worker).
    await page.evaluate(() => navigator.serviceWorker.ready);
    const cdp = await page.context().newCDPSession(page);
    const manifest = await cdp.send('Page.getAppManifest');
    assert.match(manifest.url, /\/static\/scan\/manifest\.webmanifest/);
    assert.deepEqual(manifest.errors, []);
    // A test browser is incognito, which Chromium says first; nothing else may be wrong.
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    assert.deepEqual(installabilityErrors.map((e) => e.errorId).filter((id) => id !== 'in-incognito'), []);
    await cdp.detach();
    const devices = await api(server, venueToken, 'GET', '/api/v1/devices');
    assert.deepEqual(devices.items.map((d) => d.name), ['Téléphone de test']);
  });

  test('the camera films a voucher: "Valide", the workshop is recorded; filmed again: "Déjà utilisé"', async () => {
    await page.getByRole('button', { name: 'Ouvrir la caméra' }).click();
    await verdictIs('Valide — atelier 1 / 5');
    await checkAccessibility(page, 'scan page, valid voucher');
    await shot('scan-valid');
    // Only "Enregistrer" is at hand; leaving the coupon unrecorded is a button set far apart.
    assert.equal(await page.getByRole('button', { name: 'Scanner un autre coupon' }).isVisible(), false);
    const record = await page.getByRole('button', { name: 'Enregistrer' }).boundingBox();
    const skip = await page.getByRole('button', { name: 'Abandonner ce coupon' }).boundingBox();
    const gap = skip.y - (record.y + record.height);
    assert.ok(gap >= 32, `${gap} px between "Enregistrer" and "Abandonner ce coupon"`);
    await page.getByLabel('Thème').selectOption({ label: 'Envoyer et recevoir des e-mails' });
    await page.getByLabel('Durée').selectOption({ label: '1 heure 30' });
    await page.getByRole('button', { name: 'Enregistrer' }).click();
    await verdictIs('Atelier enregistré');
    const [first] = await redemptions();
    assert.equal(first.voucher_id, book.vouchers[0].voucher_id);
    assert.equal(first.theme, 'email');
    assert.equal(first.duration_minutes, 90);

    await page.getByRole('button', { name: 'Scanner un autre coupon' }).click();
    await verdictIs('Déjà utilisé');
    // When, and that it was here (the server says so; never which other venue).
    await page.locator('#verdict-detail', { hasText: /Utilisé le \d{1,2} \S+ à \d\d:\d\d par votre lieu\.$/ }).waitFor();
    assert.equal(await page.locator('#workshop').isVisible(), false);
    await checkAccessibility(page, 'scan page, already used');
    await shot('scan-already-used');
    await page.getByRole('button', { name: 'Fermer la caméra' }).click();
    assert.equal((await redemptions()).length, 1);
  });

  test('offline, a scan is checked on the phone and queued; back online, it is sent and its outcome shown', async () => {
    const qr = await printedQr(server, issuer, book.vouchers[1].voucher_id);
    await page.getByRole('button', { name: 'Scanner un autre coupon' }).click();
    await page.context().setOffline(true);
    await page.getByText(/^Hors connexion/).waitFor();
    await photo(qr);
    await verdictIs('Valide — atelier 2 / 5');
    await page.getByText('Hors connexion : vérifié sur le téléphone').waitFor();
    await page.getByLabel('Thème').selectOption({ label: 'Faire ses démarches administratives en ligne' });
    await page.getByRole('button', { name: 'Enregistrer' }).click();
    await verdictIs('Enregistré sur le téléphone');
    await page.getByRole('heading', { name: '1 scan en attente d\'envoi' }).waitFor();
    await page.getByText('En attente d\'envoi', { exact: true }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Envoyer maintenant' }).isVisible(), false, 'nothing to send with offline');
    await checkAccessibility(page, 'scan page, queued offline');
    await shot('scan-queued');
    assert.equal((await redemptions()).length, 1, 'nothing reached the server while offline');

    await page.context().setOffline(false);
    await page.getByRole('heading', { name: 'Aucun scan en attente' }).waitFor();
    await page.getByText('Envoyé : atelier enregistré').waitFor();
    await page.getByRole('button', { name: 'Envoyer maintenant' }).waitFor();
    await verdictIs('Atelier enregistré');
    await page.getByText('Atelier 2 / 5 : envoyé au retour du réseau.').waitFor();
    await page.getByText(/^En ligne/).waitFor();
    await checkAccessibility(page, 'scan page, sent after reconnecting');
    await shot('scan-sent');
    const sent = (await redemptions()).find((r) => r.voucher_id === book.vouchers[1].voucher_id);
    assert.ok(sent, 'the queued scan is a redemption');
    assert.equal(sent.theme, 'online_procedures');
  });

  test('checked online, then the network drops before "Enregistrer": the scan is queued, sent later; cancelled, the coupon is good again', async () => {
    const voucher = otherBook.vouchers[1];
    const qr = await printedQr(server, issuer, voucher.voucher_id);
    await page.getByRole('button', { name: 'Scanner un autre coupon' }).click();
    await photo(qr);
    await verdictIs('Valide — atelier 2 / 5');
    await page.context().setOffline(true);
    await page.getByRole('button', { name: 'Enregistrer' }).click();
    await verdictIs('Enregistré sur le téléphone');
    await page.context().setOffline(false);
    await page.getByRole('heading', { name: 'Aucun scan en attente' }).waitFor();
    const sent = (await redemptions()).find((r) => r.voucher_id === voucher.voucher_id);
    assert.ok(sent, 'the queued scan reached the server');

    // The venue cancels it (a mistake): the phone asks the server again and the coupon is good.
    await api(server, venueToken, 'POST', `/api/v1/redemptions/${sent.id}/cancel`, { reason: 'erreur de saisie' });
    await page.getByRole('button', { name: 'Scanner un autre coupon' }).click();
    await photo(qr);
    await verdictIs('Valide — atelier 2 / 5');
  });

  test('offline, a coupon that another venue redeemed meanwhile comes back as a conflict for the funder', async () => {
    const voucher = otherBook.vouchers[0];
    const qr = await printedQr(server, issuer, voucher.voucher_id);
    await page.getByRole('button', { name: 'Abandonner ce coupon' }).click();
    await page.context().setOffline(true);
    await page.getByText(/^Hors connexion/).waitFor();
    await photo(qr);
    await verdictIs('Valide — atelier 1 / 5');
    await page.getByRole('button', { name: 'Enregistrer' }).click();
    await verdictIs('Enregistré sur le téléphone');
    const otherVenue = await apiToken(server, ACCOUNTS.venue2);
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(new Date());
    await api(server, otherVenue, 'POST', '/api/v1/redemptions', {
      code: voucher.code, workshop: { theme: 'email', held_on: today, duration_minutes: 60 },
    });
    await page.context().setOffline(false);
    await page.getByText('Déjà utilisé dans un autre lieu : transmis au financeur').waitFor();
    await verdictIs('Déjà utilisé');
    await page.getByRole('heading', { name: 'Aucun scan en attente' }).waitFor();
    await checkAccessibility(page, 'scan page, a conflict');
    const funder = await apiToken(server, ACCOUNTS.funder);
    const conflicts = await api(server, funder, 'GET', '/api/v1/conflicts');
    assert.deepEqual(conflicts.items.map((c) => c.voucher_id), [voucher.voucher_id]);
  });

  test('offline, a coupon signed by a key rotated since the last sync is queued for the server, not refused, then redeemed', async () => {
    await page.getByRole('button', { name: 'Scanner un autre coupon' }).click();
    await page.context().setOffline(true);
    await page.getByText(/^Hors connexion/).waitFor();
    // While the phone is away, the operator rotates the voucher key and a book is signed with the new one.
    const operator = await apiToken(server, ACCOUNTS.operator);
    const { kid } = await api(server, operator, 'POST', '/api/v1/keys/rotate', { purpose: 'voucher' });
    const fresh = await issueBook(server, issuer);
    assert.match(fresh.vouchers[0].code, new RegExp(`^PN1:`));
    const known = await page.evaluate(async (kid) => {
      const { getSetting } = await import('/static/scan/store.js');
      return ((await getSetting('jwks'))?.keys ?? []).some((k) => k.kid === kid && k.purpose === 'voucher');
    }, kid);
    assert.equal(known, false, 'the phone has not seen the new key');
    await photo(await printedQr(server, issuer, fresh.vouchers[0].voucher_id));
    await verdictIs('À confirmer — atelier 1 / 5');
    await page.getByText('le serveur le vérifiera au retour du réseau').waitFor();
    await checkAccessibility(page, 'scan page, key not yet known offline');
    await page.getByRole('button', { name: 'Enregistrer' }).click();
    await verdictIs('Enregistré sur le téléphone');
    await page.getByRole('heading', { name: '1 scan en attente d\'envoi' }).waitFor();
    await page.context().setOffline(false);
    await page.getByRole('heading', { name: 'Aucun scan en attente' }).waitFor();
    await verdictIs('Atelier enregistré');
    const sent = (await redemptions()).find((r) => r.voucher_id === fresh.vouchers[0].voucher_id);
    assert.ok(sent, 'the server judged and redeemed the queued scan');
  });

  test('a forged QR code is refused on the phone, with no request sent', async () => {
    const forged = await QRCode.toBuffer(forge(book.vouchers[2].code), { errorCorrectionLevel: 'Q', margin: 4, scale: 8 });
    await page.getByRole('button', { name: 'Scanner un autre coupon' }).click();
    const requests = [];
    const listen = (request) => requests.push(request.url());
    page.on('request', listen);
    await photo(forged);
    await verdictIs('Coupon refusé : faux');
    page.off('request', listen);
    assert.deepEqual(requests, []);
    assert.equal(await page.locator('#workshop').isVisible(), false);
    await checkAccessibility(page, 'scan page, forged voucher');
    await shot('scan-forged');
    // The genuine voucher is untouched and still valid.
    const check = await api(server, venueToken, 'POST', '/api/v1/vouchers/check', { code: book.vouchers[2].code });
    assert.equal(check.redeemable, true);
  });

  test("in Chromium, both Ed25519 engines judge every test vector as the format says", async () => {
    const vectors = JSON.parse(readFileSync(new URL('../vectors/voucher-v1.json', import.meta.url)));
    const cases = [
      ...vectors.valid.map((v) => ({ text: v.text, kid: v.kid, x: v.public_key_x, expected: 'valid' })),
      ...vectors.invalid.map((v) => ({ text: v.text, kid: v.kid, x: v.public_key_x, expected: v.expected })),
    ];
    const verdicts = await page.evaluate(async (cases) => {
      const { parseText } = await import('/static/scan/voucher.js');
      const { hasWebCryptoEd25519, verifyVoucher, voucherKeys } = await import('/static/scan/verify.js');
      const out = { webcrypto: await hasWebCryptoEd25519(), results: [] };
      for (const engine of ['webcrypto', 'noble']) {
        for (const c of cases) {
          const keys = voucherKeys({ keys: [{ kty: 'OKP', crv: 'Ed25519', kid: String(c.kid), x: c.x, purpose: 'voucher' }] });
          let verdict = 'valid';
          try {
            await verifyVoucher(parseText(c.text), keys, engine);
          } catch (error) {
            verdict = error.problem ?? String(error);
          }
          out.results.push({ engine, expected: c.expected, verdict });
        }
      }
      return out;
    }, cases);
    assert.equal(verdicts.webcrypto, true, 'this Chromium verifies Ed25519 with WebCrypto');
    assert.equal(verdicts.results.length, 2 * cases.length);
    for (const r of verdicts.results) assert.equal(r.verdict, r.expected, r.engine);
  });

  test('a typed code is checked by the server', async () => {
    await page.getByRole('button', { name: 'Scanner un autre coupon' }).click();
    await page.getByLabel('Code à taper').fill(book.vouchers[3].typed_code.toLowerCase());
    await page.getByRole('button', { name: 'Vérifier' }).click();
    await verdictIs('Valide — atelier 4 / 5');
    await page.getByRole('button', { name: 'Abandonner ce coupon' }).click();
    await page.getByLabel('Code à taper').fill('0000-0000-0000-1Z');
    await page.getByRole('button', { name: 'Vérifier' }).click();
    await verdictIs('Code illisible');
    assert.match(await title().textContent(), /Code illisible/);
    // A mistyped code stays in its field, to be corrected; the next coupon starts afresh.
    assert.equal(await page.getByLabel('Code à taper').inputValue(), '0000-0000-0000-1Z');
    await page.getByRole('button', { name: 'Scanner un autre coupon' }).click();
    assert.equal(await page.getByLabel('Code à taper').inputValue(), '');
  });

  test("the venue's pages: its workshops (cancelled within the window), statements and devices", async () => {
    const pages = await newPage(browser, PHONE);
    await login(pages, server, ACCOUNTS.venue);
    await pages.getByRole('link', { name: 'Ateliers' }).click();
    await pages.getByRole('heading', { name: 'Ateliers enregistrés' }).waitFor();
    await checkAccessibility(pages, 'venue workshops');
    await fitsThePhone(pages);
    await screenshot(pages, 'venue-workshops', PHONE.width);
    const [first] = await redemptions();
    // Each workshop names its coupon as the scan page and the book do: position, book size, typed code.
    const coupon = `coupon 1 / 5, code ${book.vouchers[0].typed_code}`;
    assert.equal(first.voucher_id, book.vouchers[0].voucher_id);
    await pages.getByText(book.vouchers[0].typed_code, { exact: true }).waitFor();
    assert.equal(await pages.getByText(`n° ${first.id}`).count(), 0, 'no internal id shown');
    await pages.locator('summary', { hasText: `Annuler l'atelier du ${coupon}` }).click();
    await pages.locator(`#motif-${first.id}`).fill('Coupon scanné par erreur');
    await pages.getByRole('button', { name: `Annuler cet atelier (${coupon})`, exact: true }).click();
    await pages.getByText(`L'atelier du ${coupon} est annulé`).waitFor();
    await checkAccessibility(pages, 'venue workshops after a cancellation');
    assert.ok((await redemptions()).find((r) => r.id === first.id).cancelled_at);

    const funder = await apiToken(server, ACCOUNTS.funder);
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(new Date());
    const statement = await api(server, funder, 'POST', `/api/v1/programs/${book.program_id}/statements`, { period_end: today });
    // On a closed statement, a workshop no longer offers "Annuler", and says why.
    await pages.reload();
    const live = (await redemptions()).filter((r) => !r.cancelled_at && !r.reversed_at).length;
    assert.ok(live > 0);
    assert.equal(await pages.getByText(`Sur le relevé n° ${statement.number}`).count(), live);
    assert.equal(await pages.locator('summary', { hasText: 'Annuler' }).count(), 0);
    await pages.getByText('Il figure sur un relevé clos : il ne s\'annule plus.').first().waitFor();
    await checkAccessibility(pages, 'venue workshops on a closed statement');
    await screenshot(pages, 'venue-workshops-closed', PHONE.width);
    // The funder pays the venue's extract: the venue sees who pays, how much, when and by which transfer.
    const mine = statement.venues[0];
    await api(server, funder, 'POST', `/api/v1/statements/${statement.id}/payments`, {
      venue_organisation_id: mine.venue_organisation_id, amount_cents: mine.total_cents, paid_on: today, reference: 'VIR-LIEU-0001',
    });
    await pages.getByRole('link', { name: 'Relevés' }).click();
    await pages.getByRole('heading', { name: 'Relevés signés' }).waitFor();
    await pages.getByText(statement.venues[0].sha256, { exact: true }).waitFor({ state: 'attached' });
    const card = pages.locator('li.card', { hasText: `Relevé n° ${statement.number}` });
    await card.getByText('Financeur : Collectivité d\'Alsace (démo)').waitFor();
    const amount = `${Math.floor(mine.total_cents / 100)},${String(mine.total_cents % 100).padStart(2, '0')}`;
    assert.ok((await card.textContent()).includes(amount), `the amount ${amount} is shown`);
    await card.getByText('Payé', { exact: true }).waitFor();
    await card.getByText('VIR-LIEU-0001', { exact: true }).waitFor();
    const [y, m, d] = today.split('-');
    await card.getByText(`le ${d}/${m}/${y}`).waitFor();
    // Venue staff read no command line.
    assert.equal(await pages.getByText('passnum statement verify').count(), 0);
    await checkAccessibility(pages, 'venue statements');
    await fitsThePhone(pages);
    await screenshot(pages, 'venue-statements', PHONE.width);
    const [download] = await Promise.all([
      pages.waitForEvent('download'),
      pages.getByRole('link', { name: /Télécharger l'extrait signé/ }).click(),
    ]);
    const signed = await fetch(server.url(`/api/v1/statements/${statement.id}/csv`), { headers: { authorization: `Bearer ${venueToken}` } });
    assert.deepEqual(readFileSync(await download.path()), Buffer.from(await signed.arrayBuffer()));

    await pages.getByRole('link', { name: 'Appareils' }).click();
    await pages.getByRole('heading', { name: 'Téléphone de test' }).waitFor();
    await checkAccessibility(pages, 'venue devices');
    await fitsThePhone(pages);
    await screenshot(pages, 'venue-devices', PHONE.width);

    // A phone withdrawn here learns it at its next sync and asks to be activated again.
    await pages.getByRole('button', { name: 'Retirer « Téléphone de test »' }).click();
    await pages.getByText(/^Retiré le/).waitFor();
    await pages.context().close();
    await page.getByRole('button', { name: 'Envoyer maintenant' }).click();
    await page.getByRole('heading', { name: 'Activer ce téléphone' }).waitFor();
    await page.getByLabel('Nom de ce téléphone').fill('Téléphone de test, réactivé');
    await page.getByRole('button', { name: 'Activer ce téléphone' }).click();
    await page.getByRole('heading', { name: 'Aucun scan en attente' }).waitFor();
  });

  test('a logout forgets the page kept for offline use; the next login keeps a fresh one', async () => {
    // Waits (5 s at most) until the service worker's caches hold the scan page, or no longer do.
    const pageKept = async (wanted) => {
      for (let tries = 0; tries < 50; tries += 1) {
        const kept = await page.evaluate(async () => {
          for (const name of await caches.keys()) {
            if (name.startsWith('passnum-scan-') && (await (await caches.open(name)).match('/lieu/'))) return true;
          }
          return false;
        });
        if (kept === wanted) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.fail(wanted ? 'the scan page was not kept' : 'the scan page is still kept');
    };
    await page.goto(server.url('/lieu/'));
    await page.locator('#scan-app[data-ready="true"]').waitFor();
    await pageKept(true);
    await page.getByRole('button', { name: 'Se déconnecter' }).click();
    await page.getByText('Vous êtes déconnecté.').waitFor();
    await pageKept(false);
    await login(page, server, ACCOUNTS.venue);
    await page.locator('#scan-app[data-ready="true"]').waitFor();
    await pageKept(true);
  });

  test('with the server gone, the page reopens from the phone and queues the scan', async () => {
    const qr = await printedQr(server, issuer, book.vouchers[4].voucher_id);
    await page.evaluate(() => navigator.serviceWorker.ready);
    await page.reload();
    await page.locator('#scan-app[data-ready="true"]').waitFor();
    await server.stop();
    await page.reload();
    await page.locator('#scan-app[data-ready="true"]').waitFor();
    await photo(qr);
    await verdictIs('Valide — atelier 5 / 5');
    await page.getByRole('button', { name: 'Enregistrer' }).click();
    await verdictIs('Enregistré sur le téléphone');
    await page.getByRole('heading', { name: '1 scan en attente d\'envoi' }).waitFor();
    server = null;
  });
});
