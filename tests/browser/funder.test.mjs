// The funder: sees the programme's money and usage, allocates, closes a
// statement, downloads it (CSV and PDF), records a payment; every page
// passes axe-core.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNTS, api, apiToken, checkAccessibility, launchBrowser, login, newPage, screenshots, startServer,
} from './lib/harness.mjs';

/** The bytes of a download. */
async function readAll(download) {
  const chunks = [];
  for await (const chunk of await download.createReadStream()) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('funder', () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    // A book issued and two of its vouchers used, through the API.
    const issuer = await apiToken(server, ACCOUNTS.issuer);
    const venue = await apiToken(server, ACCOUNTS.venue);
    const [program] = (await api(server, issuer, 'GET', '/api/v1/programs')).items;
    const book = await api(server, issuer, 'POST', '/api/v1/books', {
      program_id: program.id, size: 10, beneficiary: { reference: 'F-1', postcode: '67100' },
    });
    const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(new Date());
    const workshop = { theme: 'email', held_on: today, duration_minutes: 90 };
    for (const voucher of book.vouchers.slice(0, 2)) {
      await api(server, venue, 'POST', '/api/v1/redemptions', { code: voucher.code, workshop });
    }
    // The other venue scanned the first voucher offline too (after the book
    // was issued: a scan dated before its book is refused): a conflict.
    const venue2 = await apiToken(server, ACCOUNTS.venue2);
    const scannedAt = new Date().toISOString();
    const { results } = await api(server, venue2, 'POST', '/api/v1/redemptions/batch', {
      items: [{ nonce: 'n-1', code: book.vouchers[0].code, scanned_at: scannedAt, workshop }],
    });
    assert.equal(results[0].outcome, 'conflict');
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('closes a statement, downloads it and records a payment', async () => {
    const page = await newPage(browser);
    await login(page, server, ACCOUNTS.funder);
    await page.getByRole('cell', { name: '40,00 €' }).waitFor();
    await checkAccessibility(page, 'programmes');
    await screenshots(page, 'financeur-programmes');

    await page.locator('tbody th a').first().click();
    await page.waitForURL(/\/financeur\/programmes\/\d+$/);
    const programUrl = page.url();
    await checkAccessibility(page, 'programme page');
    await screenshots(page, 'financeur-programme');

    await page.getByRole('link', { name: "Voir l'utilisation en détail" }).click();
    await page.waitForURL(/\/utilisation$/);
    await page.getByRole('img', { name: 'Ateliers par lieu' }).waitFor();
    assert.equal(await page.locator('svg[role="img"]').count(), 5);
    await checkAccessibility(page, 'usage page');
    await page.goBack();

    await page.getByLabel('Nombre de coupons à ajouter').fill('50');
    await page.getByRole('button', { name: 'Allouer' }).click();
    await page.waitForURL(/\?fait=dotation$/);
    await page.getByText('La dotation est enregistrée.').waitFor();

    // Before closing, the page shows what the statement would hold: 2 workshops at the first venue.
    const preview = page.getByRole('table', { name: /Aperçu du prochain relevé/ });
    const malraux = preview.getByRole('row').filter({ hasText: 'Médiathèque Malraux' });
    await malraux.getByRole('cell', { name: '40,00 €' }).waitFor();
    await malraux.getByRole('cell', { name: '2', exact: true }).waitFor();
    assert.equal(await preview.getByRole('row').filter({ hasText: 'Colmar' }).count(), 0, 'an unresolved conflict is not payable');
    await page.getByRole('button', { name: 'Clore et signer le relevé' }).click();
    await page.waitForURL(/\/financeur\/releves\/\d+\?fait=clos$/);
    await page.getByText('Le relevé est clos et signé.').waitFor();
    // Closed: nothing is left to pay on the next one.
    const statementUrl = page.url();
    await page.goto(programUrl);
    await page.getByText("Aucun atelier à payer pour l'instant.").waitFor();
    await page.goto(statementUrl);
    await page.getByRole('row').filter({ hasText: '40,00 €' }).first().waitFor();
    await checkAccessibility(page, 'statement page');
    await screenshots(page, 'financeur-releve');

    const [pdf] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Télécharger le PDF' }).click(),
    ]);
    assert.match(pdf.suggestedFilename(), /^releve-\d+\.pdf$/);
    const pdfBytes = await readAll(pdf);
    assert.equal(pdfBytes.subarray(0, 5).toString('latin1'), '%PDF-');

    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Télécharger le CSV signé' }).click(),
    ]);
    assert.match(download.suggestedFilename(), /^releve-\d+\.csv$/);
    const csv = (await readAll(download)).toString('utf8');
    const lines = csv.replace(/^\uFEFF/, '').trimEnd().split('\r\n');
    assert.equal(lines[0], 'statement_number;redemption_id;redeemed_at;venue_siret;venue_name;voucher_id;position;theme;held_on;amount_cents');
    assert.equal(lines.length, 3, csv);

    // The venue's payment: the transfer's reference, today's date.
    await page.getByLabel('Référence du virement').fill('VIR-2026-0001');
    await page.getByRole('button', { name: 'Enregistrer le paiement' }).click();
    await page.waitForURL(/\?fait=paye$/);
    await page.getByText('Le paiement est enregistré.').waitFor();
    await page.getByRole('row').filter({ hasText: 'VIR-2026-0001' }).getByText('Payé').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Enregistrer le paiement' }).count(), 0);
    await checkAccessibility(page, 'statement paid');

    await page.getByRole('link', { name: 'Conflits', exact: true }).click();
    await page.getByText('Espace numérique de Colmar (démo)').waitFor();
    await checkAccessibility(page, 'conflicts');
    await screenshots(page, 'financeur-conflits');
    await page.getByLabel('Ne pas le payer').check();
    await page.getByLabel('Motif').fill('atelier déjà payé au premier lieu');
    await page.getByRole('button', { name: 'Enregistrer la décision' }).click();
    await page.waitForURL(/\?fait=rejete$/);
    await page.getByText('Aucun conflit en attente.').waitFor();
    await page.getByRole('cell', { name: 'Rejeté' }).waitFor();
    await checkAccessibility(page, 'conflicts resolved');
  });

  test('"Consommé" and the usage rate mean one thing, stated, on every page; labels and amounts fit', async () => {
    // A paid workshop contested by the funder: no longer owed, but its coupon did serve.
    const funder = await apiToken(server, ACCOUNTS.funder);
    const { items } = await api(server, funder, 'GET', '/api/v1/redemptions');
    const live = items.filter((r) => !r.cancelled_at && !r.reversed_at);
    await api(server, funder, 'POST', `/api/v1/redemptions/${live[0].id}/reverse`, { reason: 'atelier non tenu' });

    const page = await newPage(browser, { width: 390, height: 844 });
    await login(page, server, ACCOUNTS.funder);
    const row = page.getByRole('row').filter({ hasText: 'Pass numérique Alsace (démo)' });
    await row.getByRole('cell', { name: '20,00 €' }).waitFor();
    await row.getByRole('cell', { name: '20 %' }).waitFor();
    await page.locator('tbody th a').first().click();
    await page.waitForURL(/\/financeur\/programmes\/\d+$/);
    const figureDd = (label) => page.locator('.figure', { has: page.locator('dt', { hasText: label }) }).locator('dd').first();
    const figure = (label) => ({ textContent: async () => (await figureDd(label).textContent()).replace(/\s/g, ' ') });
    assert.equal(await figure('Consommé').textContent(), '20,00 €');
    assert.equal(await figure("Taux d'utilisation").textContent(), '20 %');
    assert.match(await figure('Reste à allouer').textContent(), /€$/);
    await page.locator('.definitions', { hasText: 'ni annulés par le lieu ni contestés' }).waitFor();
    await page.getByRole('link', { name: "Voir l'utilisation en détail" }).click();
    await page.waitForURL(/\/utilisation$/);
    await page.getByText('20 % des coupons émis ont servi.').waitFor();
    assert.equal(await figure('Consommé').textContent(), '20,00 €');
    await page.locator('.definitions', { hasText: 'ni annulés par le lieu ni contestés' }).waitFor();
    // Chart labels are drawn whole, at a size a phone can read.
    const label = page.locator('svg text.chart__label', { hasText: 'Centre médico-social de Neudorf (démo)' });
    await label.waitFor();
    const { height } = await label.boundingBox();
    assert.ok(height >= 12, `a label ${height} px high`);
    await checkAccessibility(page, 'usage page, phone');
    await screenshots(page, 'financeur-utilisation');
  });

  test('creates a programme', async () => {
    const page = await newPage(browser);
    await login(page, server, ACCOUNTS.funder);
    await page.getByRole('link', { name: 'Créer un programme' }).click();
    await checkAccessibility(page, 'new programme form');
    await page.getByLabel('Nom du programme').fill('Pass numérique Haut-Rhin 2027');
    await page.getByLabel("Valeur d'un coupon (€)").fill('25');
    await page.getByLabel('Budget (€)').fill('200 000,00');
    await page.getByLabel('Territoire : départements').fill('68, 99');
    const until = new Date();
    until.setFullYear(until.getFullYear() + 1);
    await page.getByLabel("Émission possible jusqu'au").fill(until.toISOString().slice(0, 10));
    // The time zone is chosen among the French ones, Paris by default; none is typed by hand.
    const zone = page.getByLabel('Fuseau horaire du programme');
    assert.equal(await zone.evaluate((el) => el.tagName), 'SELECT');
    assert.equal(await zone.inputValue(), 'Europe/Paris');
    assert.equal(await zone.locator('option').count(), 7);
    await zone.selectOption({ label: 'La Réunion (Indian/Reunion)' });
    await zone.selectOption('Europe/Paris');
    await page.getByRole('button', { name: 'Créer le programme' }).click();
    // "99" is no département: refused, tied to its field.
    await page.getByRole('alert').waitFor();
    assert.equal(await page.getByLabel('Territoire : départements').getAttribute('aria-invalid'), 'true');
    await checkAccessibility(page, 'new programme form with errors');
    await page.getByLabel('Territoire : départements').fill('68');
    await page.getByRole('button', { name: 'Créer le programme' }).click();
    await page.waitForURL(/\/financeur\/programmes\/\d+\?fait=cree$/);
    await page.getByRole('heading', { name: 'Pass numérique Haut-Rhin 2027' }).waitFor();
    await page.getByText('Europe/Paris').first().waitFor();
    await page.getByText('200 000,00 €').first().waitFor();
    // At phone and desktop widths each amount stays on one line, inside its box.
    for (const width of [390, 1280]) {
    await page.setViewportSize({ width, height: 844 });
    for (const dd of await page.locator('.figure dd').all()) {
      const fits = await dd.evaluate((el) => {
        const line = parseFloat(getComputedStyle(el).lineHeight) || 1.5 * parseFloat(getComputedStyle(el).fontSize);
        const box = el.parentElement.getBoundingClientRect();
        const r = el.getBoundingClientRect();
        return { oneLine: r.height < 1.5 * line, inside: r.right <= box.right + 0.5, text: el.textContent };
      });
      assert.ok(fits.oneLine && fits.inside, `at ${width} px, "${fits.text}" does not fit its box: ${JSON.stringify(fits)}`);
    }
    }
    await screenshots(page, 'financeur-programme-nouveau');
  });
});
