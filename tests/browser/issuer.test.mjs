// The social worker: issues a book, prints it (the PDF), finds it again,
// replaces it; every page passes axe-core.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNTS, checkAccessibility, launchBrowser, login, newPage, screenshots, startServer,
} from './lib/harness.mjs';

describe('social worker', () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('issues a book, downloads its PDF, finds it by reference, replaces it', async () => {
    const page = await newPage(browser);
    await login(page, server, ACCOUNTS.issuer);
    await page.getByRole('link', { name: 'Émettre un carnet' }).first().click();
    await page.waitForURL('**/prescripteur/carnets/nouveau');
    await checkAccessibility(page, 'issue form');

    // A form with mistakes comes back with all its errors at once, each tied to its field and saying what is wrong.
    await page.getByLabel('Adresse e-mail du bénéficiaire').fill('pas-une-adresse');
    await page.getByRole('button', { name: 'Émettre le carnet' }).click();
    await page.getByRole('alert').waitFor();
    const reference = page.getByLabel('Référence du bénéficiaire');
    const postcode = page.getByLabel('Code postal du bénéficiaire');
    const email = page.getByLabel('Adresse e-mail du bénéficiaire');
    for (const field of [reference, postcode, email]) assert.equal(await field.getAttribute('aria-invalid'), 'true');
    const summary = await page.locator('#erreurs li').allTextContents();
    assert.equal(summary.length, 3, summary.join(' | '));
    assert.match(summary[0], /référence.*obligatoire/);
    assert.match(summary[1], /code postal.*obligatoire/);
    assert.doesNotMatch(summary[1], /inconnu/);
    assert.match(summary[2], /e-mail n'est pas valide/);
    await email.fill('');
    await checkAccessibility(page, 'issue form with errors');
    await screenshots(page, 'prescripteur-emission-erreurs');

    await reference.fill('DOSSIER-2026-0042');
    await page.getByLabel('Code postal du bénéficiaire').fill('67100');
    await page.getByLabel('10 coupons').check();
    await page.getByRole('button', { name: 'Émettre le carnet' }).click();
    await page.waitForURL(/\/prescripteur\/carnets\/\d+\?fait=emis$/);
    await page.getByText('Le carnet est émis.').waitFor();
    assert.equal(await page.getByRole('row').filter({ hasText: 'Valable' }).count(), 10);
    await checkAccessibility(page, 'book page');
    await screenshots(page, 'prescripteur-carnet');

    // "Imprimer (PDF)": the printable book, for this session only.
    const href = await page.getByRole('link', { name: 'Imprimer (PDF)' }).getAttribute('href');
    const pdf = await page.request.get(new URL(href, page.url()).href);
    assert.equal(pdf.status(), 200);
    assert.equal(pdf.headers()['content-type'], 'application/pdf');
    const bytes = await pdf.body();
    assert.equal(bytes.subarray(0, 5).toString('latin1'), '%PDF-');
    assert.ok(bytes.length > 10_000, `a whole book, not ${bytes.length} bytes`);
    const bookUrl = page.url().replace(/\?.*$/, '');

    // The list: the book, with its progress; the search finds it.
    await page.getByRole('link', { name: 'Carnets', exact: true }).click();
    await page.waitForURL('**/prescripteur/');
    await page.getByRole('cell', { name: '0 / 10' }).first().waitFor();
    await checkAccessibility(page, 'book list');
    await screenshots(page, 'prescripteur-carnets');
    // A part of the reference, whatever its case, finds it.
    await page.getByLabel('Référence du bénéficiaire').fill('dossier-2026');
    await page.getByRole('button', { name: 'Rechercher' }).click();
    await page.waitForURL(/reference=dossier-2026/);
    assert.equal(await page.locator('tbody tr').count(), 1);
    await page.getByRole('cell', { name: 'DOSSIER-2026-0042' }).waitFor();
    await page.getByLabel('Référence du bénéficiaire').fill('0042');
    await page.getByRole('button', { name: 'Rechercher' }).click();
    await page.waitForURL(/reference=0042/);
    assert.equal(await page.locator('tbody tr').count(), 1);
    await page.getByLabel('Référence du bénéficiaire').fill('%');
    await page.getByRole('button', { name: 'Rechercher' }).click();
    await page.getByText("Aucun carnet n'a de référence contenant « % ».").waitFor();

    // Lost: replaced by a new book, the old one revoked.
    await page.goto(bookUrl);
    await page.getByLabel('Motif du remplacement').fill('carnet perdu');
    await page.getByRole('button', { name: 'Remplacer le carnet' }).click();
    await page.waitForURL(/\?fait=remplace$/);
    assert.notEqual(page.url().replace(/\?.*$/, ''), bookUrl);
    await page.getByText('Ce carnet remplace le').waitFor();
    await checkAccessibility(page, 'replacement book');
    await page.goto(bookUrl);
    await page.getByText('Remplacé par le').waitFor();
    assert.equal(await page.getByRole('row').filter({ hasText: 'Révoqué' }).count(), 10);
    await checkAccessibility(page, 'replaced book');
  });

  test('revoking asks for a confirmation first, then says so once', async () => {
    const page = await newPage(browser);
    await login(page, server, ACCOUNTS.issuer);
    await page.goto(server.url('/prescripteur/carnets/nouveau'));
    await page.getByLabel('Référence du bénéficiaire').fill('R-REVOC-1');
    await page.getByLabel('Code postal du bénéficiaire').fill('67000');
    await page.getByLabel('5 coupons').check();
    await page.getByRole('button', { name: 'Émettre le carnet' }).click();
    await page.waitForURL(/\?fait=emis$/);
    await page.getByText('Pas encore envoyé').waitFor();
    const bookUrl = page.url().replace(/\?.*$/, '');

    await page.getByLabel('Motif de la révocation').fill('carnet remis par erreur');
    await page.getByRole('button', { name: 'Révoquer le carnet' }).click();
    // Nothing is revoked yet: the page asks, saying what it will do.
    const confirm = page.locator('#confirmer-revocation');
    await confirm.getByText('Ses 5 coupons non utilisés ne seront plus acceptés').waitFor();
    await confirm.getByText('« carnet remis par erreur »').waitFor();
    assert.equal(await page.getByRole('row').filter({ hasText: 'Valable' }).count(), 5);
    await checkAccessibility(page, 'revocation to confirm');
    await screenshots(page, 'prescripteur-revocation');
    // "Non" leaves the book as it was.
    await page.getByRole('link', { name: 'Non, garder le carnet' }).click();
    await page.waitForURL(bookUrl);
    assert.equal(await page.getByRole('row').filter({ hasText: 'Valable' }).count(), 5);

    await page.getByLabel('Motif de la révocation').fill('carnet remis par erreur');
    await page.getByRole('button', { name: 'Révoquer le carnet' }).click();
    await page.getByRole('button', { name: 'Oui, révoquer le carnet' }).click();
    await page.waitForURL(/\?fait=revoque$/);
    assert.equal(await page.getByRole('row').filter({ hasText: 'Révoqué' }).count(), 5);
    // One box says it, with when and why; no second banner.
    assert.equal(await page.locator('.alert').count(), 1);
    await page.locator('.alert').getByText('« carnet remis par erreur »').waitFor();
    await checkAccessibility(page, 'revoked book');
  });
});
