// The scan page's log witness (static/scan/witness.js) in node: signed
// checkpoints with keys whose base64 holds "+", and consistency proofs from
// tiles for every pair of sizes of a small tree, a fork refused each time.

import assert from "node:assert/strict";
import { createHash, generateKeyPairSync, sign } from "node:crypto";
import { test } from "node:test";

import { consistencyProof, openCheckpoint, parseVerifierKey, tilePath, verifyConsistency, witness } from "../../static/scan/witness.js";

const sha = (...parts) => createHash("sha256").update(Buffer.concat(parts.map((p) => Buffer.from(p)))).digest();
const leaf = (e) => sha([0], e);
function mth(leaves) {
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha([1], mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/** A log key whose verifier key's base64 holds a "+", as one in a few does. */
function keyWithPlus(origin) {
  for (;;) {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const raw = Buffer.concat([Buffer.from([1]), Buffer.from(publicKey.export({ format: "jwk" }).x, "base64url")]);
    const id = sha(origin, "\n", raw).subarray(0, 4).toString("hex");
    const vkey = `${origin}+${id}+${raw.toString("base64")}`;
    if (vkey.split("+").length > 3) return { privateKey, vkey, id };
  }
}

function checkpoint({ privateKey, id }, origin, leaves) {
  const text = `${origin}\n${leaves.length}\n${mth(leaves).toString("base64")}\n`;
  const sig = Buffer.concat([Buffer.from(id, "hex"), sign(null, Buffer.from(text), privateKey)]);
  return `${text}\n\u2014 ${origin} ${sig.toString("base64")}\n`;
}

/** The level-0 tile of a tree under 256 entries (fetched by its C2SP path). */
const tiles = (leaves) => async (path) => {
  assert.equal(path, tilePath(0, 0, leaves.length));
  return new Uint8Array(Buffer.concat(leaves));
};

test("a verifier key whose base64 holds a + opens its checkpoints", async () => {
  const origin = "pass.example/log";
  const key = keyWithPlus(origin);
  assert.equal((await parseVerifierKey(key.vkey)).name, origin);
  const leaves = [0, 1, 2].map((i) => leaf(`entry ${i}`));
  const opened = await openCheckpoint(checkpoint(key, origin, leaves), key.vkey);
  assert.equal(opened.size, 3);
  await assert.rejects(openCheckpoint(checkpoint(keyWithPlus(origin), origin, leaves), key.vkey), /signature/);
});

test("every pair of sizes is consistent, and a fork never is", async () => {
  const all = Array.from({ length: 40 }, (_, i) => leaf(`entry ${i}`));
  const forked = all.map((h, i) => (i === 3 ? leaf("changed") : h));
  for (let n = 1; n <= all.length; n++) {
    for (let m = 1; m <= n; m++) {
      const proof = await consistencyProof(m, n, tiles(all.slice(0, n)));
      assert.ok(await verifyConsistency(m, n, mth(all.slice(0, m)), mth(all.slice(0, n)), proof), `${m} → ${n}`);
      if (m > 3) {
        const fork = await consistencyProof(m, n, tiles(forked.slice(0, n)));
        assert.equal(await verifyConsistency(m, n, mth(all.slice(0, m)), mth(forked.slice(0, n)), fork), false, `fork ${m} → ${n}`);
      }
    }
  }
  const origin = "pass.example/log";
  const key = keyWithPlus(origin);
  const kept = checkpoint(key, origin, all.slice(0, 10));
  assert.equal((await witness(checkpoint(key, origin, all.slice(0, 20)), kept, key.vkey, tiles(all.slice(0, 20)))).size, 20);
  await assert.rejects(witness(checkpoint(key, origin, forked.slice(0, 20)), kept, key.vkey, tiles(forked.slice(0, 20))), /ne prolonge pas/);
  await assert.rejects(witness(checkpoint(key, origin, all.slice(0, 5)), kept, key.vkey, tiles(all.slice(0, 5))), /moins que/);
});
