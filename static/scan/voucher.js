// The voucher format v1 (docs/voucher-format.md) read in the browser: the
// `PN1:` text of the QR code and the typed code printed under it. Pure: no
// I/O and no cryptography (see verify.js).

/** Why a code is refused, as the API's problem slugs. */
export class VoucherError extends Error {
  constructor(problem, message) {
    super(message);
    this.name = "VoucherError";
    this.problem = problem;
  }
}

const malformed = (message) => new VoucherError("malformed-code", message);

const BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
const TEXT_PREFIX = "PN1:";
const VERSION = 1;
export const BODY_LEN = 18;
const SIGNATURE_LEN = 64;
const MAX_VOUCHER_ID = (1n << 63n) - 1n;
const DAY_MS = 86_400_000;

/** RFC 9285 Base45, rejecting what the format page says decoders must. */
export function decodeBase45(text) {
  const values = [];
  for (const character of text) {
    const value = BASE45.indexOf(character);
    if (value < 0) throw malformed(`« ${character} » n'appartient pas à l'alphabet Base45`);
    values.push(value);
  }
  if (values.length % 3 === 1) throw malformed("un symbole Base45 isolé en fin de code");
  const bytes = [];
  for (let i = 0; i < values.length; i += 3) {
    if (i + 2 < values.length) {
      const n = values[i] + values[i + 1] * 45 + values[i + 2] * 2025;
      if (n > 0xffff) throw malformed("un groupe Base45 dépasse 65535");
      bytes.push(n >> 8, n & 0xff);
    } else {
      const n = values[i] + values[i + 1] * 45;
      if (n > 0xff) throw malformed("une paire Base45 dépasse 255");
      bytes.push(n);
    }
  }
  return Uint8Array.from(bytes);
}

function isoDate(daysSinceEpoch) {
  return new Date(daysSinceEpoch * DAY_MS).toISOString().slice(0, 10);
}

/**
 * Reads the QR text: prefix, Base45, length and body rules. The signature is
 * not checked here. Scanners' lower case and surrounding whitespace are
 * forgiven; inner spaces are Base45 symbols and are kept.
 */
export function parseText(input) {
  const text = input.trim().replace(/[a-z]/g, (c) => c.toUpperCase());
  if (!text.startsWith(TEXT_PREFIX)) throw malformed("le code ne commence pas par PN1:");
  const payload = decodeBase45(text.slice(TEXT_PREFIX.length));
  if (payload.length !== BODY_LEN + SIGNATURE_LEN) {
    throw malformed(`${payload.length} octets au lieu de ${BODY_LEN + SIGNATURE_LEN}`);
  }
  const body = payload.slice(0, BODY_LEN);
  const view = new DataView(body.buffer);
  const version = view.getUint8(0);
  if (version !== VERSION) throw malformed(`version ${version} inconnue`);
  const voucherId = view.getBigUint64(2);
  if (voucherId === 0n || voucherId > MAX_VOUCHER_ID) throw malformed("numéro de coupon hors limites");
  const position = view.getUint8(16);
  const bookSize = view.getUint8(17);
  if (bookSize !== 5 && bookSize !== 10) throw malformed(`carnet de ${bookSize} coupons`);
  if (position === 0 || position > bookSize) throw malformed(`coupon ${position} d'un carnet de ${bookSize}`);
  return {
    kid: view.getUint8(1),
    voucherId: voucherId.toString(),
    programId: view.getUint32(10),
    expiresOn: isoDate(view.getUint16(14)),
    position,
    bookSize,
    body,
    signature: payload.slice(BODY_LEN),
  };
}

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TYPED_SYMBOLS = 14;

function crockfordValue(character) {
  const symbol = { I: "1", L: "1", O: "0" }[character] ?? character;
  return CROCKFORD.indexOf(symbol);
}

/** Luhn mod 32 over the data symbols' values, factor 2 on the rightmost. */
function checkValue(values) {
  let sum = 0;
  let factor = 2;
  for (let i = values.length - 1; i >= 0; i--) {
    const addend = factor * values[i];
    sum += Math.floor(addend / 32) + (addend % 32);
    factor = 3 - factor;
  }
  return (32 - (sum % 32)) % 32;
}

/** Reads a typed code (`XXXX-XXXX-XXXX-XX`) back to its voucher id, as a decimal string. */
export function parseTypedCode(input) {
  const values = [];
  for (const character of input.trim().toUpperCase()) {
    if (character === "-" || character === " ") continue;
    const value = crockfordValue(character);
    if (value < 0) throw malformed(`« ${character} » n'existe pas dans un code à taper`);
    values.push(value);
  }
  if (values.length === 0) throw malformed("le code est vide");
  if (values.length !== TYPED_SYMBOLS) {
    throw malformed(`${values.length} signes au lieu de ${TYPED_SYMBOLS}`);
  }
  const data = values.slice(0, TYPED_SYMBOLS - 1);
  if (data[0] > 7) throw malformed("numéro de coupon hors limites");
  if (values[TYPED_SYMBOLS - 1] !== checkValue(data)) {
    throw malformed("le dernier signe ne correspond pas : vérifiez la saisie");
  }
  const voucherId = data.reduce((id, value) => (id << 5n) | BigInt(value), 0n);
  if (voucherId === 0n) throw malformed("numéro de coupon hors limites");
  return voucherId.toString();
}

/** A QR text or a typed code: which one, read. */
export function readCode(input) {
  if (typeof input !== "string" || input.trim() === "") throw malformed("le code est vide");
  if (input.trim().toUpperCase().startsWith(TEXT_PREFIX)) {
    return { kind: "text", voucher: parseText(input) };
  }
  return { kind: "typed", voucherId: parseTypedCode(input) };
}
