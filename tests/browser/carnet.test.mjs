// The beneficiary's own page on a small phone (320 px wide, 1 device pixel
// per CSS pixel, JavaScript off): each remaining coupon's QR code scans from a
// screenshot (zbarimg), used coupons are listed, nothing personal is shown,
// the saved page works offline, and once the book is revoked the link
// answers "ce carnet n'est plus valable".
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ACCOUNTS, api, apiToken, checkAccessibility, launchBrowser, screenshot, startServer,
} from './lib/harness.mjs';

/** Every QR code zbarimg finds in a PNG file. */
function decode(png) {
  try {
    const out = execFileSync('zbarimg', ['--raw', '-q', '-Sdisable', '-Sqrcode.enable', png], { encoding: 'utf8' });
    return out.split('\n').filter((line) => line.length > 0);
  } catch (error) {
    // zbarimg exits 4 when it finds no code: no code is an answer too.
    if (error.status === 4) return [];
    throw error;
  }
}

describe('beneficiary page', () => {
  let server;
  let browser;
  let work;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    work = mkdtempSync(join(tmpdir(), 'carnet-'));
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('coupons scan from a 320 px screen, offline too; a revoked book says so', async () => {
    const issuer = await apiToken(server, ACCOUNTS.issuer);
    const venue = await apiToken(server, ACCOUNTS.venue);
    const programs = await api(server, issuer, 'GET', '/api/v1/programs');
    const reference = 'DOSSIER-PRIVE-4711';
    const book = await api(server, issuer, 'POST', '/api/v1/books', {
      program_id: programs.items[0].id,
      size: 5,
      beneficiary: { reference, postcode: '67000' },
    });
    const today = new Intl.DateTimeFormat('sv-SE', { timeZone: 'Europe/Paris' }).format(new Date());
    await api(server, venue, 'POST', '/api/v1/redemptions', {
      code: book.vouchers[0].code,
      workshop: { theme: 'online_procedures', held_on: today, duration_minutes: 60 },
    });
    const pageUrl = server.url(new URL(book.page_url).pathname);

    // A small old phone: 320 px, no JavaScript.
    const context = await browser.newContext({
      viewport: { width: 320, height: 640 },
      deviceScaleFactor: 1,
      javaScriptEnabled: false,
      locale: 'fr-FR',
      acceptDownloads: true,
    });
    const page = await context.newPage();
    const requests = [];
    page.on('request', (request) => requests.push(request.url()));
    const response = await page.goto(pageUrl);
    assert.equal(response.status(), 200);
    // One request: nothing else to fetch, so a saved copy has everything.
    assert.deepEqual(requests, [pageUrl]);
    await page.getByRole('heading', { name: 'Votre pass numérique' }).waitFor();
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 320, `no sideways scrolling at 320 px (${width})`);

    // Used coupons, with their date; the others, each with its code.
    const used = page.locator('ul.used li');
    assert.equal(await used.count(), 1);
    assert.match(await used.innerText(), /^Atelier 1 \/ 5 : utilisé le \d+ \S+ \d{4}/);
    const coupons = page.locator('section.coupon');
    assert.equal(await coupons.count(), 4);
    for (let i = 0; i < 4; i += 1) {
      const voucher = book.vouchers[i + 1];
      const coupon = coupons.nth(i);
      assert.match(await coupon.innerText(), new RegExp(`Atelier ${voucher.position} / 5`));
      assert.ok((await coupon.innerText()).includes(voucher.typed_code));
      const shot = join(work, `coupon-${i}.png`);
      await coupon.locator('.qr').screenshot({ path: shot });
      assert.deepEqual(decode(shot), [voucher.code], `coupon ${voucher.position} scans`);
    }
    // The whole screen too: every remaining coupon, and no other code.
    const full = await screenshot(page, 'beneficiaire-carnet', 320);
    assert.deepEqual(decode(full).sort(), book.vouchers.slice(1).map((v) => v.code).sort());

    // Nothing personal anywhere in the page.
    const html = await page.content();
    for (const personal of [reference, '67000', 'Centre médico-social', 'prescripteur@']) {
      assert.ok(!html.includes(personal), `${personal} is on the page`);
    }
    assert.ok(!html.includes(book.vouchers[0].typed_code), 'a used coupon has no code left');
    // axe-core needs JavaScript: the same page in a context that has it.
    const checked = await browser.newContext({ viewport: { width: 320, height: 640 } });
    const checker = await checked.newPage();
    await checker.goto(pageUrl);
    await checkAccessibility(checker, 'beneficiary page');

    // "Enregistrer sur mon téléphone": a file that opens offline.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Enregistrer sur mon téléphone' }).click(),
    ]);
    const saved = join(work, 'pass-numerique.html');
    await download.saveAs(saved);
    await context.setOffline(true);
    const offline = await context.newPage();
    await offline.goto(`file://${saved}`);
    assert.equal(await offline.locator('section.coupon').count(), 4);
    const offlineShot = join(work, 'offline.png');
    await offline.locator('section.coupon').first().locator('.qr').screenshot({ path: offlineShot });
    assert.deepEqual(decode(offlineShot), [book.vouchers[1].code]);
    assert.ok(readFileSync(saved, 'utf8').includes(book.vouchers[4].typed_code));
    await offline.close();
    await context.setOffline(false);

    // Revoked: the same link now says the book is no longer valid.
    await api(server, issuer, 'POST', `/api/v1/books/${book.id}/revoke`, { reason: 'carnet perdu' });
    const gone = await page.goto(pageUrl);
    assert.equal(gone.status(), 410);
    await page.getByRole('heading', { name: 'Ce carnet n\'est plus valable' }).waitFor();
    assert.equal(await page.locator('section.coupon').count(), 0);
    assert.deepEqual(decode(await screenshot(page, 'beneficiaire-carnet-revoque', 320)), []);
    await checker.goto(pageUrl);
    await checkAccessibility(checker, 'revoked book page');
    await checked.close();
    await context.close();
  });
});
