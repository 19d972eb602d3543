// After a logout: the scan page kept on this phone for offline use is the last
// user's page (their e-mail, their form token); a shared phone must not reopen
// it. Its scripts stay cached, and the scans still waiting to be sent stay in
// IndexedDB; the next login keeps a fresh copy of the page.
if ("caches" in window) {
  caches.keys().then((names) =>
    Promise.all(
      names.filter((n) => n.startsWith("passnum-scan-")).map(async (n) => (await caches.open(n)).delete("/lieu/")),
    ),
  );
}
