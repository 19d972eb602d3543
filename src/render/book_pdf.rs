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
//! - The data-protection notice goes under the last coupon, or on a page of
//!   its own when it does not fit there (a full last page, long texts).
//!
//! A replacement book holds only the positions it replaces: the cover counts
//! the coupons it holds, each coupon keeps its "n / N" of the original book.
//!
//! Rendering is pure: no I/O, no clock, no font lookup. The DejaVu Sans fonts
//! are compiled in (`assets/fonts/`, licence beside them) and each PDF embeds
//! a subset of the glyphs it uses. Text is laid out glyph by glyph from the
//! font's own `cmap` and `hmtx` tables, so that measuring (for wrapping and
//! alignment) and drawing always agree; there is no kerning.

use chrono::{Datelike, NaiveDate};
use krilla::geom::{PathBuilder, Rect, Transform};
use krilla::metadata::{DateTime, Metadata};
use krilla::page::PageSettings;
use krilla::paint::{LineCap, Stroke, StrokeDash};
use krilla::surface::Surface;
use krilla::Document;

use super::typeset::{
    clean, color, fill, fit, fonts, french_date, french_km, plural, sentence, wrap, Fonts, Pen,
    Style, BLACK, BLUE, GREY, TINT, WHITE,
};
use crate::render::{QrCode, QrError, QUIET_ZONE_MODULES};

/// Everything printed in one book. All the data comes in; nothing is looked up.
#[derive(Debug, Clone)]
pub struct BookPdf<'a> {
    /// The funding programme's name, printed on the cover and every coupon.
    pub program_name: &'a str,
    /// Who pays for the workshops ("Offert par : …").
    pub funder_name: &'a str,
    /// The social service that handed the book out ("Remis par : …").
    pub issuer_name: &'a str,
    /// Its phone number, printed beside its name so the holder can call it.
    pub issuer_phone: Option<&'a str>,
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
    /// The beneficiary's own page (the book's secret link), printed at the
    /// bottom of the cover as a QR code and a short address to type.
    pub page_link: Option<PageLink<'a>>,
}

/// The secret link to the beneficiary's page.
#[derive(Debug, Clone, Copy)]
pub struct PageLink<'a> {
    /// What the QR code holds: the page's full address.
    pub url: &'a str,
    /// The same address as printed for typing (host, path, grouped secret).
    pub printed: &'a str,
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
    /// Who is responsible for the data (the controller, or controllers).
    pub controller: &'a str,
    /// Where to write to exercise one's rights (postal or e-mail address).
    pub contact: &'a str,
    /// How long data is kept, printed after "Combien de temps ?": a phrase
    /// ("3 ans après la fin du programme") or a sentence; a full stop is
    /// added only if missing.
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
    /// The page link could not be made into a QR code.
    #[error("QR code of the page link: {0}")]
    LinkQr(#[source] QrError),
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
    let link_qr = book
        .page_link
        .map(|link| QrCode::new(link.url).map_err(BookPdfError::LinkQr))
        .transpose()?;
    let fonts = fonts().ok_or(BookPdfError::Font)?;

    let mut document = Document::new();
    document.set_metadata(metadata(book, coupons.len()));
    let page_settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| BookPdfError::Pdf("invalid page size".into()))?;

    {
        let mut page = document.start_page_with(page_settings.clone());
        let mut surface = page.surface();
        Canvas::new(&mut surface, fonts).cover(book, coupons.len(), link_qr.as_ref());
        surface.finish();
        page.finish();
    }

    // Three coupons a page, then the notice: under the last coupon if it
    // fits there, else on a page of its own.
    let notice = Notice::layout(&book.privacy, fonts);
    let items: Vec<(&PdfCoupon, &QrCode)> = coupons.iter().copied().zip(&qr_codes).collect();
    let pages: Vec<&[(&PdfCoupon, &QrCode)]> = items.chunks(STRIPS_PER_PAGE).collect();
    let used = items.len() % STRIPS_PER_PAGE;
    let notice_below = used != 0 && used as f32 * STRIP_H + notice.height() <= PAGE_H;
    for (i, page_items) in pages.iter().enumerate() {
        let with_notice = notice_below && i + 1 == pages.len();
        let mut page = document.start_page_with(page_settings.clone());
        let mut surface = page.surface();
        let mut canvas = Canvas::new(&mut surface, fonts);
        for (slot, (coupon, qr)) in page_items.iter().enumerate() {
            let top = slot as f32 * STRIP_H;
            canvas.coupon(book, coupon, qr, top);
            if slot + 1 < page_items.len() || with_notice {
                canvas.cut_line(top + STRIP_H);
            }
        }
        if with_notice {
            canvas.notice(&notice, page_items.len() as f32 * STRIP_H);
        }
        surface.finish();
        page.finish();
    }
    if !notice_below {
        let mut page = document.start_page_with(page_settings);
        let mut surface = page.surface();
        Canvas::new(&mut surface, fonts).notice(&notice, 0.0);
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
/// Left and right margin of every page.
const MARGIN: f32 = 42.0;
/// Top of the cover's title, and the cover's last baseline from the bottom
/// edge (office printers leave about 5 mm unprinted).
const COVER_TOP: f32 = 36.0;
const COVER_BOTTOM: f32 = 30.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;

const STRIPS_PER_PAGE: usize = 3;
const STRIP_H: f32 = PAGE_H / STRIPS_PER_PAGE as f32;
/// Space between a cut line and the coupon's box.
const STRIP_GAP: f32 = 20.0;
/// Width of the QR code with its quiet zone: 42 mm (the minimum is 30 mm).
const QR_SIDE: f32 = 42.0 * MM;

// Type styles: face, size and line spacing (points), colour.
const TITLE: Style = Style::bold(30.0, 36.0, BLUE);
const HEADING: Style = Style::bold(20.0, 28.0, BLUE);
const LEAD: Style = Style::regular(16.0, 22.0, BLACK);
const LEAD_BOLD: Style = Style::bold(16.0, 22.0, BLACK);
const BODY: Style = Style::regular(15.0, 20.0, BLACK);
const VENUE_NAME: Style = Style::bold(15.0, 18.0, BLACK);
const VENUE_DISTANCE: Style = Style::bold(15.0, 18.0, BLUE);
const VENUE_TEXT: Style = Style::regular(14.0, 18.0, BLACK);
const COUPON_TITLE: Style = Style::bold(26.0, 32.0, BLUE);
const COUPON_TEXT: Style = Style::regular(14.0, 20.0, BLACK);
const TYPED_CODE: Style = Style::bold(24.0, 30.0, BLACK);
const VALIDITY: Style = Style::bold(18.0, 22.0, BLACK);
const COUPON_VALIDITY: Style = Style::bold(16.0, 22.0, BLACK);
const NOTICE_HEADING: Style = Style::bold(16.0, 24.0, BLUE);
const NOTICE: Style = Style::regular(12.0, 15.0, BLACK);
const SMALL: Style = Style::regular(10.0, 12.0, BLACK);
const CUT_MARK: Style = Style::regular(10.0, 12.0, GREY);
const SCISSORS: Style = Style::regular(16.0, 16.0, GREY);
const STEP_DIGIT: Style = Style::bold(14.0, 14.0, WHITE);

// ---------------------------------------------------------------------------
// The pages

struct Canvas<'s, 'p> {
    surface: &'s mut Surface<'p>,
    fonts: &'static Fonts,
}

impl<'p> Pen<'p> for Canvas<'_, 'p> {
    fn surface(&mut self) -> &mut Surface<'p> {
        self.surface
    }

    fn fonts(&self) -> &'static Fonts {
        self.fonts
    }
}

impl<'s, 'p> Canvas<'s, 'p> {
    fn new(surface: &'s mut Surface<'p>, fonts: &'static Fonts) -> Self {
        Canvas { surface, fonts }
    }

    /// Page 1: what it is, how to use it, until when, who pays, where to go.
    fn cover(&mut self, book: &BookPdf, coupons: usize, link_qr: Option<&QrCode>) {
        let left = MARGIN;
        let mut y = COVER_TOP + TITLE.size;
        self.text(TITLE, left, y, "Votre pass numérique");
        y += 24.0;
        y = self.paragraph(
            Style {
                leading: 21.0,
                ..LEAD
            },
            left,
            y,
            CONTENT_W,
            2,
            &clean(book.program_name),
        );
        y -= 10.0;
        self.rule(left, y, CONTENT_W, 1.5, BLUE);
        y += 27.0;

        let workshops = plural(coupons, "atelier gratuit", "ateliers gratuits");
        let what = format!("Ce carnet vous donne droit à {coupons} {workshops}.");
        y = self.paragraph(LEAD_BOLD, left, y, CONTENT_W, 2, &what);
        let why =
            "Dans ces ateliers, on vous aide à utiliser un ordinateur, un téléphone ou internet.";
        y = self.paragraph(LEAD, left, y, CONTENT_W, 3, why);

        // Until when, in a tinted box.
        let box_top = y - 6.0;
        let box_h = 36.0;
        self.rect(
            left,
            box_top,
            CONTENT_W,
            box_h,
            Some(TINT),
            Some((BLUE, 1.0)),
        );
        let valid = format!("Valable jusqu’au {}", french_date(book.expires_on));
        self.text(VALIDITY, left + 14.0, box_top + 24.5, &valid);
        y = box_top + box_h + 30.0;

        // How to use it.
        self.text(HEADING, left, y, "Comment faire ?");
        y += HEADING.leading;
        let steps = [
            "Choisissez un lieu dans la liste ci-dessous.",
            "Appelez ce lieu ou allez-y pour prendre rendez-vous.",
            "À chaque atelier, donnez un coupon de ce carnet.",
        ];
        let step_style = Style {
            leading: 21.0,
            ..LEAD
        };
        for (number, step) in (1..).zip(steps) {
            self.step_number(left + 11.0, y - 5.5, number);
            y = self.paragraph(step_style, left + 32.0, y, CONTENT_W - 32.0, 2, step);
            y += 4.0;
        }
        self.text(
            LEAD_BOLD,
            left + 32.0,
            y,
            "Un coupon = un atelier. C’est gratuit.",
        );
        y += 28.0;

        // A colon, not an article: names come as typed ("Collectivité d'Alsace", "CCAS de …").
        let funder = sentence(&format!("Offert par : {}", clean(book.funder_name)));
        y = self.paragraph(BODY, left, y, CONTENT_W, 2, &funder);
        let issuer = match book
            .issuer_phone
            .map(clean)
            .filter(|p| !p.trim().is_empty())
        {
            Some(phone) => sentence(&format!(
                "Remis par : {}, téléphone {}",
                clean(book.issuer_name),
                phone
            )),
            None => sentence(&format!("Remis par : {}", clean(book.issuer_name))),
        };
        y = self.paragraph(BODY, left, y, CONTENT_W, 2, &issuer);
        y += 10.0;

        // Where to go.
        self.text(HEADING, left, y, "Les lieux près de chez vous");
        y += 26.0;
        let baseline = PAGE_H - COVER_BOTTOM;
        let mut venues_bottom = baseline - 14.0;
        if let (Some(link), Some(qr)) = (&book.page_link, link_qr) {
            let top = venues_bottom - LINK_BLOCK_H - 6.0;
            self.page_link(link, qr, top);
            venues_bottom = top - 6.0;
        }
        self.venues(book, y, venues_bottom);

        // Small print.
        self.rule(left, baseline - 14.0, CONTENT_W, 0.5, GREY);
        let reference = format!("Dossier : {}", clean(book.reference));
        let data = "Vos données personnelles : voir la dernière page.";
        let room = CONTENT_W - self.width(SMALL, data) - 12.0;
        let reference = fit(self.face(SMALL), SMALL.size, &reference, room);
        self.text(SMALL, left, baseline, &reference);
        self.text_right(SMALL, PAGE_W - MARGIN, baseline, data);
    }

    /// The secret link's block, from `top` down ([`LINK_BLOCK_H`] high): the
    /// QR code on the left, what it is and the address to type on the right.
    fn page_link(&mut self, link: &PageLink, qr: &QrCode, top: f32) {
        self.rect(
            MARGIN,
            top,
            CONTENT_W,
            LINK_BLOCK_H,
            Some(TINT),
            Some((BLUE, 1.0)),
        );
        let side = LINK_BLOCK_H - 8.0;
        self.qr(qr, MARGIN + 4.0, top + 4.0, side);
        let x = MARGIN + side + 16.0;
        let room = PAGE_W - MARGIN - 10.0 - x;
        let mut y = top + 22.0;
        self.text(LEAD_BOLD, x, y, "Vos coupons sur votre téléphone");
        y += 21.0;
        y = self.paragraph(
            VENUE_TEXT,
            x,
            y,
            room,
            1,
            "Scannez ce code, ou tapez cette adresse :",
        );
        // One line if it fits, else the host and path, then the secret.
        let lines: Vec<&str> = if self.width(LINK_ADDRESS, link.printed) <= room {
            vec![link.printed]
        } else {
            match link.printed.rfind('/') {
                Some(cut) => vec![&link.printed[..=cut], &link.printed[cut + 1..]],
                None => vec![link.printed],
            }
        };
        for line in lines {
            let line = fit(self.face(LINK_ADDRESS), LINK_ADDRESS.size, line, room);
            self.text(LINK_ADDRESS, x, y, &line);
            y += LINK_ADDRESS.leading;
        }
    }

    /// The venue list from baseline `y`: as many venues as fit above `bottom`.
    fn venues(&mut self, book: &BookPdf, mut y: f32, bottom: f32) {
        if book.venues.is_empty() {
            let ask = "Demandez à la personne qui vous a donné ce carnet où aller.";
            self.paragraph(BODY, MARGIN, y, CONTENT_W, 2, ask);
            return;
        }
        let blocks: Vec<VenueBlock> = book
            .venues
            .iter()
            .map(|venue| VenueBlock::layout(venue, self.fonts))
            .collect();
        // Under the list, two lines of text: where to find more.
        let more_h = 2.0 * VENUE_TEXT.leading;
        let ask = "Demandez à la personne qui vous a donné ce carnet.";
        for (i, block) in blocks.iter().enumerate() {
            let is_last = i + 1 == blocks.len();
            let needed = block.height() + if is_last { 0.0 } else { more_h };
            if y - VENUE_NAME.size + needed > bottom {
                let more = format!("D’autres lieux existent. {ask}");
                self.paragraph(VENUE_TEXT, MARGIN, y, CONTENT_W, 2, &more);
                return;
            }
            y = self.venue(block, y);
        }
        if y - VENUE_TEXT.size + more_h <= bottom {
            let help = format!("Vous ne savez pas où aller ? {ask}");
            self.paragraph(VENUE_TEXT, MARGIN, y, CONTENT_W, 2, &help);
        }
    }

    /// One venue from baseline `y`; returns the next venue's baseline.
    fn venue(&mut self, block: &VenueBlock, mut y: f32) -> f32 {
        let text_left = MARGIN + VENUE_INDENT;
        let top = y - VENUE_NAME.size;
        // A bar on the left holds the lines of one venue together.
        self.rect(
            MARGIN,
            top + 1.0,
            4.0,
            block.height() - VENUE_GAP - 2.0,
            Some(BLUE),
            None,
        );
        if let Some(distance) = &block.distance {
            self.text_right(VENUE_DISTANCE, PAGE_W - MARGIN, y, distance);
        }
        for line in &block.name {
            self.text(VENUE_NAME, text_left, y, line);
            y += VENUE_NAME.leading;
        }
        for line in block.address.iter().chain(&block.phone) {
            self.text(VENUE_TEXT, text_left, y, line);
            y += VENUE_TEXT.leading;
        }
        y + VENUE_GAP
    }

    /// One coupon in the strip whose top edge is at `top`.
    fn coupon(&mut self, book: &BookPdf, coupon: &PdfCoupon, qr: &QrCode, top: f32) {
        let (left, width) = (MARGIN, CONTENT_W);
        let box_top = top + STRIP_GAP;
        let box_h = STRIP_H - 2.0 * STRIP_GAP;
        let band_h = 46.0;
        self.rect(left, box_top, width, band_h, Some(TINT), None);
        self.rect(left, box_top, width, box_h, None, Some((BLUE, 1.5)));

        // The band: which workshop, and the programme.
        let title = format!("Atelier {} / {}", coupon.position, book.book_size);
        self.text(COUPON_TITLE, left + 16.0, box_top + 33.0, &title);
        let title_w = self.width(COUPON_TITLE, &title);
        let program_room = width - title_w - 48.0;
        let program = fit(
            self.face(COUPON_TEXT),
            COUPON_TEXT.size,
            &clean(book.program_name),
            program_room,
        );
        self.text_right(COUPON_TEXT, left + width - 16.0, box_top + 29.0, &program);

        // The QR code on the left, centred under the band.
        let body_top = box_top + band_h;
        let body_h = box_h - band_h;
        self.qr(
            qr,
            left + 10.0,
            body_top + (body_h - QR_SIDE) / 2.0,
            QR_SIDE,
        );

        // The text on the right, centred too: from the first line's cap
        // height to the last line's descenders.
        let x = left + 10.0 + QR_SIDE + 14.0;
        let room = left + width - 14.0 - x;
        let text_h = 10.0 + 30.0 + 36.0 + 28.0 + 20.0 + 4.0;
        let mut y = body_top + (body_h - text_h) / 2.0 + 10.0;
        self.text(
            COUPON_TEXT,
            x,
            y,
            "Code à saisir si le scan ne marche pas :",
        );
        y += 30.0;
        let code = fit(
            self.face(TYPED_CODE),
            TYPED_CODE.size,
            &clean(coupon.typed_code),
            room,
        );
        self.text(TYPED_CODE, x, y, &code);
        y += 36.0;
        let valid = format!("Valable jusqu’au {}", french_date(book.expires_on));
        self.text(COUPON_VALIDITY, x, y, &valid);
        y += 28.0;
        self.text(COUPON_TEXT, x, y, "Un coupon = un atelier.");
        y += COUPON_TEXT.leading;
        self.text(COUPON_TEXT, x, y, "Gardez-le jusqu’au jour de l’atelier.");
    }

    /// A dashed line across the page at `y`, with scissors and a word.
    fn cut_line(&mut self, y: f32) {
        let label_left = MARGIN + 20.0;
        let scissors_w = self.width(SCISSORS, "✂");
        let label_w = scissors_w + 4.0 + self.width(CUT_MARK, "découper ici");
        let mut path = PathBuilder::new();
        path.move_to(12.0, y);
        path.line_to(label_left - 6.0, y);
        path.move_to(label_left + label_w + 6.0, y);
        path.line_to(PAGE_W - 12.0, y);
        if let Some(path) = path.finish() {
            self.surface.set_fill(None);
            self.surface.set_stroke(Some(Stroke {
                paint: color(GREY),
                width: 0.8,
                line_cap: LineCap::Butt,
                dash: Some(StrokeDash {
                    array: vec![6.0, 4.0],
                    offset: 0.0,
                }),
                ..Stroke::default()
            }));
            self.surface.draw_path(&path);
            self.surface.set_stroke(None);
        }
        self.text(SCISSORS, label_left, y + 5.5, "✂");
        self.text(
            CUT_MARK,
            label_left + scissors_w + 4.0,
            y + 3.5,
            "découper ici",
        );
    }

    /// The data-protection notice, in the space from `top` down.
    fn notice(&mut self, notice: &Notice, top: f32) {
        let mut y = top + STRIP_GAP + NOTICE_HEADING.size;
        self.text(NOTICE_HEADING, MARGIN, y, "Vos données personnelles");
        y += NOTICE_HEADING.leading;
        for paragraph in &notice.paragraphs {
            for line in paragraph {
                self.text(NOTICE, MARGIN, y, line);
                y += NOTICE.leading;
            }
            y += NOTICE_GAP;
        }
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
        let width = self.width(STEP_DIGIT, &digits);
        self.text(STEP_DIGIT, cx - width / 2.0, cy + 5.0, &digits);
    }

    /// The QR code with its quiet zone in a `side` square at (`x`, `y`):
    /// a white square, then every dark run as a rectangle, in one black path
    /// drawn in module units (small integers keep the page's content short).
    fn qr(&mut self, qr: &QrCode, x: f32, y: f32, side: f32) {
        self.rect(x, y, side, side, Some(WHITE), None);
        let module = side / qr.width_with_quiet_zone() as f32;
        let quiet = QUIET_ZONE_MODULES as f32;
        let mut path = PathBuilder::new();
        for (x, y, w, h) in dark_rectangles(qr) {
            let rect = Rect::from_xywh(x as f32 + quiet, y as f32 + quiet, w as f32, h as f32);
            if let Some(rect) = rect {
                path.push_rect(rect);
            }
        }
        if let Some(path) = path.finish() {
            let to_page = Transform::from_row(module, 0.0, 0.0, module, x, y);
            self.surface.push_transform(&to_page);
            self.surface.set_stroke(None);
            self.surface.set_fill(Some(fill(BLACK)));
            self.surface.draw_path(&path);
            self.surface.pop();
        }
    }
}

/// The dark modules of `qr` as rectangles `(x, y, width, height)` in
/// modules: each horizontal run, stretched down over the rows below that
/// repeat it exactly (finder patterns, timing columns, vertical strokes).
/// Fewer shapes than runs alone, so less page content to compress.
fn dark_rectangles(qr: &QrCode) -> Vec<(usize, usize, usize, usize)> {
    let mut rows: Vec<Vec<(usize, usize, bool)>> = vec![Vec::new(); qr.width_modules()];
    for run in qr.dark_runs() {
        if let Some(row) = rows.get_mut(run.y) {
            row.push((run.x, run.len, false));
        }
    }
    let mut rectangles = Vec::new();
    for y in 0..rows.len() {
        for i in 0..rows[y].len() {
            let (x, len, taken) = rows[y][i];
            if taken {
                continue;
            }
            let mut height = 1;
            while let Some(below) = rows
                .get_mut(y + height)
                .and_then(|row| row.iter_mut().find(|run| (run.0, run.1) == (x, len)))
            {
                below.2 = true;
                height += 1;
            }
            rectangles.push((x, y, len, height));
        }
    }
    rectangles
}

const VENUE_INDENT: f32 = 14.0;
/// Height of the secret link's block on the cover: its QR code is 28 mm wide.
const LINK_BLOCK_H: f32 = 28.0 * MM + 8.0;
const LINK_ADDRESS: Style = Style::bold(12.0, 14.0, BLACK);
const VENUE_GAP: f32 = 8.0;

/// A venue's lines, wrapped to the column, measured before drawing.
struct VenueBlock {
    name: Vec<String>,
    distance: Option<String>,
    address: Vec<String>,
    phone: Vec<String>,
}

impl VenueBlock {
    fn layout(venue: &PdfVenue, fonts: &Fonts) -> VenueBlock {
        let (regular, bold) = (&fonts.regular, &fonts.bold);
        let text_w = CONTENT_W - VENUE_INDENT;
        let distance = venue.distance_km.and_then(french_km);
        let distance_w = distance
            .as_deref()
            .map_or(0.0, |d| bold.width(VENUE_DISTANCE.size, d) + 12.0);
        let name = wrap(
            bold,
            VENUE_NAME.size,
            &clean(venue.name),
            text_w - distance_w,
            2,
        );
        let street = clean(venue.address);
        let town = clean(&format!("{} {}", venue.postcode, venue.commune));
        let address = match (street.is_empty(), town.is_empty()) {
            (false, false) => format!("{street}, {town}"),
            (false, true) => street,
            (true, _) => town,
        };
        let address = wrap(regular, VENUE_TEXT.size, &address, text_w, 2);
        let phone = match venue.phone.map(clean) {
            Some(phone) if !phone.is_empty() => {
                let phone = format!("Téléphone : {phone}");
                wrap(regular, VENUE_TEXT.size, &phone, text_w, 2)
            }
            _ => Vec::new(),
        };
        VenueBlock {
            name,
            distance,
            address,
            phone,
        }
    }

    fn height(&self) -> f32 {
        let names = self.name.len() as f32 * VENUE_NAME.leading;
        let lines = self.address.len() + self.phone.len();
        names + lines as f32 * VENUE_TEXT.leading + VENUE_GAP
    }
}

const NOTICE_GAP: f32 = 3.0;
/// Lowest baseline of the notice: office printers leave about 5 mm unprinted.
const NOTICE_BOTTOM: f32 = PAGE_H - 24.0;

/// The data-protection notice (who, what, why, how long, rights, contact),
/// wrapped, so that its height is known before a page is chosen for it.
struct Notice {
    paragraphs: Vec<Vec<String>>,
}

impl Notice {
    fn layout(privacy: &PrivacyNotice, fonts: &Fonts) -> Notice {
        let paragraphs = [
            (
                sentence(&format!(
                    "Qui s’occupe de vos données ? {}",
                    clean(privacy.controller)
                )),
                4,
            ),
            ("Votre nom n’est jamais enregistré.".to_owned(), 1),
            (
                "Nous gardons seulement un numéro de dossier, votre code postal, \
                 votre adresse e-mail si vous l’avez donnée, et les ateliers utilisés."
                    .to_owned(),
                3,
            ),
            (
                "Pourquoi ? Pour payer les ateliers aux lieux et suivre l’usage du pass."
                    .to_owned(),
                2,
            ),
            (
                sentence(&format!("Combien de temps ? {}", clean(privacy.retention))),
                4,
            ),
            (
                "Vos droits : voir vos données (droit d’accès), les corriger (rectification), \
                 les faire effacer (effacement)."
                    .to_owned(),
                3,
            ),
            (
                sentence(&format!(
                    "Pour cela, écrivez à : {}",
                    clean(privacy.contact)
                )),
                4,
            ),
            (
                "Vous pouvez aussi faire une réclamation auprès de la CNIL : www.cnil.fr."
                    .to_owned(),
                2,
            ),
        ]
        .iter()
        .map(|(text, max_lines)| wrap(&fonts.regular, NOTICE.size, text, CONTENT_W, *max_lines))
        .collect();
        Notice { paragraphs }
    }

    /// From the top of its space to the lowest baseline allowed, as drawn by
    /// [`Canvas::notice`].
    fn height(&self) -> f32 {
        let lines: usize = self.paragraphs.iter().map(Vec::len).sum();
        let last = NOTICE.leading + NOTICE_GAP;
        STRIP_GAP
            + NOTICE_HEADING.size
            + NOTICE_HEADING.leading
            + lines as f32 * NOTICE.leading
            + self.paragraphs.len() as f32 * NOTICE_GAP
            - last
            + (PAGE_H - NOTICE_BOTTOM)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::process::Command;

    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::voucher::VoucherBody;

    /// Real vouchers of one book, signed with a test key.
    struct Vouchers {
        /// (position, text form, typed code)
        codes: Vec<(u8, String, String)>,
    }

    impl Vouchers {
        fn new(book_size: u8, positions: impl IntoIterator<Item = u8>) -> Vouchers {
            let key = SigningKey::from_bytes(&[7; 32]);
            let codes = positions
                .into_iter()
                .map(|position| {
                    let voucher = VoucherBody {
                        kid: 3,
                        voucher_id: 1_283_650_000 + 7_919 * u64::from(position),
                        program_id: 42,
                        expires_on: expires_on(),
                        position,
                        book_size,
                    }
                    .sign(&key)
                    .expect("valid voucher body");
                    (position, voucher.to_text(), voucher.typed_code())
                })
                .collect();
            Vouchers { codes }
        }

        fn full(book_size: u8) -> Vouchers {
            Vouchers::new(book_size, 1..=book_size)
        }

        fn coupons(&self) -> Vec<PdfCoupon<'_>> {
            self.codes
                .iter()
                .map(|(position, code, typed_code)| PdfCoupon {
                    position: *position,
                    code,
                    typed_code,
                })
                .collect()
        }
    }

    fn expires_on() -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 3, 31).expect("valid date")
    }

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

    fn book<'a>(
        book_size: u8,
        coupons: &'a [PdfCoupon<'a>],
        venues: &'a [PdfVenue<'a>],
    ) -> BookPdf<'a> {
        BookPdf {
            program_name: "Pass numérique Gironde 2026",
            funder_name: "Département de la Gironde",
            issuer_name: "CCAS de Bordeaux",
            issuer_phone: Some("05 56 00 11 22"),
            issued_on: NaiveDate::from_ymd_opt(2026, 4, 1).expect("valid date"),
            expires_on: expires_on(),
            reference: "CCAS-2026-00417",
            venues,
            coupons,
            book_size,
            privacy: PrivacyNotice {
                controller: "Association Pass Numérique Ouvert",
                contact: "dpo@passnum.example.org",
                retention: "3 ans après la fin du programme",
            },
            page_link: None,
        }
    }

    /// Runs a command-line tool the tests need; a missing tool fails the test
    /// with the package to install, never skips it.
    fn run(tool: &str, package: &str, args: &[&str]) -> std::process::Output {
        match Command::new(tool).args(args).output() {
            Ok(output) => output,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "`{tool}` is missing, so the PDF book cannot be checked: \
                 install it with `apt-get install -y {package}`"
            ),
            Err(error) => panic!("could not run `{tool}`: {error}"),
        }
    }

    fn write_pdf(dir: &Path, pdf: &[u8]) -> String {
        let path = dir.join("book.pdf");
        std::fs::write(&path, pdf).expect("write the PDF to a temporary directory");
        path.to_str().expect("UTF-8 temporary path").to_owned()
    }

    fn pdf_text(pdf: &[u8]) -> String {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = write_pdf(dir.path(), pdf);
        let output = run("pdftotext", "poppler-utils", &["-enc", "UTF-8", &path, "-"]);
        assert!(output.status.success(), "pdftotext failed: {output:?}");
        // No-break spaces read as spaces, as a reader sees them.
        String::from_utf8(output.stdout)
            .expect("pdftotext prints UTF-8")
            .replace(['\u{a0}', '\u{202f}'], " ")
    }

    fn page_count(pdf: &[u8]) -> usize {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = write_pdf(dir.path(), pdf);
        let output = run("pdfinfo", "poppler-utils", &[&path]);
        assert!(output.status.success(), "pdfinfo failed: {output:?}");
        let info = String::from_utf8_lossy(&output.stdout).into_owned();
        info.lines()
            .find_map(|line| line.strip_prefix("Pages:"))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or_else(|| panic!("no page count in pdfinfo's answer:\n{info}"))
    }

    /// Every QR code found on the pages at 150 dpi, decoded by zbar.
    fn scanned_codes(pdf: &[u8]) -> Vec<String> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = write_pdf(dir.path(), pdf);
        let prefix = dir.path().join("page");
        let prefix = prefix.to_str().expect("UTF-8 temporary path");
        let output = run(
            "pdftoppm",
            "poppler-utils",
            &["-r", "150", "-png", &path, prefix],
        );
        assert!(output.status.success(), "pdftoppm failed: {output:?}");
        let mut pages: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list the pages")
            .filter_map(|entry| entry.ok()?.path().to_str().map(str::to_owned))
            .filter(|name| name.ends_with(".png"))
            .collect();
        pages.sort();
        let mut args = vec!["--raw", "-q", "-Sdisable", "-Sqrcode.enable"];
        args.extend(pages.iter().map(String::as_str));
        let output = run("zbarimg", "zbar-tools", &args);
        // 4: some image had no code (the cover); the caller compares codes.
        assert!(
            matches!(output.status.code(), Some(0 | 4)),
            "zbarimg failed: {output:?}"
        );
        String::from_utf8(output.stdout)
            .expect("voucher codes are ASCII")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn renders_books_of_5_and_10_on_the_expected_pages() {
        // Cover, then three coupons a page, the notice after the last one.
        for (size, pages) in [(5, 3), (10, 5)] {
            let vouchers = Vouchers::full(size);
            let coupons = vouchers.coupons();
            let pdf = render(&book(size, &coupons, &VENUES)).expect("render");
            assert!(pdf.starts_with(b"%PDF-"), "not a PDF");
            assert_eq!(page_count(&pdf), pages, "pages of a book of {size}");
        }
    }

    #[test]
    fn text_keeps_its_accents_and_every_typed_code() {
        let vouchers = Vouchers::full(10);
        let coupons = vouchers.coupons();
        let text = pdf_text(&render(&book(10, &coupons, &VENUES)).expect("render"));
        for expected in [
            "Votre pass numérique",
            "Ce carnet vous donne droit à 10 ateliers gratuits.",
            "Valable jusqu’au 31 mars 2027",
            "Offert par : Département de la Gironde.",
            "Remis par : CCAS de Bordeaux, téléphone 05 56 00 11 22.",
            "Choisissez un lieu",
            "Un coupon = un atelier.",
            "Médiathèque Flora Tristan",
            "8 rue Sainte-Hélène, 33000 Bordeaux",
            "Téléphone : 05 56 10 20 30",
            "à 1,2 km",
            "à 11 km",
            "Espace numérique de Mérignac",
            "Dossier : CCAS-2026-00417",
            "Atelier 1 / 10",
            "Atelier 3 / 10",
            "Atelier 10 / 10",
            "Code à saisir si le scan ne marche pas",
            "découper ici",
            "Association Pass Numérique Ouvert",
            "3 ans après la fin du programme",
            "dpo@passnum.example.org",
            "rectification",
            "effacement",
            "CNIL",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
        for (_, _, typed_code) in &vouchers.codes {
            assert!(
                text.contains(typed_code.as_str()),
                "typed code {typed_code} missing"
            );
        }
        assert_eq!(text.matches("Valable jusqu’au 31 mars 2027").count(), 11);
    }

    #[test]
    fn every_qr_code_scans_back_to_its_voucher() {
        for size in [5, 10] {
            let vouchers = Vouchers::full(size);
            let coupons = vouchers.coupons();
            let pdf = render(&book(size, &coupons, &VENUES)).expect("render");
            let scanned: BTreeSet<String> = scanned_codes(&pdf).into_iter().collect();
            let expected: BTreeSet<String> = vouchers
                .codes
                .iter()
                .map(|(_, code, _)| code.clone())
                .collect();
            assert_eq!(scanned, expected, "book of {size}");
            assert_eq!(scanned.len(), usize::from(size));
        }
    }

    #[test]
    fn the_cover_link_scans_to_the_page_and_reads_to_type() {
        let vouchers = Vouchers::full(5);
        let coupons = vouchers.coupons();
        let url = "https://pass-numerique.example.org/c/3QW8Z5K0M2R7T4V9X1Y6B8C0DE";
        let printed = "pass-numerique.example.org/c/3QW8-Z5K0-M2R7-T4V9-X1Y6-B8C0-DE";
        let mut with_link = book(5, &coupons, &VENUES);
        with_link.page_link = Some(PageLink { url, printed });
        let pdf = render(&with_link).expect("render");
        assert_eq!(page_count(&pdf), 3, "the cover stays one page");
        let scanned = scanned_codes(&pdf);
        assert!(scanned.iter().any(|c| c == url), "{scanned:?}");
        assert_eq!(scanned.len(), 6, "five coupons and the link: {scanned:?}");
        let text = pdf_text(&pdf);
        assert!(text.contains("Vos coupons sur votre téléphone"), "{text}");
        let typed: String = text.split_whitespace().collect();
        assert!(
            typed.contains(printed),
            "{printed} not printed whole:\n{text}"
        );
        // Without a link (a revoked book's PDF), no block.
        let text = pdf_text(&render(&book(5, &coupons, &VENUES)).expect("render"));
        assert!(!text.contains("Vos coupons sur votre téléphone"));
    }

    #[test]
    fn a_replacement_book_prints_only_its_positions() {
        let vouchers = Vouchers::new(10, [9, 2, 5]);
        let coupons = vouchers.coupons();
        let pdf = render(&book(10, &coupons, &VENUES)).expect("render");
        // Three coupons fill a page: the notice gets a page of its own.
        assert_eq!(page_count(&pdf), 3);
        let text = pdf_text(&pdf);
        assert!(text.contains("droit à 3 ateliers gratuits"), "{text}");
        for title in ["Atelier 2 / 10", "Atelier 5 / 10", "Atelier 9 / 10"] {
            assert!(text.contains(title), "{title} missing");
        }
        assert!(!text.contains("Atelier 1 / 10"));
        let first = text.find("Atelier 2 / 10").expect("position 2");
        let last = text.find("Atelier 9 / 10").expect("position 9");
        assert!(first < last, "coupons are printed by position");
    }

    #[test]
    fn the_cover_stays_one_page_whatever_the_venues() {
        let long = "Maison départementale des solidarités et de l’insertion du territoire \
                    de l’Entre-deux-Mers, antenne de Créon, guichet numérique";
        let venues = [PdfVenue {
            name: long,
            address: long,
            phone: Some("05 56 00 00 00 (du lundi au vendredi, de 9 h à 12 h et de 14 h à 17 h)"),
            ..VENUES[0]
        }; MAX_VENUES];
        let vouchers = Vouchers::full(5);
        let coupons = vouchers.coupons();
        let pdf = render(&book(5, &coupons, &venues)).expect("render");
        assert_eq!(page_count(&pdf), 3);
        let text = pdf_text(&pdf);
        assert!(text.contains("D’autres lieux existent."), "{text}");

        let none = render(&book(5, &coupons, &[])).expect("render");
        assert_eq!(page_count(&none), 3);
        assert!(pdf_text(&none).contains("Demandez à la personne qui vous a donné ce carnet"));
    }

    #[test]
    fn a_long_notice_gets_a_page_of_its_own() {
        let vouchers = Vouchers::full(5);
        let coupons = vouchers.coupons();
        let long = "Groupement d’intérêt public pour l’inclusion numérique des habitants \
                    de la Nouvelle-Aquitaine, délégation départementale de la Gironde, \
                    service de la protection des données, bâtiment C";
        let mut wordy = book(5, &coupons, &VENUES);
        wordy.privacy = PrivacyNotice {
            controller: long,
            contact: long,
            retention: long,
        };
        let pdf = render(&wordy).expect("render");
        assert_eq!(page_count(&pdf), 4);
        let text = pdf_text(&pdf);
        assert!(text.contains("Vos données personnelles") && text.contains("CNIL"));
    }

    #[test]
    fn sets_a_french_title_and_language() {
        let vouchers = Vouchers::full(5);
        let coupons = vouchers.coupons();
        let pdf = render(&book(5, &coupons, &VENUES)).expect("render");
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = write_pdf(dir.path(), &pdf);
        let output = run("pdfinfo", "poppler-utils", &[&path]);
        let info = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            info.contains("Pass numérique : carnet de 5 ateliers"),
            "{info}"
        );
        let raw = String::from_utf8_lossy(&pdf);
        assert!(
            raw.contains("/Lang(fr-FR)") || raw.contains("/Lang (fr-FR)"),
            "no /Lang in the catalog"
        );
    }

    #[test]
    fn refuses_books_that_cannot_be() {
        let ten = Vouchers::full(10);
        let coupons = ten.coupons();
        let error = |book: BookPdf| render(&book).expect_err("must be refused");
        assert!(matches!(
            error(book(7, &coupons[..5], &VENUES)),
            BookPdfError::BookSize(7)
        ));
        assert!(matches!(
            error(book(5, &coupons, &VENUES)),
            BookPdfError::TooManyCoupons { .. }
        ));
        assert!(matches!(
            error(book(10, &[], &VENUES)),
            BookPdfError::NoCoupons
        ));
        let twice = [coupons[2], coupons[2]];
        assert!(matches!(
            error(book(10, &twice, &VENUES)),
            BookPdfError::DuplicatePosition(3)
        ));
        let outside = [PdfCoupon {
            position: 11,
            ..coupons[0]
        }];
        assert!(matches!(
            error(book(10, &outside, &VENUES)),
            BookPdfError::Position {
                position: 11,
                book_size: 10
            }
        ));
        let zero = [PdfCoupon {
            position: 0,
            ..coupons[0]
        }];
        assert!(matches!(
            error(book(10, &zero, &VENUES)),
            BookPdfError::Position { .. }
        ));
        let six = [VENUES[0]; 6];
        assert!(matches!(
            error(book(10, &coupons, &six)),
            BookPdfError::TooManyVenues(6)
        ));
    }

    #[test]
    fn odd_text_does_not_break_the_layout() {
        // Control characters, a character the font lacks, an empty field.
        let vouchers = Vouchers::full(5);
        let coupons = vouchers.coupons();
        let venues = [PdfVenue {
            name: "Lieu\tavec\n\u{7}contrôles 🙂",
            address: "",
            postcode: "",
            commune: "",
            phone: Some("  "),
            distance_km: Some(f64::NAN),
        }];
        let mut odd = book(5, &coupons, &venues);
        odd.reference = "";
        odd.program_name = "Programme au nom très très long qui ne tient pas dans la bande du coupon, vraiment pas";
        let pdf = render(&odd).expect("render");
        let text = pdf_text(&pdf);
        assert!(text.contains("Lieu avec contrôles"), "{text}");
        assert!(!text.contains("NaN"));
    }

    #[test]
    fn qr_rectangles_cover_exactly_the_dark_modules() {
        let vouchers = Vouchers::full(5);
        for (_, code, _) in &vouchers.codes {
            let qr = QrCode::new(code).expect("QR code");
            let width = qr.width_modules();
            let mut covered = vec![0u8; width * width];
            let rectangles = dark_rectangles(&qr);
            for &(x, y, w, h) in &rectangles {
                for row in y..y + h {
                    for column in x..x + w {
                        covered[row * width + column] += 1;
                    }
                }
            }
            let dark: Vec<u8> = qr.modules().iter().map(|&d| u8::from(d)).collect();
            assert_eq!(covered, dark, "every dark module once, no light one");
            assert!(rectangles.len() < qr.dark_runs().count());
        }
    }

    #[test]
    fn writes_french_dates_and_distances() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("valid date");
        assert_eq!(french_date(date(2027, 3, 31)), "31 mars 2027");
        assert_eq!(french_date(date(2027, 4, 1)), "1er avril 2027");
        assert_eq!(french_date(date(2026, 8, 15)), "15 août 2026");
        assert_eq!(french_date(date(2026, 12, 2)), "2 décembre 2026");
        assert_eq!(french_km(1.24).as_deref(), Some("à 1,2\u{a0}km"));
        assert_eq!(french_km(0.0).as_deref(), Some("à 0,0\u{a0}km"));
        assert_eq!(french_km(9.96).as_deref(), Some("à 10\u{a0}km"));
        assert_eq!(french_km(23.4).as_deref(), Some("à 23\u{a0}km"));
        assert_eq!(french_km(-1.0), None);
        assert_eq!(french_km(f64::INFINITY), None);
    }

    #[test]
    fn wraps_at_spaces_within_the_width() {
        let fonts = fonts().expect("embedded fonts");
        let face = &fonts.regular;
        let text = "Choisissez un lieu dans la liste ci-dessous, puis appelez-le.";
        let lines = wrap(face, 15.0, text, 200.0, 10);
        assert!(lines.len() > 1);
        assert_eq!(lines.join(" "), text);
        assert!(lines.iter().all(|line| face.width(15.0, line) <= 200.0));

        let cut = wrap(face, 15.0, text, 200.0, 1);
        assert_eq!(cut.len(), 1);
        assert!(cut[0].ends_with('…') && face.width(15.0, &cut[0]) <= 200.0);

        let word = "Anticonstitutionnellement-et-plus-encore";
        let pieces = wrap(face, 15.0, word, 80.0, 10);
        assert_eq!(pieces.concat(), word);
        assert!(pieces.iter().all(|piece| face.width(15.0, piece) <= 80.0));

        assert_eq!(clean("  a\t b\n\nc\u{a0}d "), "a b c\u{a0}d");
        assert_eq!(sentence("Remis par CCAS"), "Remis par CCAS.");
        assert_eq!(
            sentence("Effacées après 12 mois. "),
            "Effacées après 12 mois."
        );
        assert_eq!(fit(face, 15.0, "court", 200.0), "court");
    }
}
