// The scan page as a witness of the public log: at each sync the phone
// checks the signed checkpoint and that the log extends the one it kept,
// from the tiles. A log that grows passes; a forked log (signed with the
// log's own key, but not extending what the phone saw) raises the alarm,
// shown to the venue and stored for the operator.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ACCOUNTS, api, apiToken, checkAccessibility, launchBrowser, login, newPage, screenshot, startServer,
} from './lib/harness.mjs';

const PHONE = { width: 390, height: 844 };
const sha256 = (...parts) => createHash('sha256').update(Buffer.concat(parts.map((p) => Buffer.from(p)))).digest();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Redeems one more voucher of a fresh book at the demo venue. */
async function redeemOne(server, issuer, venue) {
  const programs = await api(server, issuer, 'GET', '/api/v1/programs');
  const program = (programs.items ?? programs)[0];
  const book = await api(server, issuer, 'POST', '/api/v1/books', {
    program_id: program.id, size: 5, beneficiary: { reference: 'WITNESS', postcode: '67000' },
  });
  const today = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Paris' }).format(new Date());
  await api(server, venue, 'POST', '/api/v1/redemptions', {
    code: book.vouchers[0].code, workshop: { theme: 'email', held_on: today, duration_minutes: 60 },
  });
}

/** Waits until the served checkpoint holds at least `size` entries; returns it. */
async function checkpointOf(server, size) {
  for (let i = 0; i < 100; i++) {
    const res = await fetch(server.url('/log/checkpoint'));
    if (res.ok) {
      const note = await res.text();
      if (Number(note.split('\n')[1]) >= size) return note;
    }
    await sleep(100);
  }
  throw new Error(`the log never reached ${size} entries`);
}

/** The log's private key, found in the server's keys directory by its public half. */
function logKey(server, vkey) {
  // The base64 key may hold "+" itself: it is all after the second one.
  const encoded = vkey.trim().split('+').slice(2).join('+');
  const wanted = Buffer.from(encoded, 'base64').subarray(1).toString('base64url');
  const dir = join(server.dir, 'keys');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.pem'))) {
    // The files are PKCS#8 v2 (with the public key), which OpenSSL 3.0 does
    // not read: take the 32-byte seed and wrap it as PKCS#8 v1.
    const der = Buffer.from(readFileSync(join(dir, file), 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const at = der.indexOf(Buffer.from('04220420', 'hex'));
    if (at < 0) continue;
    const seed = der.subarray(at + 4, at + 36);
    const key = createPrivateKey({
      key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8',
    });
    if (createPublicKey(key).export({ format: 'jwk' }).x === wanted) return key;
  }
  throw new Error('no private file for the log key');
}

/** MTH of leaf hashes (RFC 6962 2.1). */
function mth(leaves) {
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha256([1], mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/** Another log of `entries` (fewer than 256), signed with the log's key. */
function forkedLog(vkey, key, entries) {
  const [origin, hexId] = vkey.trim().split('+', 2);
  const leaves = entries.map((e) => sha256([0], e));
  const text = `${origin}\n${entries.length}\n${mth(leaves).toString('base64')}\n`;
  const signature = Buffer.concat([Buffer.from(hexId, 'hex'), sign(null, Buffer.from(text), key)]);
  const tiles = new Map([[`tile/0/000.p/${entries.length}`, Buffer.concat(leaves)]]);
  return { note: `${text}\n\u2014 ${origin} ${signature.toString('base64')}\n`, tiles };
}

describe('the scan page witnesses the public log', () => {
  let server;
  let browser;
  let page;
  let issuer;
  let venue;
  let seen;
  const sizeOf = (note) => Number(note.split('\n')[1]);

  before(async () => {
    server = await startServer();
    issuer = await apiToken(server, ACCOUNTS.issuer);
    venue = await apiToken(server, ACCOUNTS.venue);
    for (let i = 0; i < 3; i++) await redeemOne(server, issuer, venue);
    seen = sizeOf(await checkpointOf(server, 3));
    browser = await launchBrowser();
    page = await newPage(browser, PHONE);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the phone keeps the checkpoint, and a log that grows passes', async () => {
    await login(page, server, ACCOUNTS.venue);
    await page.getByLabel('Nom de ce téléphone').fill('Téléphone témoin');
    await page.getByRole('button', { name: 'Activer ce téléphone' }).click();
    await page.locator('#scan-app[data-ready="true"]').waitFor();
    try {
      await page.getByText(`Journal public vérifié · ${seen} inscriptions`).waitFor();
    } catch (error) {
      const shown = await page.evaluate(() => [document.getElementById('log-status')?.outerHTML, document.getElementById('log-alarm')?.outerHTML, document.getElementById('network')?.textContent]);
      throw new Error(`${error.message}\npage: ${JSON.stringify(shown)}\nserver: ${server.log().slice(-3000)}`);
    }
    for (let i = 0; i < 2; i++) await redeemOne(server, issuer, venue);
    seen = sizeOf(await checkpointOf(server, seen + 2));
    await page.reload();
    await page.getByText(`Journal public vérifié · ${seen} inscriptions`).waitFor();
    assert.equal(await page.locator('#log-alarm').isVisible(), false);
    const operator = await apiToken(server, ACCOUNTS.operator);
    assert.deepEqual((await api(server, operator, 'GET', '/api/v1/log/alarms')).items, []);
  });

  test('a forked log, signed with the log key, raises the alarm and reports it', async () => {
    const res = await fetch(server.url('/log/key'));
    const vkey = await res.text();
    assert.equal(res.status, 200, vkey);
    const key = logKey(server, vkey);
    // One more entry than the phone saw, none of them those it saw.
    const entries = Array.from({ length: seen + 1 }, (_, i) => Buffer.from(`{"kind":"redeemed","forged":${i}}`));
    const fork = forkedLog(vkey, key, entries);
    await page.route('**/log/checkpoint', (route) => route.fulfill({ status: 200, contentType: 'text/plain; charset=utf-8', body: fork.note }));
    await page.route('**/log/tile/**', (route) => {
      const path = new URL(route.request().url()).pathname.replace('/log/', '');
      const body = fork.tiles.get(path);
      return body ? route.fulfill({ status: 200, contentType: 'application/octet-stream', body }) : route.fulfill({ status: 404, body: '' });
    });
    await page.reload();
    const alarm = page.locator('#log-alarm');
    await alarm.waitFor();
    assert.match(await alarm.textContent(), new RegExp(`ne prolonge pas celui de ${seen} inscriptions`));
    await checkAccessibility(page, 'scan page, log alarm');
    await screenshot(page, 'scan-log-alarm', PHONE.width);
    const operator = await apiToken(server, ACCOUNTS.operator);
    const { items } = await api(server, operator, 'GET', '/api/v1/log/alarms');
    assert.equal(items.length, 1);
    assert.equal(items[0].problem, 'inconsistent');
    assert.equal(items[0].new_checkpoint, fork.note);
    assert.equal(sizeOf(items[0].kept_checkpoint), seen);

    // The real log again: the phone kept what it saw before the fork.
    await page.unroute('**/log/checkpoint');
    await page.unroute('**/log/tile/**');
    await page.reload();
    await page.getByText(`Journal public vérifié · ${seen} inscriptions`).waitFor();
    assert.equal(await alarm.isVisible(), false);
  });
});
