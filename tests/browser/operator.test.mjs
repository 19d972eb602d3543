// The operator: registers a venue, accredits it, opens an account for it,
// rotates a signing key; every page passes axe-core.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNTS, checkAccessibility, launchBrowser, login, newPage, screenshots, startServer,
} from './lib/harness.mjs';

/** The digit that makes `digits` + it pass the Luhn check. */
function luhnDigit(digits) {
  for (let d = 0; d <= 9; d += 1) {
    const all = `${digits}${d}`;
    let sum = 0;
    [...all].reverse().forEach((c, i) => {
      let n = Number(c) * (i % 2 === 1 ? 2 : 1);
      if (n > 9) n -= 9;
      sum += n;
    });
    if (sum % 10 === 0) return String(d);
  }
  throw new Error('unreachable');
}

function siret(sirenStem, nicStem) {
  const siren = sirenStem + luhnDigit(sirenStem);
  const body = siren + nicStem;
  return body + luhnDigit(body);
}

describe('operator', () => {
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

  test('registers a venue, accredits it, opens an account, rotates a key', async () => {
    const page = await newPage(browser);
    await login(page, server, ACCOUNTS.operator);
    await checkAccessibility(page, 'organisations');
    await screenshots(page, 'operateur-organisations');

    await page.getByRole('link', { name: 'Ajouter une organisation' }).click();
    await checkAccessibility(page, 'new organisation form');
    await page.getByLabel('Lieu de médiation').check();
    await page.getByLabel('Nom', { exact: true }).fill('Maison des services de Sélestat');
    await page.getByLabel('SIRET').fill('12345678');
    await page.getByLabel('Adresse', { exact: true }).fill('2 rue de la Paix');
    await page.getByLabel('Code postal').fill('67600');
    await page.getByLabel('Code INSEE de la commune').fill('67462');
    await page.getByLabel('Latitude').fill('48,2594');
    await page.getByLabel('Longitude').fill('7,4542');
    await page.getByRole('button', { name: "Ajouter l'organisation" }).click();
    // A wrong SIRET is refused, tied to its field; the rest is kept.
    await page.getByRole('alert').waitFor();
    assert.equal(await page.getByLabel('SIRET').getAttribute('aria-invalid'), 'true');
    assert.equal(await page.getByLabel('Code postal').inputValue(), '67600');
    await checkAccessibility(page, 'new organisation form with errors');
    await page.getByLabel('SIRET').fill(siret('91234567', '0001'));
    await page.getByRole('button', { name: "Ajouter l'organisation" }).click();
    await page.waitForURL(/\/operateur\/organisations\/\d+\?fait=creee$/);
    await page.getByText('Non habilité').waitFor();

    const until = new Date();
    until.setFullYear(until.getFullYear() + 1);
    await page.getByLabel("Habilité jusqu'au").fill(until.toISOString().slice(0, 10));
    await page.getByRole('button', { name: 'Habiliter le lieu' }).click();
    await page.waitForURL(/\?fait=habilitee$/);
    await page.getByText('Le lieu est habilité.').waitFor();
    await page.getByText('Habilité', { exact: true }).waitFor();
    await checkAccessibility(page, 'venue page');
    await screenshots(page, 'operateur-lieu');

    await page.getByLabel('Adresse e-mail').fill('accueil@mds-selestat.example');
    await page.getByLabel('Mot de passe initial').fill('un mot de passe assez long');
    await page.getByRole('button', { name: 'Créer le compte' }).click();
    await page.waitForURL(/\?fait=utilisateur$/);
    await page.getByRole('rowheader', { name: 'accueil@mds-selestat.example' }).waitFor();

    // The new account works: it logs in and lands on the venue's page.
    const venuePage = await newPage(browser);
    await venuePage.goto(server.url('/connexion'));
    await venuePage.getByLabel('Adresse e-mail').fill('accueil@mds-selestat.example');
    await venuePage.getByLabel('Mot de passe').fill('un mot de passe assez long');
    await venuePage.getByRole('button', { name: 'Se connecter' }).click();
    await venuePage.waitForURL('**/lieu/');

    await page.getByRole('link', { name: 'Clés de signature' }).click();
    const before = await page.locator('tbody tr').count();
    await checkAccessibility(page, 'keys');
    await page.getByRole('button', { name: 'Nouvelle clé des coupons' }).click();
    await page.waitForURL(/\?fait=rotation$/);
    assert.equal(await page.locator('tbody tr').count(), before + 1);
    await page.getByText('Retirée (vérifie encore)').first().waitFor();
    await checkAccessibility(page, 'keys after a rotation');
  });
});
