// Strict Ed25519 verification of vouchers against the JWK Set, as the server
// does it (ed25519-dalek's verify_strict): canonical S, canonical points,
// neither the key nor R of small order, and the cofactorless equation.
// WebCrypto does the equation where the browser has Ed25519; elsewhere the
// vendored @noble/ed25519 does. The strictness checks are ours either way,
// since WebCrypto implementations do not promise them.

import { Point } from "../vendor/@noble/ed25519/index.js";
import { BODY_LEN, VoucherError } from "./voucher.js";

const TAG = new TextEncoder().encode("passnum-voucher-v1");
/** The group order L. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

/** `"passnum-voucher-v1" || 0x00 || body`: what a voucher signature covers. */
export function signedMessage(body) {
  const message = new Uint8Array(TAG.length + 1 + BODY_LEN);
  message.set(TAG, 0);
  message.set(body, TAG.length + 1);
  return message;
}

function littleEndian(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

function base64url(text) {
  const standard = text.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(standard + "=".repeat((4 - (standard.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** A strictly decoded point of prime order part, or null. */
function strictPoint(bytes) {
  try {
    const point = Point.fromBytes(bytes, false);
    return point.isSmallOrder() ? null : point;
  } catch {
    return null;
  }
}

let webCryptoEd25519; // a promise of true or false, asked once

/** Whether this browser's WebCrypto verifies Ed25519. */
export function hasWebCryptoEd25519() {
  webCryptoEd25519 ??= (async () => {
    try {
      const key = await crypto.subtle.importKey("raw", Point.BASE.toBytes(), { name: "Ed25519" }, false, ["verify"]);
      await crypto.subtle.verify({ name: "Ed25519" }, key, new Uint8Array(64), new Uint8Array(1));
      return true;
    } catch {
      return false;
    }
  })();
  return webCryptoEd25519;
}

/** The cofactorless equation [S]B = R + [k]A, in JavaScript. */
async function nobleEquation(publicKey, A, R, signature, message) {
  const hashed = new Uint8Array(
    await crypto.subtle.digest("SHA-512", concat(signature.subarray(0, 32), publicKey, message)),
  );
  const k = littleEndian(hashed) % L;
  const S = littleEndian(signature.subarray(32));
  return Point.BASE.multiply(S, false).equals(R.add(A.multiply(k, false)));
}

async function webCryptoEquation(publicKey, signature, message) {
  const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/**
 * Verifies an Ed25519 signature strictly. `engine` is "webcrypto", "noble"
 * or, by default, whichever the browser has (WebCrypto first).
 */
export async function verifyStrict(publicKey, signature, message, engine) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  if (littleEndian(signature.subarray(32)) >= L) return false;
  const A = strictPoint(publicKey);
  const R = strictPoint(signature.subarray(0, 32));
  if (A === null || R === null) return false;
  const useWebCrypto = engine ? engine === "webcrypto" : await hasWebCryptoEd25519();
  return useWebCrypto
    ? webCryptoEquation(publicKey, signature, message)
    : nobleEquation(publicKey, A, R, signature, message);
}

/**
 * The voucher keys of a JWK Set (`/.well-known/jwks.json`) by kid. A key
 * withdrawn after a compromise leaves the set; `withdrawn` (kids from the
 * sync feed) removes those the phone learnt of since it fetched the set.
 */
export function voucherKeys(jwks, withdrawn = []) {
  const keys = new Map();
  for (const jwk of jwks?.keys ?? []) {
    const voucherKey = jwk.kty === "OKP" && jwk.crv === "Ed25519" && jwk.purpose === "voucher";
    if (!voucherKey || withdrawn.includes(jwk.kid)) continue;
    const kid = Number(jwk.kid);
    if (Number.isInteger(kid) && kid >= 0 && kid <= 255) keys.set(kid, base64url(jwk.x));
  }
  return keys;
}

/** Checks a parsed voucher's signature with `keys` (from voucherKeys); throws a VoucherError. */
export async function verifyVoucher(voucher, keys, engine) {
  const publicKey = keys.get(voucher.kid);
  if (!publicKey) throw new VoucherError("unknown-key", `clé ${voucher.kid} inconnue ou retirée`);
  const genuine = await verifyStrict(publicKey, voucher.signature, signedMessage(voucher.body), engine);
  if (!genuine) throw new VoucherError("invalid-signature", "la signature ne correspond pas");
}
