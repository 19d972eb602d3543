//! The printable pass numérique book: one A4 PDF with a cover page and the
//! vouchers laid out for cutting, three to a page.
//!
//! The people who receive a book are often not at ease with reading or with
//! screens, so everything printed follows the "facile à lire et à comprendre"
//! habits: plain French, short sentences, one idea per line, body text of at
//! least 14 pt (the data-protection notice, read by few, is 12 pt).
//!
//! - Page 1, the cover: what the book is, how to use it in three numbered
//!   steps, until when, who pays and who handed it out, the nearest venues,
//!   and the issuer's file number in small print.
//! - Then the coupons, three per page, each in a strip of one third of the
//!   page with dashed cut lines between strips: "Atelier n / N", the QR code
//!   (42 mm wide with its quiet zone, drawn as vector rectangles), the typed
//!   code, the last valid day and the programme.
//! - The data-protection notice fills the first free strip after the last
//!   coupon (or a page of its own when the last page is full).
//!
//! Rendering is pure: no I/O, no clock, no font lookup. The DejaVu Sans fonts
//! are compiled in (`assets/fonts/`, licence beside them) and each PDF embeds
//! a subset of the glyphs it uses. Text is laid out glyph by glyph from the
//! font's own `cmap` and `hmtx` tables, so that measuring (for wrapping and
//! alignment) and drawing always agree; there is no kerning.

use std::ops::Range;
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::metadata::{DateTime, Metadata};
use krilla::num::NormalizedF32;
use krilla::page::PageSettings;
use krilla::paint::{Fill, FillRule, LineCap, LineJoin, Paint, Stroke, StrokeDash};
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};
use krilla::Document;

use crate::render::{QrCode, QrError, QUIET_ZONE_MODULES};

/// Everything printed in one book. All the data comes in; nothing is looked up.
#[derive(Debug, Clone)]
pub struct BookPdf<'a> {
    /// The funding programme's name, printed on the cover and every coupon.
    pub program_name: &'a str,
    /// Who pays for the workshops ("Offert par …").
    pub funder_name: &'a str,
    /// The social service that handed the book out ("Remis par …").
    pub issuer_name: &'a str,
    /// The day the book was issued (also the PDF's creation date).
    pub issued_on: NaiveDate,
    /// The last valid day, inclusive.
    pub expires_on: NaiveDate,
    /// The issuer's own file number, in small print for its records.
    pub reference: &'a str,
    /// The nearest accredited venues, nearest first, at most [`MAX_VENUES`].
    pub venues: &'a [PdfVenue<'a>],
    /// The book's vouchers: all of them (5 or 10) for a new book, the
    /// replaced positions only for a replacement book. Any order; printed by
    /// position.
    pub coupons: &'a [PdfCoupon<'a>],
    /// 5 or 10: the `N` of "Atelier n / N".
    pub book_size: u8,
    /// Who holds the data, how to reach them, how long data is kept.
    pub privacy: PrivacyNotice<'a>,
}

/// One venue listed on the cover.
#[derive(Debug, Clone, Copy)]
pub struct PdfVenue<'a> {
    pub name: &'a str,
    /// Street address (number and street, building).
    pub address: &'a str,
    pub postcode: &'a str,
    pub commune: &'a str,
    pub phone: Option<&'a str>,
    /// Distance from the beneficiary's commune, printed as "à 1,2 km".
    pub distance_km: Option<f64>,
}

/// One voucher of the book.
#[derive(Debug, Clone, Copy)]
pub struct PdfCoupon<'a> {
    /// Place in the book, `1..=book_size`.
    pub position: u8,
    /// The voucher's text form (`PN1:…`), encoded in the QR code.
    pub code: &'a str,
    /// The typed code (`XXXX-XXXX-XXXX-XX`) printed under the QR code.
    pub typed_code: &'a str,
}

/// The data-protection notice (RGPD article 13) printed in the book.
#[derive(Debug, Clone, Copy)]
pub struct PrivacyNotice<'a> {
    /// Who is responsible for the data (the operator's name).
    pub controller: &'a str,
    /// Where to write to exercise one's rights (postal or e-mail address).
    pub contact: &'a str,
    /// How long data is kept, as a phrase: "3 ans après la fin du programme".
    pub retention: &'a str,
}

/// Most venues the cover lists.
pub const MAX_VENUES: usize = 5;

/// Why a book could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BookPdfError {
    /// The book size is not one of the sizes a funder can order.
    #[error("a book holds 5 or 10 vouchers, not {0}")]
    BookSize(u8),
    /// No coupon to print.
    #[error("a book needs at least one coupon")]
    NoCoupons,
    /// More coupons than places in the book.
    #[error("{coupons} coupons do not fit in a book of {book_size}")]
    TooManyCoupons { coupons: usize, book_size: u8 },
    /// A coupon's position is outside the book.
    #[error("coupon position {position} is outside 1..={book_size}")]
    Position { position: u8, book_size: u8 },
    /// Two coupons claim the same position.
    #[error("two coupons have position {0}")]
    DuplicatePosition(u8),
    /// More venues than the cover has room for.
    #[error("at most {MAX_VENUES} venues fit on the cover, {0} were given")]
    TooManyVenues(usize),
    /// A coupon's code could not be made into a QR code.
    #[error("QR code of coupon {position}: {source}")]
    Qr {
        position: u8,
        #[source]
        source: QrError,
    },
    /// The compiled-in font could not be read (a build problem, not an input one).
    #[error("the embedded font could not be read")]
    Font,
    /// The PDF writer failed.
    #[error("PDF writing failed: {0}")]
    Pdf(String),
}

/// Renders the book as a PDF document (A4, portrait).
pub fn render(book: &BookPdf) -> Result<Vec<u8>, BookPdfError> {
    let coupons = checked_coupons(book)?;
    if book.venues.len() > MAX_VENUES {
        return Err(BookPdfError::TooManyVenues(book.venues.len()));
    }
    let qr_codes = coupons
        .iter()
        .map(|coupon| {
            QrCode::new(coupon.code).map_err(|source| BookPdfError::Qr {
                position: coupon.position,
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let fonts = fonts().ok_or(BookPdfError::Font)?;

    let mut document = Document::new();
    document.set_metadata(metadata(book, coupons.len()));
    let page_settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| BookPdfError::Pdf("invalid page size".into()))?;

    {
        let mut page = document.start_page_with(page_settings.clone());
        let mut surface = page.surface();
        Canvas::new(&mut surface, fonts).cover(book, coupons.len());
        surface.finish();
        page.finish();
    }

    // Strips on the coupon pages: every coupon, then the notice.
    let strips: Vec<Strip> = coupons
        .iter()
        .zip(&qr_codes)
        .map(|(coupon, qr)| Strip::Coupon(coupon, qr))
        .chain(std::iter::once(Strip::Privacy))
        .collect();
    for page_strips in strips.chunks(STRIPS_PER_PAGE) {
        let mut page = document.start_page_with(page_settings.clone());
        let mut surface = page.surface();
        let mut canvas = Canvas::new(&mut surface, fonts);
        for (slot, strip) in page_strips.iter().enumerate() {
            let top = slot as f32 * STRIP_H;
            match strip {
                Strip::Coupon(coupon, qr) => {
                    canvas.coupon(book, coupon, qr, top);
                    if slot + 1 < page_strips.len() {
                        canvas.cut_line(top + STRIP_H);
                    }
                }
                // The notice takes what is left of the page.
                Strip::Privacy => canvas.privacy(book, top),
            }
        }
        surface.finish();
        page.finish();
    }

    document
        .finish()
        .map_err(|error| BookPdfError::Pdf(error.to_string()))
}

/// The coupons sorted by position, after checking the book's shape.
fn checked_coupons<'b>(book: &'b BookPdf) -> Result<Vec<&'b PdfCoupon<'b>>, BookPdfError> {
    if !crate::voucher::BOOK_SIZES.contains(&book.book_size) {
        return Err(BookPdfError::BookSize(book.book_size));
    }
    if book.coupons.is_empty() {
        return Err(BookPdfError::NoCoupons);
    }
    if book.coupons.len() > usize::from(book.book_size) {
        return Err(BookPdfError::TooManyCoupons {
            coupons: book.coupons.len(),
            book_size: book.book_size,
        });
    }
    let mut coupons: Vec<&PdfCoupon> = book.coupons.iter().collect();
    coupons.sort_by_key(|coupon| coupon.position);
    for (i, coupon) in coupons.iter().enumerate() {
        if coupon.position == 0 || coupon.position > book.book_size {
            return Err(BookPdfError::Position {
                position: coupon.position,
                book_size: book.book_size,
            });
        }
        if i > 0 && coupons[i - 1].position == coupon.position {
            return Err(BookPdfError::DuplicatePosition(coupon.position));
        }
    }
    Ok(coupons)
}

fn metadata(book: &BookPdf, coupons: usize) -> Metadata {
    let issued = book.issued_on;
    let mut creation_date = DateTime::new(u16::try_from(issued.year()).unwrap_or(2000));
    // Month and day always fit a u8.
    if let (Ok(month), Ok(day)) = (u8::try_from(issued.month()), u8::try_from(issued.day())) {
        creation_date = creation_date.month(month).day(day);
    }
    Metadata::new()
        .title(format!(
            "Pass numérique : carnet de {coupons} {}",
            plural(coupons, "atelier", "ateliers")
        ))
        .description(format!(
            "{} – valable jusqu’au {}",
            clean(book.program_name),
            french_date(book.expires_on)
        ))
        .language("fr-FR".into())
        .authors(vec![clean(book.issuer_name)])
        .creator("passnum".into())
        .creation_date(creation_date)
}

// ---------------------------------------------------------------------------
// Page geometry (PDF points, origin at the top left, y downwards)

/// A4 portrait, 210 x 297 mm.
const PAGE_W: f32 = 595.276;
const PAGE_H: f32 = 841.89;
const MM: f32 = 72.0 / 25.4;
/// Left and right margin of every page, and top and bottom of the cover.
const MARGIN: f32 = 42.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;

const STRIPS_PER_PAGE: usize = 3;
const STRIP_H: f32 = PAGE_H / STRIPS_PER_PAGE as f32;
/// Space between a cut line and the coupon's box.
const STRIP_GAP: f32 = 20.0;
/// Width of the QR code with its quiet zone: 42 mm (the minimum is 30 mm).
const QR_SIDE: f32 = 42.0 * MM;

// Type sizes, in points.
const TITLE: f32 = 30.0;
const HEADING: f32 = 20.0;
const LEAD: f32 = 16.0;
const BODY: f32 = 15.0;
const COUPON_BODY: f32 = 14.0;
const NOTICE: f32 = 12.0;
const SMALL: f32 = 10.0;

const BLACK: (u8, u8, u8) = (0, 0, 0);
const WHITE: (u8, u8, u8) = (255, 255, 255);
/// Headings and accents: dark blue, 10:1 contrast on white.
const BLUE: (u8, u8, u8) = (0, 61, 122);
/// Light tint behind highlighted text, still black-on-light for contrast.
const TINT: (u8, u8, u8) = (225, 236, 248);
const GREY: (u8, u8, u8) = (90, 90, 90);

enum Strip<'b> {
    Coupon(&'b PdfCoupon<'b>, &'b QrCode),
    Privacy,
}

// ---------------------------------------------------------------------------
// The pages

struct Canvas<'s, 'p> {
    surface: &'s mut Surface<'p>,
    regular: &'static Face,
    bold: &'static Face,
}

impl<'s, 'p> Canvas<'s, 'p> {
    fn new(surface: &'s mut Surface<'p>, fonts: &'static Fonts) -> Self {
        Canvas {
            surface,
            regular: &fonts.regular,
            bold: &fonts.bold,
        }
    }

    /// Page 1: what it is, how to use it, until when, who pays, where to go.
    fn cover(&mut self, book: &BookPdf, coupons: usize) {
        let left = MARGIN;
        let mut y = MARGIN + TITLE;
        self.text(self.bold, TITLE, BLUE, left, y, "Votre pass numérique");
        y += 24.0;
        y = self.paragraph(self.regular, LEAD, 21.0, BLACK, left, y, CONTENT_W, 2, &clean(book.program_name));
        y -= 21.0 - 12.0;
        self.rule(left, y, CONTENT_W, 1.5, BLUE);
        y += 30.0;

        let workshops = plural(coupons, "atelier gratuit", "ateliers gratuits");
        y = self.paragraph(
            self.bold,
            LEAD,
            23.0,
            BLACK,
            left,
            y,
            CONTENT_W,
            2,
            &format!("Ce carnet vous donne droit à {coupons} {workshops}."),
        );
        y = self.paragraph(
            self.regular,
            LEAD,
            23.0,
            BLACK,
            left,
            y,
            CONTENT_W,
            3,
            "Dans ces ateliers, on vous aide à utiliser un ordinateur, un téléphone ou internet.",
        );

        // Until when, in a tinted box.
        y += 2.0;
        let box_h = 36.0;
        self.rect(left, y - 8.0, CONTENT_W, box_h, Some(TINT), Some((BLUE, 1.0)));
        let valid = format!("Valable jusqu’au {}", french_date(book.expires_on));
        self.text(self.bold, 18.0, BLACK, left + 14.0, y - 8.0 + 24.5, &valid);
        y += box_h + 26.0;

        // How to use it.
        self.text(self.bold, HEADING, BLUE, left, y, "Comment faire ?");
        y += 30.0;
        let steps = [
            "Choisissez un lieu dans la liste ci-dessous.",
            "Appelez ce lieu ou allez-y pour prendre rendez-vous.",
            "À chaque atelier, donnez un coupon de ce carnet.",
        ];
        for (number, step) in (1..).zip(steps) {
            self.step_number(left + 11.0, y - 5.5, number);
            y = self.paragraph(self.regular, LEAD, 21.0, BLACK, left + 32.0, y, CONTENT_W - 32.0, 2, step);
            y += 6.0;
        }
        self.text(self.bold, LEAD, BLACK, left + 32.0, y, "Un coupon = un atelier. C’est gratuit.");
        y += 30.0;

        let funder = format!("Offert par {}.", clean(book.funder_name));
        y = self.paragraph(self.regular, BODY, 20.0, BLACK, left, y, CONTENT_W, 2, &funder);
        let issuer = format!("Remis par {}.", clean(book.issuer_name));
        y = self.paragraph(self.regular, BODY, 20.0, BLACK, left, y, CONTENT_W, 2, &issuer);
        y += 14.0;

        // Where to go.
        self.text(self.bold, HEADING, BLUE, left, y, "Les lieux près de chez vous");
        y += 28.0;
        let footer_top = PAGE_H - MARGIN - 16.0;
        self.venues(book, y, footer_top);

        // Small print.
        let baseline = PAGE_H - MARGIN + 6.0;
        self.rule(left, baseline - 16.0, CONTENT_W, 0.5, GREY);
        let reference = fit(self.regular, SMALL, &format!("Dossier : {}", clean(book.reference)), CONTENT_W / 2.0);
        self.text(self.regular, SMALL, BLACK, left, baseline, &reference);
        let data = "Vos données personnelles : voir la dernière page.";
        let width = self.regular.width(SMALL, data);
        self.text(self.regular, SMALL, BLACK, PAGE_W - MARGIN - width, baseline, data);
    }

    /// The venue list, from baseline `y`, as many as fit above `bottom`.
    fn venues(&mut self, book: &BookPdf, mut y: f32, bottom: f32) {
        let ask = format!(
            "Vous ne savez pas où aller ? Demandez à {}.",
            clean(book.issuer_name)
        );
        if book.venues.is_empty() {
            self.paragraph(
                self.regular,
                BODY,
                20.0,
                BLACK,
                MARGIN,
                y,
                CONTENT_W,
                2,
                "Demandez à la personne qui vous a donné ce carnet où aller.",
            );
            return;
        }
        let blocks: Vec<VenueBlock> = book
            .venues
            .iter()
            .map(|venue| VenueBlock::layout(venue, self.regular, self.bold))
            .collect();
        // Room for one line saying some venues were left out.
        let more_h = 20.0;
        for (i, block) in blocks.iter().enumerate() {
            let is_last = i + 1 == blocks.len();
            let needed = block.height() + if is_last { 0.0 } else { more_h };
            if y - BODY + needed > bottom {
                self.paragraph(
                    self.regular,
                    COUPON_BODY,
                    18.0,
                    BLACK,
                    MARGIN,
                    y,
                    CONTENT_W,
                    1,
                    &format!("D’autres lieux existent. Demandez à {}.", clean(book.issuer_name)),
                );
                return;
            }
            y = self.venue(block, y);
        }
        // If the list leaves room, the way to find more.
        if y - BODY + 20.0 <= bottom {
            self.paragraph(self.regular, COUPON_BODY, 18.0, BLACK, MARGIN, y, CONTENT_W, 1, &ask);
        }
    }

    fn venue(&mut self, block: &VenueBlock, mut y: f32) -> f32 {
        let text_left = MARGIN + 14.0;
        let top = y - BODY;
        // A bar on the left groups the lines of one venue.
        self.rect(MARGIN, top + 1.0, 4.0, block.height() - VENUE_GAP - 2.0, Some(BLUE), None);
        for line in &block.name {
            self.text(self.bold, BODY, BLACK, text_left, y, line);
            y += VENUE_LINE;
        }
        if let Some(distance) = &block.distance {
            let width = self.bold.width(BODY, distance);
            self.text(self.bold, BODY, BLUE, PAGE_W - MARGIN - width, top + BODY, distance);
        }
        for line in block.address.iter().chain(&block.phone) {
            self.text(self.regular, COUPON_BODY, BLACK, text_left, y, line);
            y += VENUE_LINE;
        }
        y + VENUE_GAP
    }

    /// One coupon in the strip whose top edge is at `top`.
    fn coupon(&mut self, book: &BookPdf, coupon: &PdfCoupon, qr: &QrCode, top: f32) {
        let left = MARGIN;
        let width = CONTENT_W;
        let box_top = top + STRIP_GAP;
        let box_h = STRIP_H - 2.0 * STRIP_GAP;
        let band_h = 46.0;
        self.rect(left, box_top, width, band_h, Some(TINT), None);
        self.rect(left, box_top, width, box_h, None, Some((BLUE, 1.5)));

        // Band: which workshop, and the programme.
        let title = format!("Atelier {} / {}", coupon.position, book.book_size);
        self.text(self.bold, 26.0, BLUE, left + 16.0, box_top + 33.0, &title);
        let title_w = self.bold.width(26.0, &title);
        let program_room = width - title_w - 48.0;
        let program = fit(self.regular, COUPON_BODY, &clean(book.program_name), program_room);
        let program_w = self.regular.width(COUPON_BODY, &program);
        self.text(self.regular, COUPON_BODY, BLACK, left + width - 16.0 - program_w, box_top + 29.0, &program);

        // The QR code, left, centred in the space under the band.
        let body_top = box_top + band_h;
        let body_h = box_h - band_h;
        let qr_top = body_top + (body_h - QR_SIDE) / 2.0;
        self.qr(qr, left + 10.0, qr_top, QR_SIDE);

        // The text, right of the QR code.
        let x = left + 10.0 + QR_SIDE + 14.0;
        let room = left + width - 14.0 - x;
        let mut y = body_top + 30.0;
        self.text(self.regular, COUPON_BODY, BLACK, x, y, "Code à saisir si le scan ne marche pas :");
        y += 30.0;
        let code = fit(self.bold, 24.0, &clean(coupon.typed_code), room);
        self.text(self.bold, 24.0, BLACK, x, y, &code);
        y += 36.0;
        let valid = format!("Valable jusqu’au {}", french_date(book.expires_on));
        self.text(self.bold, 16.0, BLACK, x, y, &valid);
        y += 28.0;
        self.text(self.regular, COUPON_BODY, BLACK, x, y, "Un coupon = un atelier.");
        y += 20.0;
        self.text(self.regular, COUPON_BODY, BLACK, x, y, "Gardez-le jusqu’au jour de l’atelier.");
    }

    /// A dashed line across the page at `y`, with scissors and a word.
    fn cut_line(&mut self, y: f32) {
        let stroke = Stroke {
            paint: color(GREY),
            width: 0.8,
            dash: Some(StrokeDash {
                array: vec![6.0, 4.0],
                offset: 0.0,
            }),
            line_cap: LineCap::Butt,
            ..Stroke::default()
        };
        let label = "✂ découper ici";
        let label_left = MARGIN + 20.0;
        let label_w = self.regular.width(SMALL, label);
        let mut path = PathBuilder::new();
        path.move_to(12.0, y);
        path.line_to(label_left - 6.0, y);
        path.move_to(label_left + label_w + 6.0, y);
        path.line_to(PAGE_W - 12.0, y);
        if let Some(path) = path.finish() {
            self.surface.set_fill(None);
            self.surface.set_stroke(Some(stroke));
            self.surface.draw_path(&path);
            self.surface.set_stroke(None);
        }
        self.text(self.regular, SMALL, GREY, label_left, y + 3.5, label);
    }

    /// The data-protection notice, from the strip at `top` to the page's end.
    fn privacy(&mut self, book: &BookPdf, top: f32) {
        let left = MARGIN;
        let notice = &book.privacy;
        let mut y = top + STRIP_GAP + HEADING;
        self.text(self.bold, 16.0, BLUE, left, y, "Vos données personnelles");
        y += 24.0;
        let lines = [
            format!("Qui s’occupe de vos données ? {}.", clean(notice.controller)),
            "Votre nom n’est jamais enregistré.".to_owned(),
            "Nous gardons seulement : un numéro de dossier, votre code postal, \
             votre courriel si vous l’avez donné, et les ateliers utilisés."
                .to_owned(),
            "Pourquoi ? Pour payer les ateliers aux lieux et suivre le pass numérique.".to_owned(),
            format!("Combien de temps ? {}.", clean(notice.retention)),
            "Vos droits : voir vos données (droit d’accès), les corriger (rectification), \
             les faire effacer (effacement)."
                .to_owned(),
            format!("Pour cela, écrivez à : {}.", clean(notice.contact)),
            "Vous pouvez aussi faire une réclamation auprès de la CNIL : www.cnil.fr.".to_owned(),
        ];
        for line in &lines {
            y = self.paragraph(self.regular, NOTICE, 16.0, BLACK, left, y, CONTENT_W, 3, line);
            y += 3.0;
        }
    }

    // --- drawing primitives ------------------------------------------------

    /// Draws wrapped text from baseline `y`; returns the next line's baseline.
    #[allow(clippy::too_many_arguments)]
    fn paragraph(
        &mut self,
        face: &Face,
        size: f32,
        line_height: f32,
        rgb: (u8, u8, u8),
        x: f32,
        mut y: f32,
        width: f32,
        max_lines: usize,
        text: &str,
    ) -> f32 {
        for line in wrap(face, size, text, width, max_lines) {
            self.text(face, size, rgb, x, y, &line);
            y += line_height;
        }
        y
    }

    /// Draws one line of text with its baseline starting at (`x`, `y`).
    fn text(&mut self, face: &Face, size: f32, rgb: (u8, u8, u8), x: f32, y: f32, text: &str) {
        if text.is_empty() {
            return;
        }
        let glyphs = face.shape(text);
        self.surface.set_stroke(None);
        self.surface.set_fill(Some(fill(rgb)));
        self.surface
            .draw_glyphs(Point::from_xy(x, y), &glyphs, face.font.clone(), text, size, false);
    }

    fn rect(
        &mut self,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill_rgb: Option<(u8, u8, u8)>,
        stroke: Option<((u8, u8, u8), f32)>,
    ) {
        let Some(rect) = Rect::from_xywh(x, y, w, h) else {
            return;
        };
        let mut path = PathBuilder::new();
        path.push_rect(rect);
        let Some(path) = path.finish() else {
            return;
        };
        self.surface.set_fill(fill_rgb.map(fill));
        self.surface.set_stroke(stroke.map(|(rgb, width)| Stroke {
            paint: color(rgb),
            width,
            line_join: LineJoin::Miter,
            ..Stroke::default()
        }));
        self.surface.draw_path(&path);
        self.surface.set_stroke(None);
    }

    fn rule(&mut self, x: f32, y: f32, w: f32, thickness: f32, rgb: (u8, u8, u8)) {
        self.rect(x, y - thickness / 2.0, w, thickness, Some(rgb), None);
    }

    /// A step number: white digits in a blue disc centred on (`cx`, `cy`).
    fn step_number(&mut self, cx: f32, cy: f32, number: u32) {
        let r = 11.0;
        // Four cubic Béziers approximate the circle.
        let k = 0.552_284_8 * r;
        let mut path = PathBuilder::new();
        path.move_to(cx + r, cy);
        path.cubic_to(cx + r, cy + k, cx + k, cy + r, cx, cy + r);
        path.cubic_to(cx - k, cy + r, cx - r, cy + k, cx - r, cy);
        path.cubic_to(cx - r, cy - k, cx - k, cy - r, cx, cy - r);
        path.cubic_to(cx + k, cy - r, cx + r, cy - k, cx + r, cy);
        path.close();
        if let Some(path) = path.finish() {
            self.surface.set_stroke(None);
            self.surface.set_fill(Some(fill(BLUE)));
            self.surface.draw_path(&path);
        }
        let digits = number.to_string();
        let width = self.bold.width(14.0, &digits);
        self.text(self.bold, 14.0, WHITE, cx - width / 2.0, cy + 5.0, &digits);
    }

    /// The QR code with its quiet zone in a `side` square at (`x`, `y`):
    /// a white square, then every dark run as a rectangle, in one black path.
    fn qr(&mut self, qr: &QrCode, x: f32, y: f32, side: f32) {
        self.rect(x, y, side, side, Some(WHITE), None);
        let module = side / qr.width_with_quiet_zone() as f32;
        let quiet = QUIET_ZONE_MODULES as f32;
        let mut path = PathBuilder::new();
        for run in qr.dark_runs() {
            if let Some(rect) = Rect::from_xywh(
                x + (run.x as f32 + quiet) * module,
                y + (run.y as f32 + quiet) * module,
                run.len as f32 * module,
                module,
            ) {
                path.push_rect(rect);
            }
        }
        if let Some(path) = path.finish() {
            self.surface.set_stroke(None);
            self.surface.set_fill(Some(fill(BLACK)));
            self.surface.draw_path(&path);
        }
    }
}

const VENUE_LINE: f32 = 19.0;
const VENUE_GAP: f32 = 9.0;

/// A venue's lines, wrapped to the column, measured before drawing.
struct VenueBlock {
    name: Vec<String>,
    distance: Option<String>,
    address: Vec<String>,
    phone: Option<String>,
}

impl VenueBlock {
    fn layout(venue: &PdfVenue, regular: &Face, bold: &Face) -> VenueBlock {
        let text_w = CONTENT_W - 14.0;
        let distance = venue.distance_km.and_then(french_km);
        let distance_w = distance
            .as_deref()
            .map_or(0.0, |d| bold.width(BODY, d) + 12.0);
        let name = wrap(bold, BODY, &clean(venue.name), text_w - distance_w, 2);
        let street = clean(venue.address);
        let town = clean(&format!("{} {}", venue.postcode.trim(), venue.commune.trim()));
        let address_text = match (street.is_empty(), town.is_empty()) {
            (false, false) => format!("{street}, {town}"),
            (false, true) => street,
            (true, _) => town,
        };
        let address = wrap(regular, COUPON_BODY, &address_text, text_w, 2);
        let phone = venue
            .phone
            .map(clean)
            .filter(|phone| !phone.is_empty())
            .map(|phone| fit(regular, COUPON_BODY, &format!("Téléphone : {phone}"), text_w));
        VenueBlock {
            name,
            distance,
            address,
            phone,
        }
    }

    fn height(&self) -> f32 {
        let lines = self.name.len() + self.address.len() + usize::from(self.phone.is_some());
        lines as f32 * VENUE_LINE + VENUE_GAP
    }
}

fn fill(rgb: (u8, u8, u8)) -> Fill {
    Fill {
        paint: color(rgb),
        opacity: NormalizedF32::ONE,
        rule: FillRule::NonZero,
    }
}

fn color((r, g, b): (u8, u8, u8)) -> Paint {
    rgb::Color::new(r, g, b).into()
}

// ---------------------------------------------------------------------------
// French wording

const MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];

/// "31 mars 2027", "1er avril 2027".
fn french_date(date: NaiveDate) -> String {
    let month = MONTHS
        .get(date.month0() as usize)
        .copied()
        .unwrap_or_default();
    let day = date.day();
    if day == 1 {
        format!("1er {month} {}", date.year())
    } else {
        format!("{day} {month} {}", date.year())
    }
}

/// "à 1,2 km" (decimal comma, no-break space before the unit); whole
/// kilometres from 10 km on; nothing for a distance that is not a distance.
fn french_km(km: f64) -> Option<String> {
    if !km.is_finite() || km < 0.0 {
        return None;
    }
    let number = if km < 9.95 {
        format!("{km:.1}").replace('.', ",")
    } else {
        format!("{km:.0}")
    };
    Some(format!("à {number}\u{a0}km"))
}

fn plural<'w>(count: usize, one: &'w str, many: &'w str) -> &'w str {
    if count > 1 {
        many
    } else {
        one
    }
}

/// Text from the outside on one line: control characters and runs of white
/// space become single spaces, ends trimmed (no-break spaces are kept).
fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split(|c: char| c.is_ascii_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

// ---------------------------------------------------------------------------
// Line breaking

/// Breaks `text` into lines no wider than `width` at spaces (a word wider
/// than a line is cut); at most `max_lines`, the last ending in "…" when
/// text was left out.
fn wrap(face: &Face, size: f32, text: &str, width: f32, max_lines: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split(' ').filter(|word| !word.is_empty()) {
        let candidate = if line.is_empty() {
            word.to_owned()
        } else {
            format!("{line} {word}")
        };
        if face.width(size, &candidate) <= width {
            line = candidate;
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
        }
        // The word alone may still be too wide: cut it.
        let mut rest = word;
        while face.width(size, rest) > width {
            let cut = longest_prefix(face, size, rest, width);
            lines.push(rest[..cut].to_owned());
            rest = &rest[cut..];
        }
        line = rest.to_owned();
    }
    if !line.is_empty() {
        lines.push(line);
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            *last = fit(face, size, &format!("{last}…"), width);
            if !last.ends_with('…') {
                last.pop();
                last.push('…');
            }
        }
    }
    lines
}

/// `text`, shortened with "…" if it is wider than `width`.
fn fit(face: &Face, size: f32, text: &str, width: f32) -> String {
    if face.width(size, text) <= width {
        return text.to_owned();
    }
    let room = width - face.width(size, "…");
    let cut = longest_prefix(face, size, text, room);
    format!("{}…", text[..cut].trim_end())
}

/// Byte length of the longest prefix of `text` no wider than `width`; at
/// least one character, so that breaking always moves on.
fn longest_prefix(face: &Face, size: f32, text: &str, width: f32) -> usize {
    let mut used = 0.0;
    let mut end = 0;
    for (i, c) in text.char_indices() {
        used += face.advance(c) * size;
        if used > width && i > 0 {
            break;
        }
        end = i + c.len_utf8();
    }
    end
}

// ---------------------------------------------------------------------------
// Fonts

static REGULAR_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static BOLD_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

struct Fonts {
    regular: Face,
    bold: Face,
}

/// The compiled-in fonts, read once per process.
fn fonts() -> Option<&'static Fonts> {
    static FONTS: OnceLock<Option<Fonts>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            Some(Fonts {
                regular: Face::new(REGULAR_TTF)?,
                bold: Face::new(BOLD_TTF)?,
            })
        })
        .as_ref()
}

/// A font for the PDF writer plus what layout needs from it: the glyph of
/// each character (`cmap` format 4, the Basic Multilingual Plane) and each
/// glyph's advance width (`hmtx`).
struct Face {
    font: Font,
    units_per_em: f32,
    cmap: &'static [u8],
    hmtx: &'static [u8],
    h_metrics: usize,
}

impl Face {
    fn new(data: &'static [u8]) -> Option<Face> {
        let head = table(data, b"head")?;
        let hhea = table(data, b"hhea")?;
        let units_per_em = f32::from(be_u16(head, 18)?);
        let h_metrics = usize::from(be_u16(hhea, 34)?);
        if units_per_em == 0.0 || h_metrics == 0 {
            return None;
        }
        let face = Face {
            font: Font::new(data.into(), 0)?,
            units_per_em,
            cmap: unicode_cmap(table(data, b"cmap")?)?,
            hmtx: table(data, b"hmtx")?,
            h_metrics,
        };
        // The text every book prints must be there.
        ['a', 'é', '’', '✂', '…'].iter().all(|&c| face.glyph(c) != 0).then_some(face)
    }

    /// Glyphs for `text`, one per character, for the PDF writer. A character
    /// the font lacks gets glyph 0 (a box); its text still extracts.
    fn shape(&self, text: &str) -> Vec<KrillaGlyph> {
        text.char_indices()
            .map(|(i, c)| {
                let glyph = self.glyph(c);
                let range: Range<usize> = i..i + c.len_utf8();
                let advance = self.glyph_advance(glyph) / self.units_per_em;
                KrillaGlyph::new(GlyphId::new(u32::from(glyph)), advance, 0.0, 0.0, 0.0, range, None)
            })
            .collect()
    }

    /// Width of `text` set at `size` points.
    fn width(&self, size: f32, text: &str) -> f32 {
        text.chars().map(|c| self.advance(c)).sum::<f32>() * size
    }

    /// Advance of one character, in ems.
    fn advance(&self, c: char) -> f32 {
        self.glyph_advance(self.glyph(c)) / self.units_per_em
    }

    fn glyph_advance(&self, glyph: u16) -> f32 {
        let index = usize::from(glyph).min(self.h_metrics - 1);
        f32::from(be_u16(self.hmtx, 4 * index).unwrap_or(0))
    }

    /// The glyph of `c`, 0 (missing) outside the table.
    fn glyph(&self, c: char) -> u16 {
        u16::try_from(u32::from(c))
            .ok()
            .and_then(|c| cmap4_lookup(self.cmap, c))
            .unwrap_or(0)
    }
}

/// Finds a table in the font's table directory.
fn table(font: &'static [u8], tag: &[u8; 4]) -> Option<&'static [u8]> {
    let count = usize::from(be_u16(font, 4)?);
    (0..count).find_map(|i| {
        let record = font.get(12 + 16 * i..28 + 16 * i)?;
        if &record[..4] != tag {
            return None;
        }
        let offset = usize::try_from(be_u32(record, 8)?).ok()?;
        let length = usize::try_from(be_u32(record, 12)?).ok()?;
        font.get(offset..offset.checked_add(length)?)
    })
}

/// The format 4 subtable for Unicode (Windows BMP, or Unicode platform).
fn unicode_cmap(cmap: &'static [u8]) -> Option<&'static [u8]> {
    let count = usize::from(be_u16(cmap, 2)?);
    let subtables: Vec<(u16, u16, usize)> = (0..count)
        .filter_map(|i| {
            let platform = be_u16(cmap, 4 + 8 * i)?;
            let encoding = be_u16(cmap, 6 + 8 * i)?;
            let offset = usize::try_from(be_u32(cmap, 8 + 8 * i)?).ok()?;
            Some((platform, encoding, offset))
        })
        .collect();
    let preferred = [(3, 1), (0, 3), (0, 4), (0, 1)];
    preferred.iter().find_map(|&(platform, encoding)| {
        let &(_, _, offset) = subtables
            .iter()
            .find(|&&(p, e, _)| p == platform && e == encoding)?;
        let subtable = cmap.get(offset..)?;
        if be_u16(subtable, 0)? != 4 {
            return None;
        }
        let length = usize::from(be_u16(subtable, 2)?);
        subtable.get(..length)
    })
}

/// Looks `c` up in a `cmap` format 4 subtable.
fn cmap4_lookup(subtable: &[u8], c: u16) -> Option<u16> {
    let seg_x2 = usize::from(be_u16(subtable, 6)?);
    let segments = seg_x2 / 2;
    let ends = 14;
    let starts = ends + seg_x2 + 2;
    let deltas = starts + seg_x2;
    let range_offsets = deltas + seg_x2;
    // The first segment whose end is at or after `c` (ends are sorted).
    let (mut low, mut high) = (0, segments);
    while low < high {
        let mid = (low + high) / 2;
        if be_u16(subtable, ends + 2 * mid)? < c {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    if low == segments {
        return None;
    }
    let start = be_u16(subtable, starts + 2 * low)?;
    if c < start {
        return None;
    }
    let delta = be_u16(subtable, deltas + 2 * low)?;
    let range_offset_at = range_offsets + 2 * low;
    let range_offset = usize::from(be_u16(subtable, range_offset_at)?);
    if range_offset == 0 {
        return Some(c.wrapping_add(delta));
    }
    let glyph = be_u16(subtable, range_offset_at + range_offset + 2 * usize::from(c - start))?;
    (glyph != 0).then(|| glyph.wrapping_add(delta))
}

fn be_u16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([bytes[0], bytes[1]]))
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

