// The browser tests' harness: a throwaway passnum server (its own PostgreSQL
// cluster, the demo seed), Debian's Chromium driven by playwright-core, axe-core
// injected into each page, screenshots. Whatever happens, the server and its
// cluster are stopped and their directory removed.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, existsSync, openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, '../../..');

export const DEMO_PASSWORD = 'demo-passnum';
export const ACCOUNTS = {
  operator: 'operateur@demo.passnum.test',
  funder: 'financeur@demo.passnum.test',
  issuer: 'prescripteur@demo.passnum.test',
  venue: 'lieu@demo.passnum.test',
  venue2: 'lieu2@demo.passnum.test',
};

/** The passnum binary: PASSNUM_BIN, else the debug build in the target directory. */
function binary() {
  if (process.env.PASSNUM_BIN) return process.env.PASSNUM_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(repoRoot, 'target');
  return join(target, 'debug', 'passnum');
}

async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const running = new Set();

// Last resort if the runner exits without the test's `after` hook: kill the
// servers still running (each stops its cluster on SIGTERM).
process.on('exit', () => {
  for (const server of running) server.killNow();
});

/**
 * Starts `passnum serve --demo` on a free port with a cluster of its own
 * under a fresh directory; resolves once /readyz answers 200.
 */
export async function startServer() {
  const parent = process.env.PASSNUM_TEST_DATA_DIR || tmpdir();
  mkdirSync(parent, { recursive: true });
  const dir = mkdtempSync(join(parent, 'browser-'));
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const logPath = join(dir, 'server.log');
  const log = openSync(logPath, 'a');
  const env = { ...process.env };
  delete env.DATABASE_URL;
  Object.assign(env, {
    PASSNUM_ENV: 'development',
    PASSNUM_DATA_DIR: join(dir, 'data'),
    PASSNUM_KEYS_DIR: join(dir, 'keys'),
    PASSNUM_BIND: `127.0.0.1:${port}`,
    PASSNUM_PUBLIC_URL: baseUrl,
    RUST_LOG: process.env.RUST_LOG || 'warn,passnum=info',
  });
  const child = spawn(binary(), ['serve', '--demo'], { env, stdio: ['ignore', log, log] });
  closeSync(log);
  let exited = null;
  const exitedPromise = new Promise((r) => child.on('exit', (code, signal) => { exited = { code, signal }; r(); }));

  const server = {
    baseUrl,
    dir,
    url: (path) => `${baseUrl}${path}`,
    log: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : ''),
    killNow() {
      if (exited) return;
      try { child.kill('SIGTERM'); } catch { /* already gone */ }
    },
    /** Stops the server (which stops its cluster), then removes its directory. */
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const deadline = Date.now() + 30_000;
        while (!exited && Date.now() < deadline) await sleep(100);
        if (!exited) {
          child.kill('SIGKILL');
          await exitedPromise;
          stopClusterLeftBehind(join(dir, 'data'));
        }
      }
      running.delete(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  running.add(server);

  const deadline = Date.now() + 180_000;
  for (;;) {
    if (exited) {
      const output = server.log();
      await server.stop();
      throw new Error(`passnum exited (${JSON.stringify(exited)}) before it was ready:\n${output}`);
    }
    try {
      const res = await fetch(server.url('/readyz'));
      if (res.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      const output = server.log();
      await server.stop();
      throw new Error(`passnum did not become ready:\n${output}`);
    }
    await sleep(250);
  }
  return server;
}

/** A server killed hard leaves its postmaster: stop it from its pid file. */
function stopClusterLeftBehind(dataDir) {
  const pidFile = join(dataDir, 'pg', 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (pid > 0) {
    try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
  }
}

/** Headless Debian Chromium (CHROMIUM overrides the path), with `args` added. */
export async function launchBrowser({ args = [] } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Root in a container has no user namespaces for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-dev-shm-usage', ...args],
  });
}

/** A fresh browser context (its own cookies) at a phone or desktop width. */
export async function newPage(browser, { width = 1280, height = 900 } = {}) {
  const context = await browser.newContext({
    viewport: { width, height },
    locale: 'fr-FR',
    timezoneId: 'Europe/Paris',
    acceptDownloads: true,
  });
  return context.newPage();
}

/** Logs in through the login page and waits for the role's home page. */
export async function login(page, server, email) {
  await page.goto(server.url('/connexion'));
  await page.getByLabel('Adresse e-mail').fill(email);
  await page.getByLabel('Mot de passe').fill(DEMO_PASSWORD);
  await page.getByRole('button', { name: 'Se connecter' }).click();
  await page.waitForURL((url) => !url.pathname.startsWith('/connexion'));
}

const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Runs axe-core on the page as it is (WCAG 2.x A and AA rules); throws
 * listing every serious or critical violation. Evaluated through the
 * DevTools protocol, so the pages' CSP stays as strict as it is.
 */
export async function checkAccessibility(page, label = page.url()) {
  const loaded = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!loaded) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
    });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 5),
    }));
  });
  const grave = violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (grave.length > 0) {
    const lines = grave.map((v) => `  [${v.impact}] ${v.id}: ${v.help} — ${v.targets.join(', ')}`);
    throw new Error(`axe-core on ${label}:\n${lines.join('\n')}`);
  }
  return violations;
}

/**
 * A full-page screenshot at `width` px, into PASSNUM_SCREENSHOTS_DIR when set
 * (docs/screenshots/ is refreshed that way), else into a temporary directory.
 */
export async function screenshot(page, name, width) {
  const dir = process.env.PASSNUM_SCREENSHOTS_DIR
    ? resolve(repoRoot, process.env.PASSNUM_SCREENSHOTS_DIR)
    : join(tmpdir(), 'passnum-screenshots');
  mkdirSync(dir, { recursive: true });
  const previous = page.viewportSize();
  await page.setViewportSize({ width, height: previous?.height ?? 900 });
  const path = join(dir, `${name}-${width}.png`);
  await page.screenshot({ path, fullPage: true });
  if (previous) await page.setViewportSize(previous);
  return path;
}

/** Phone and desktop screenshots of the page as it is. */
export async function screenshots(page, name) {
  return [await screenshot(page, name, 390), await screenshot(page, name, 1280)];
}

/** A bearer token for a demo account, from the API. */
export async function apiToken(server, email) {
  const res = await fetch(server.url('/api/v1/auth/token'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password: DEMO_PASSWORD }),
  });
  if (!res.ok) throw new Error(`login of ${email}: ${res.status} ${await res.text()}`);
  return (await res.json()).access_token;
}

/** Calls the API as `token`; resolves to the parsed JSON answer, throws on an error status. */
export async function api(server, token, method, path, body) {
  const res = await fetch(server.url(path), {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
