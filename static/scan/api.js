// The JSON API as the phone calls it: with its device token, and telling a
// refusal (a problem+json answer) from a network that is not there.

import { getSetting } from "./store.js";

/** The server answered with a problem: `problem` is its slug, `body` all of it. */
export class Problem extends Error {
  constructor(status, body) {
    super(body?.detail ?? body?.title ?? `HTTP ${status}`);
    this.status = status;
    this.body = body ?? {};
    this.problem = (this.body.type ?? "").replace("/problems/", "") || `http-${status}`;
  }
}

/** The network or the server could not be reached: the scan can wait. */
export class Offline extends Error {}

export async function call(method, path, body, headers = {}) {
  const token = await getSetting("deviceToken");
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: {
        accept: "application/json",
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...headers,
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (error) {
    throw new Offline(error.message);
  }
  // A proxy or a restarting server is as good as no network: try later.
  if ([502, 503, 504].includes(response.status)) throw new Offline(`HTTP ${response.status}`);
  const json = response.headers.get("content-type")?.includes("json") ? await response.json() : undefined;
  if (!response.ok) throw new Problem(response.status, json);
  return json;
}

export const check = (code) => call("POST", "/api/v1/vouchers/check", { code });

export const redeem = (code, workshop, idempotencyKey) =>
  call("POST", "/api/v1/redemptions", { code, workshop }, { "idempotency-key": idempotencyKey });

export const sync = (since) => call("GET", `/api/v1/sync${since ? `?since=${encodeURIComponent(since)}` : ""}`);

export const batch = (items) => call("POST", "/api/v1/redemptions/batch", { items });

export async function jwks() {
  let response;
  try {
    response = await fetch("/.well-known/jwks.json", { cache: "no-store" });
  } catch (error) {
    throw new Offline(error.message);
  }
  if (!response.ok) throw new Offline(`HTTP ${response.status}`);
  return response.json();
}
