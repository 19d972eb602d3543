//! Speed of the printable book (`src/render/book_pdf.rs`): a whole book of 10
//! coupons, cover and coupon pages, with its two fonts subset and embedded.
//!
//!     cargo bench --bench book_pdf
//!
//! The aim is under 30 ms per book. `book_pdf/qr_encode_10`, the QR encoding
//! of the same ten codes, is the part of the work the PDF cannot avoid; the
//! rest is layout, font subsetting and compression.

use std::hint::black_box;
use std::time::Duration;

use chrono::NaiveDate;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use ed25519_dalek::SigningKey;
use passnum::render::book_pdf::{render, BookPdf, PdfCoupon, PdfVenue, PrivacyNotice};
use passnum::render::QrCode;
use passnum::voucher::VoucherBody;

const VENUES: [PdfVenue<'static>; 5] = [
    PdfVenue {
        name: "Médiathèque Flora Tristan",
        address: "8 rue Sainte-Hélène",
        postcode: "33000",
        commune: "Bordeaux",
        phone: Some("05 56 10 20 30"),
        distance_km: Some(1.24),
    },
    PdfVenue {
        name: "France services de Bègles",
        address: "Place du 14 Juillet",
        postcode: "33130",
        commune: "Bègles",
        phone: Some("05 56 49 88 00"),
        distance_km: Some(3.5),
    },
    PdfVenue {
        name: "Centre social et culturel du Grand Parc",
        address: "36 rue Robert Schuman, bâtiment B, 2e étage",
        postcode: "33300",
        commune: "Bordeaux",
        phone: None,
        distance_km: Some(4.0),
    },
    PdfVenue {
        name: "Association Les Écrans Partagés",
        address: "12 avenue Thiers",
        postcode: "33100",
        commune: "Bordeaux",
        phone: Some("06 12 34 56 78"),
        distance_km: Some(5.75),
    },
    PdfVenue {
        name: "Espace numérique de Mérignac",
        address: "Rue de la Liberté",
        postcode: "33700",
        commune: "Mérignac",
        phone: Some("05 57 00 11 22"),
        distance_km: Some(11.2),
    },
];

fn benches(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let expires_on = NaiveDate::from_ymd_opt(2027, 3, 31).expect("valid date");
    let codes: Vec<(u8, String, String)> = (1..=10u8)
        .map(|position| {
            let voucher = VoucherBody {
                kid: 1,
                voucher_id: 1_283_650_000 + 7_919 * u64::from(position),
                program_id: 42,
                expires_on,
                position,
                book_size: 10,
            }
            .sign(&key)
            .expect("valid body");
            (position, voucher.to_text(), voucher.typed_code())
        })
        .collect();
    let coupons: Vec<PdfCoupon> = codes
        .iter()
        .map(|(position, code, typed_code)| PdfCoupon {
            position: *position,
            code,
            typed_code,
        })
        .collect();
    let book = BookPdf {
        program_name: "Pass numérique Gironde 2026",
        funder_name: "Département de la Gironde",
        issuer_name: "CCAS de Bordeaux",
        issuer_phone: Some("05 56 00 11 22"),
        issued_on: NaiveDate::from_ymd_opt(2026, 4, 1).expect("valid date"),
        expires_on,
        reference: "CCAS-2026-00417",
        venues: &VENUES,
        coupons: &coupons,
        book_size: 10,
        privacy: PrivacyNotice {
            controller: "Association Pass Numérique Ouvert",
            contact: "dpo@passnum.example.org",
            retention: "3 ans après la fin du programme",
        },
        page_link: None,
    };
    let size = render(&book).expect("the book renders").len();
    eprintln!("book of 10: {size} bytes");

    let mut group = c.benchmark_group("book_pdf");
    group.throughput(Throughput::Elements(1));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("render_10", |b| b.iter(|| render(black_box(&book))));
    group.bench_function("qr_encode_10", |b| {
        b.iter(|| {
            codes
                .iter()
                .map(|(_, code, _)| QrCode::new(black_box(code)))
                .collect::<Result<Vec<_>, _>>()
        })
    });
    group.finish();
}

criterion_group! {
    name = book_pdf;
    // Modest times: the whole run stays well under a minute on two cores.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    targets = benches
}
criterion_main!(book_pdf);
