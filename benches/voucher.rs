//! Voucher format speed, next to its physical limit measured in the same run:
//! raw Ed25519 signing and strict verification of an 18-byte message.
//!
//!     cargo bench --bench voucher
//!
//! Compare `voucher/sign` with `ed25519/sign` and `voucher/decode_and_verify`
//! with `ed25519/verify_strict`: the format's own work (Base45, field checks)
//! should cost little beside the curve arithmetic.

use std::hint::black_box;

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::{Signature, Signer, SigningKey};
use passnum::voucher::{decode_and_verify, typed_code, SignedVoucher, VoucherBody};

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

    let raw_message = *signed.body_bytes();
    let raw_signature: Signature = key.sign(&raw_message);

    let mut group = c.benchmark_group("ed25519");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| b.iter(|| key.sign(black_box(&raw_message))));
    group.bench_function("verify_strict", |b| {
        b.iter(|| public.verify_strict(black_box(&raw_message), black_box(&raw_signature)))
    });
    group.finish();

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
}

criterion_group!(voucher, benches);
criterion_main!(voucher);
