//! Voucher format speed, next to its physical limit measured in the same run:
//! raw Ed25519 signing and strict verification of the exact message a voucher
//! signature covers (`signed_message`, 37 bytes).
//!
//!     cargo bench --bench voucher
//!
//! (`./scripts/bench voucher` runs it and writes the figures, as ratios to the
//! raw Ed25519 ones, into docs/benchmarks.md.)
//!
//! Compare `voucher/sign` with `ed25519/sign` and `voucher/decode_and_verify`
//! with `ed25519/verify_strict`: the format's own work (Base45, field checks)
//! should cost little beside the curve arithmetic. The `qr` group renders a
//! voucher's text as the QR code printed in the book (level Q, version 8):
//! encoding the symbol, then PNG at 8 pixels per module or SVG.
//!
//! The limits are measured first (`ed25519/…`) and again last
//! (`ed25519_again/…`): on a shared machine, a difference between the two
//! shows the run was disturbed.

use std::hint::black_box;
use std::time::Duration;

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use ed25519_dalek::{Signature, Signer, SigningKey};
use passnum::render::QrCode;
use passnum::voucher::{decode_and_verify, signed_message, typed_code, SignedVoucher, VoucherBody};

fn body() -> VoucherBody {
    VoucherBody {
        kid: 1,
        voucher_id: 6_148_914_691_236_517_205,
        program_id: 42,
        expires_on: NaiveDate::from_ymd_opt(2026, 12, 31).expect("valid date"),
        position: 4,
        book_size: 10,
    }
}

fn benches(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public = key.verifying_key();
    let body = body();
    let signed = body.sign(&key).expect("valid body");
    let text = signed.to_text();
    let code = signed.typed_code();

    let raw_message = signed_message(signed.body_bytes());
    let raw_signature: Signature = key.sign(&raw_message);
    // Same work on both sides, and every verification below takes the
    // success path.
    assert_eq!(&raw_signature.to_bytes(), signed.signature());
    public
        .verify_strict(&raw_message, &raw_signature)
        .expect("the raw signature verifies");
    decode_and_verify(&text, |_| Some(public)).expect("the voucher verifies");
    let limits = |c: &mut Criterion, name: &str| {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(1));
        group.bench_function("sign", |b| b.iter(|| key.sign(black_box(&raw_message))));
        group.bench_function("verify_strict", |b| {
            b.iter(|| public.verify_strict(black_box(&raw_message), black_box(&raw_signature)))
        });
        group.finish();
    };

    limits(c, "ed25519");

    let mut group = c.benchmark_group("voucher");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| b.iter(|| black_box(&body).sign(&key)));
    group.bench_function("verify", |b| b.iter(|| black_box(&signed).verify(&public)));
    group.bench_function("decode_and_verify", |b| {
        b.iter(|| decode_and_verify(black_box(&text), |_| Some(public)))
    });
    group.bench_function("to_text", |b| b.iter(|| black_box(&signed).to_text()));
    group.bench_function("parse", |b| {
        b.iter(|| SignedVoucher::parse(black_box(&text)))
    });
    group.bench_function("typed_code_encode", |b| {
        b.iter(|| typed_code::encode(black_box(body.voucher_id)))
    });
    group.bench_function("typed_code_decode", |b| {
        b.iter(|| typed_code::decode(black_box(&code)))
    });
    group.finish();

    let qr = QrCode::new(&text).expect("a voucher's text fits a QR code");
    let mut group = c.benchmark_group("qr");
    group.throughput(Throughput::Elements(1));
    // Rendering takes microseconds to milliseconds: flat sampling keeps the
    // run within its measurement time.
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("encode", |b| b.iter(|| QrCode::new(black_box(&text))));
    group.bench_function("to_png_8px", |b| {
        b.iter(|| black_box(&qr).to_png(black_box(8)))
    });
    group.bench_function("to_svg", |b| b.iter(|| black_box(&qr).to_svg(None)));
    group.bench_function("text_to_png_8px", |b| {
        b.iter(|| QrCode::new(black_box(&text)).and_then(|qr| qr.to_png(8)))
    });
    group.bench_function("text_to_svg", |b| {
        b.iter(|| QrCode::new(black_box(&text)).map(|qr| qr.to_svg(None)))
    });
    group.finish();

    limits(c, "ed25519_again");
}

criterion_group! {
    name = voucher;
    // Modest times: the whole run stays near a minute on two cores.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(voucher);
