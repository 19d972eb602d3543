// Logging in and out, for every role, and the pages' accessibility.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCOUNTS, checkAccessibility, launchBrowser, login, newPage, screenshots, startServer,
} from './lib/harness.mjs';

describe('logging in', () => {
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

  test('the login page is accessible, and a wrong password is refused in French', async () => {
    const page = await newPage(browser);
    await page.goto(server.url('/'));
    assert.equal(new URL(page.url()).pathname, '/connexion');
    await checkAccessibility(page, 'login page');
    await screenshots(page, 'connexion');
    await page.getByLabel('Adresse e-mail').fill(ACCOUNTS.issuer);
    await page.getByLabel('Mot de passe').fill('pas-le-bon-mot-de-passe');
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await assert.doesNotReject(page.getByText('Adresse e-mail ou mot de passe incorrect.').waitFor());
    await checkAccessibility(page, 'login page with an error');
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.getByText('Saisissez votre mot de passe.').first().waitFor();
    assert.equal(await page.getByLabel('Mot de passe').getAttribute('aria-invalid'), 'true');
  });

  test('every page links the legal notice, the accessibility statement (RGAA) and the personal data page', async () => {
    const page = await newPage(browser);
    for (const [link, heading, shot] of [
      ['Mentions légales', 'Mentions légales', 'mentions-legales'],
      ['Accessibilité : non conforme', "Déclaration d'accessibilité", 'accessibilite'],
      ['Données personnelles', 'Données personnelles', 'donnees-personnelles'],
    ]) {
      await page.goto(server.url('/connexion'));
      await page.getByRole('contentinfo').getByRole('link', { name: link }).click();
      await page.getByRole('heading', { level: 1, name: heading }).waitFor();
      await checkAccessibility(page, heading);
      await screenshots(page, shot);
      if (shot === 'accessibilite') {
        // The statement says what French law asks: the conformity and its reference, how to complain.
        await page.getByText('non conforme avec le RGAA 4.1.2').waitFor();
        await page.getByRole('heading', { name: 'Voies de recours' }).waitFor();
      }
    }
    // Logged in, the pages keep the user's menu, and the footer is on every page.
    await login(page, server, ACCOUNTS.venue);
    await page.getByRole('contentinfo').getByRole('link', { name: 'Données personnelles' }).click();
    await page.getByRole('heading', { level: 1, name: 'Données personnelles' }).waitFor();
    await page.getByRole('navigation', { name: 'Menu principal' }).waitFor();
  });

  for (const [role, home] of [['issuer', '/prescripteur/'], ['funder', '/financeur/'], ['operator', '/operateur/'], ['venue', '/lieu/']]) {
    test(`${role} lands on ${home}, and logging out ends the session`, async () => {
      const page = await newPage(browser);
      await login(page, server, ACCOUNTS[role]);
      assert.equal(new URL(page.url()).pathname, home);
      await checkAccessibility(page, `${role} home`);
      const cookies = await page.context().cookies();
      const session = cookies.find((c) => c.name === 'passnum_session');
      assert.ok(session, 'a session cookie');
      assert.equal(session.httpOnly, true);
      assert.equal(session.sameSite, 'Strict');
      await page.getByRole('button', { name: 'Se déconnecter' }).click();
      await page.getByText('Vous êtes déconnecté.').waitFor();
      await page.goto(server.url(home));
      assert.equal(new URL(page.url()).pathname, '/connexion');
    });
  }

  test('the keyboard reaches the content first, and the focus is visible', async () => {
    const page = await newPage(browser);
    await login(page, server, ACCOUNTS.issuer);
    await page.keyboard.press('Tab');
    const skip = await page.evaluate(() => {
      const el = document.activeElement;
      const style = getComputedStyle(el);
      return { text: el.textContent, outline: style.outlineStyle, width: style.outlineWidth };
    });
    assert.equal(skip.text, 'Aller au contenu');
    assert.equal(skip.outline, 'solid');
    assert.equal(skip.width, '3px');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'contenu');
    // Then Tab goes on into the page's own content, not back to the menu.
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.closest('main') !== null), true);
  });

  test('a page of another role is refused', async () => {
    const page = await newPage(browser);
    await login(page, server, ACCOUNTS.issuer);
    const res = await page.goto(server.url('/operateur/'));
    assert.equal(res.status(), 403);
    await checkAccessibility(page, 'forbidden page');
    const missing = await page.goto(server.url('/prescripteur/carnets/424242'));
    assert.equal(missing.status(), 404);
    await page.getByRole('heading', { name: 'Page introuvable' }).waitFor();
    await checkAccessibility(page, 'not found page');
  });
});
