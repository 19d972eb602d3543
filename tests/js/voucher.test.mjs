// The scan page's voucher reader and verifier against every test vector of
// tests/vectors/voucher-v1.json, with both Ed25519 engines.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { parseText, parseTypedCode, readCode, VoucherError } from "../../static/scan/voucher.js";
import { hasWebCryptoEd25519, verifyVoucher, voucherKeys } from "../../static/scan/verify.js";

const vectors = JSON.parse(readFileSync(new URL("../vectors/voucher-v1.json", import.meta.url)));

const jwks = (kid, x) => ({
  keys: [{ kty: "OKP", crv: "Ed25519", x, kid: String(kid), alg: "EdDSA", use: "sig", purpose: "voucher", status: "active" }],
});

/** The problem slug a code earns, or "valid". */
async function judge(text, keys, engine) {
  try {
    await verifyVoucher(parseText(text), keys, engine);
    return "valid";
  } catch (error) {
    if (error instanceof VoucherError) return error.problem;
    throw error;
  }
}

test("this Node has WebCrypto Ed25519, so both engines are tested", async () => {
  assert.equal(await hasWebCryptoEd25519(), true);
});

for (const engine of ["webcrypto", "noble"]) {
  for (const v of vectors.valid) {
    test(`${engine}: valid: ${v.description}`, async () => {
      const voucher = parseText(v.text);
      assert.equal(voucher.kid, v.kid);
      assert.equal(voucher.voucherId, v.voucher_id);
      assert.equal(voucher.programId, v.program_id);
      assert.equal(voucher.expiresOn, v.expires_on);
      assert.equal(voucher.position, v.position);
      assert.equal(voucher.bookSize, v.book_size);
      assert.equal(Buffer.from(voucher.body).toString("hex"), v.body_hex);
      assert.equal(Buffer.from(voucher.signature).toString("hex"), v.signature_hex);
      assert.equal(await judge(v.text, voucherKeys(jwks(v.kid, v.public_key_x)), engine), "valid");
      // What scanners do to the text is forgiven.
      const scanned = `  ${v.text.toLowerCase()}\r\n`;
      assert.equal(await judge(scanned, voucherKeys(jwks(v.kid, v.public_key_x)), engine), "valid");
    });
  }
  for (const v of vectors.invalid) {
    test(`${engine}: refused as ${v.expected}: ${v.description}`, async () => {
      assert.equal(await judge(v.text, voucherKeys(jwks(v.kid, v.public_key_x)), engine), v.expected);
    });
  }
}

test("a withdrawn kid no longer verifies", async () => {
  const v = vectors.valid[0];
  const keys = voucherKeys(jwks(v.kid, v.public_key_x), [String(v.kid)]);
  assert.equal(await judge(v.text, keys, "noble"), "unknown-key");
});

test("statement keys never verify vouchers", async () => {
  const v = vectors.valid[0];
  const set = jwks(v.kid, v.public_key_x);
  set.keys[0].purpose = "statement";
  assert.equal(await judge(v.text, voucherKeys(set), "noble"), "unknown-key");
});

test("typed codes read back to their voucher ids", () => {
  for (const v of vectors.valid) {
    assert.equal(parseTypedCode(v.typed_code), v.voucher_id);
    const typed = v.typed_code.toLowerCase().replace(/-/g, " ").replace(/1/g, "l").replace(/0/g, "o");
    assert.equal(parseTypedCode(typed), v.voucher_id);
    assert.deepEqual(readCode(v.typed_code), { kind: "typed", voucherId: v.voucher_id });
  }
});

test("typed codes with a wrong symbol, length, size or letter U are malformed", () => {
  const good = vectors.valid[0].typed_code; // 0000-0000-0000-1Y
  for (const bad of ["0000-0000-0000-1Z", "0000-0000-0000-1", "8000-0000-0000-00", "0000-0000-0000-UY", "", "   ", "0000-0000-0000-00"]) {
    assert.throws(() => readCode(bad), (e) => e instanceof VoucherError && e.problem === "malformed-code", bad);
  }
  assert.equal(readCode(good).voucherId, "1");
});
