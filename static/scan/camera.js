// Reading QR codes: the browser's BarcodeDetector where it reads QR codes,
// else the vendored barcode-detector polyfill (ZXing in WebAssembly, served
// from this site, never from a CDN).

let detecting;

/** A BarcodeDetector for QR codes, native first. */
export function qrDetector() {
  detecting ??= (async () => {
    if ("BarcodeDetector" in globalThis) {
      try {
        if ((await globalThis.BarcodeDetector.getSupportedFormats()).includes("qr_code")) {
          return new globalThis.BarcodeDetector({ formats: ["qr_code"] });
        }
      } catch {
        // Declared but unusable: take the polyfill.
      }
    }
    const polyfill = await import("../vendor/barcode-detector/ponyfill.js");
    const wasm = new URL("../vendor/zxing-wasm/zxing_reader.wasm", import.meta.url).href;
    polyfill.setZXingModuleOverrides({ locateFile: (path, prefix) => (path.endsWith(".wasm") ? wasm : prefix + path) });
    return new polyfill.BarcodeDetector({ formats: ["qr_code"] });
  })();
  return detecting;
}

/** The text of the first QR code in an image, video frame or photo, or null. */
export async function readQr(source) {
  const found = await (await qrDetector()).detect(source);
  return found.find((code) => code.rawValue)?.rawValue ?? null;
}

/** The text of the QR code in a photo file, or null. */
export async function readPhoto(file) {
  const bitmap = await createImageBitmap(file);
  try {
    return await readQr(bitmap);
  } finally {
    bitmap.close();
  }
}

/**
 * Films with the back camera into `video` and calls `onCode(text)` for each
 * QR code seen, until the returned `stop()` is called.
 */
export async function film(video, onCode) {
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { facingMode: { ideal: "environment" } },
    audio: false,
  });
  video.srcObject = stream;
  await video.play();
  let running = true;
  const look = async () => {
    if (!running) return;
    try {
      if (video.readyState >= video.HAVE_CURRENT_DATA) {
        const text = await readQr(video);
        if (text && running) await onCode(text);
      }
    } finally {
      // A few looks a second are plenty and spare the battery.
      if (running) setTimeout(look, 250);
    }
  };
  look();
  return () => {
    running = false;
    for (const track of stream.getTracks()) track.stop();
    video.srcObject = null;
  };
}
