//! The invoice (or credit note) as a Factur-X PDF: a page in French for the
//! people who read it, and the CII XML that machines read, embedded as
//! `factur-x.xml`. The file is PDF/A-3b (krilla checks it as it writes);
//! the Factur-X XMP properties are added afterwards by [`super::facturx`].
//!
//! Everything printed comes from the [`Invoice`], the same value the XML
//! was written from, so the page and the XML never differ.

use chrono::{Datelike, NaiveDate, Timelike};
use krilla::configure::{ConfigurationBuilder, Validator};
use krilla::embed::{AssociationKind, EmbeddedFile, MimeType};
use krilla::metadata::{DateTime, Metadata};
use krilla::page::PageSettings;
use krilla::surface::Surface;
use krilla::{Document, SerializeSettings};

use super::facturx;
use super::statement_pdf::euros;
use super::typeset::{
    clean, fit, fonts, french_date, wrap, Fonts, Pen, Style, BLACK, BLUE, GREY, TINT,
};
use crate::domain::invoices::cii;
use crate::domain::invoices::document::{Invoice, Kind, Party, Tax};

#[derive(Debug, thiserror::Error)]
pub enum InvoicePdfError {
    #[error("the embedded font could not be read")]
    Font,
    #[error("PDF writing failed: {0}")]
    Pdf(String),
    #[error(transparent)]
    FacturX(#[from] facturx::FacturXError),
}

const PAGE_W: f32 = 595.276;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 46.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// The last baseline of content; the footer goes below it.
const BOTTOM: f32 = PAGE_H - 60.0;

const TITLE: Style = Style::bold(20.0, 26.0, BLUE);
const SUBTITLE: Style = Style::regular(10.5, 15.0, BLACK);
const LABEL: Style = Style::bold(8.5, 12.0, GREY);
const BODY: Style = Style::regular(9.5, 13.0, BLACK);
const BODY_BOLD: Style = Style::bold(9.5, 13.0, BLACK);
const TOTAL: Style = Style::bold(11.0, 16.0, BLACK);
const SMALL: Style = Style::regular(8.0, 11.0, GREY);

/// Renders the document with `xml` (the stored CII bytes) embedded.
pub fn render(invoice: &Invoice, xml: &[u8]) -> Result<Vec<u8>, InvoicePdfError> {
    let fonts = fonts().ok_or(InvoicePdfError::Font)?;
    let configuration = ConfigurationBuilder::new()
        .set_validator(Validator::A(krilla::configure::Archival::A3_B))
        .finish()
        .map_err(|e| InvoicePdfError::Pdf(format!("{e:?}")))?;
    let mut document = Document::new_with(SerializeSettings {
        configuration,
        ..SerializeSettings::default()
    });
    let issued = pdf_date(invoice.issued_on);
    document.set_metadata(
        Metadata::new()
            .title(title(invoice))
            .language("fr-FR".into())
            .authors(vec![clean(&invoice.seller.party.name)])
            .creator("passnum".into())
            .creation_date(issued)
            .document_id(format!("{}-{}", invoice.seller.party.siret, invoice.number)),
    );
    document
        .embed_file(EmbeddedFile {
            path: facturx::XML_FILE_NAME.into(),
            mime_type: MimeType::new("text/xml"),
            description: Some(format!(
                "{} {} au format Factur-X (CII, profil EN 16931)",
                invoice.kind.french(),
                invoice.number
            )),
            // The XML is the invoice's data; the page shows it (Factur-X 1.0, 6.2.2).
            association_kind: AssociationKind::Data,
            data: xml.to_vec().into(),
            modification_date: Some(issued),
            compress: Some(true),
            location: None,
        })
        .ok_or_else(|| InvoicePdfError::Pdf("the XML could not be embedded".into()))?;

    let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| InvoicePdfError::Pdf("invalid page size".into()))?;
    let blocks = blocks(invoice, fonts);
    let pages = paginate(&blocks);
    for (index, page_blocks) in pages.iter().enumerate() {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let mut sheet = Sheet {
            surface: &mut surface,
            fonts,
        };
        let mut y = 50.0;
        for block in page_blocks {
            sheet.block(invoice, block, y);
            y += block.height();
        }
        sheet.footer(invoice, index + 1, pages.len());
        surface.finish();
        page.finish();
    }
    let pdf = document
        .finish()
        .map_err(|e| InvoicePdfError::Pdf(format!("{e:?}")))?;
    Ok(facturx::add_xmp(&pdf, invoice.kind)?)
}

/// "Facture n° PN-000012", "Avoir n° PN-000013".
fn title(invoice: &Invoice) -> String {
    format!("{} n° {}", invoice.kind.french(), invoice.number)
}

fn pdf_date(day: NaiveDate) -> DateTime {
    // Noon UTC: the same calendar day in every European time zone.
    let noon = day.and_hms_opt(12, 0, 0).unwrap_or_default().and_utc();
    DateTime::new(noon.year() as u16)
        .month(noon.month() as u8)
        .day(noon.day() as u8)
        .hour(noon.hour() as u8)
        .minute(0)
        .second(0)
        .utc_offset_hour(0)
        .utc_offset_minute(0)
}

/// What goes down a page, in order.
enum Block {
    Heading,
    Parties,
    References(Vec<String>),
    TableHead,
    Row(usize),
    Totals,
    Paragraphs(Vec<(Style, String)>),
}

impl Block {
    fn height(&self) -> f32 {
        match self {
            Block::Heading => TITLE.leading + 3.0 * SUBTITLE.leading + 10.0,
            Block::Parties => 16.0 + LABEL.leading + 5.0 * BODY.leading + 6.0,
            Block::References(lines) => 8.0 + lines.len() as f32 * BODY.leading,
            Block::TableHead => 14.0 + LABEL.leading + 4.0,
            Block::Row(_) => BODY.leading + 5.0,
            Block::Totals => 10.0 + 5.0 * BODY.leading + TOTAL.leading,
            Block::Paragraphs(lines) => {
                10.0 + lines.iter().map(|(style, _)| style.leading).sum::<f32>()
            }
        }
    }
}

fn blocks(invoice: &Invoice, fonts: &'static Fonts) -> Vec<Block> {
    let mut blocks = vec![Block::Heading, Block::Parties];
    let source = &invoice.source;
    let mut references = vec![format!(
        "Relevé n° {} du programme « {} », période du {} au {}",
        source.statement_number,
        clean(&source.program_name),
        french_date(source.period_start),
        french_date(source.period_end)
    )];
    if let Some(code) = &invoice.buyer.service_code {
        references.push(format!("Code service (Chorus Pro) : {}", clean(code)));
    }
    if let Some(number) = &invoice.buyer.engagement_number {
        references.push(format!("Numéro d'engagement : {}", clean(number)));
    }
    for corrected in &invoice.corrects {
        references.push(format!(
            "Avoir sur la facture n° {} du {}",
            corrected.number,
            french_date(corrected.issued_on)
        ));
    }
    blocks.push(Block::References(wrapped(fonts, BODY, references)));
    blocks.push(Block::TableHead);
    blocks.extend((0..invoice.lines.len()).map(Block::Row));
    blocks.push(Block::Totals);

    let mut mentions = Vec::new();
    if let Tax::Exempt { reason } = &invoice.tax {
        mentions.push((BODY_BOLD, clean(reason)));
    }
    mentions.push((BODY, cii::payment_terms(invoice)));
    if invoice.kind == Kind::Invoice {
        let mut account = format!("IBAN : {}", grouped(&invoice.seller.iban));
        if let Some(bic) = &invoice.seller.bic {
            account.push_str(&format!(" – BIC : {bic}"));
        }
        mentions.push((BODY_BOLD, account));
    }
    mentions.extend(
        cii::notes(invoice)
            .into_iter()
            .skip(1)
            .map(|(_, note)| (BODY, note)),
    );
    blocks.push(Block::Paragraphs(wrapped_styled(fonts, mentions)));
    blocks.push(Block::Paragraphs(wrapped_styled(
        fonts,
        vec![
            (
                SMALL,
                format!(
                    "Facture électronique Factur-X, profil EN 16931 : le fichier {} joint à ce PDF en porte les données. Elle est tirée de l'extrait signé du relevé n° {} (empreinte SHA-256 {}) ; le fichier CSV signé fait foi pour chaque atelier.",
                    facturx::XML_FILE_NAME,
                    source.statement_number,
                    source.sha256
                ),
            ),
        ],
    )));
    blocks
}

fn wrapped(fonts: &'static Fonts, style: Style, texts: Vec<String>) -> Vec<String> {
    texts
        .iter()
        .flat_map(|text| wrap(face(fonts, style), style.size, text, CONTENT_W, 4))
        .collect()
}

fn wrapped_styled(fonts: &'static Fonts, texts: Vec<(Style, String)>) -> Vec<(Style, String)> {
    texts
        .into_iter()
        .flat_map(|(style, text)| {
            wrap(face(fonts, style), style.size, &text, CONTENT_W, 6)
                .into_iter()
                .map(move |line| (style, line))
        })
        .collect()
}

fn face(fonts: &'static Fonts, style: Style) -> &'static super::typeset::Face {
    if style.bold {
        &fonts.bold
    } else {
        &fonts.regular
    }
}

fn paginate(blocks: &[Block]) -> Vec<Vec<&Block>> {
    let (mut pages, mut page) = (Vec::new(), Vec::new());
    let mut y = 50.0;
    for block in blocks {
        if y + block.height() > BOTTOM && !page.is_empty() {
            pages.push(std::mem::take(&mut page));
            y = 50.0;
            if let Block::Row(_) = block {
                page.push(&Block::TableHead);
                y += Block::TableHead.height();
            }
        }
        page.push(block);
        y += block.height();
    }
    pages.push(page);
    pages
}

/// The IBAN in groups of four, as on a RIB.
fn grouped(iban: &str) -> String {
    iban.as_bytes()
        .chunks(4)
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The table's columns: title, right edge (numbers) or left edge (text).
const DESIGNATION_X: f32 = 0.0;
const QUANTITY_RIGHT: f32 = 318.0;
const PRICE_RIGHT: f32 = 398.0;
const VAT_RIGHT: f32 = 432.0;
const AMOUNT_RIGHT: f32 = CONTENT_W;

struct Sheet<'s, 'p> {
    surface: &'s mut Surface<'p>,
    fonts: &'static Fonts,
}

impl<'p> Pen<'p> for Sheet<'_, 'p> {
    fn surface(&mut self) -> &mut Surface<'p> {
        self.surface
    }

    fn fonts(&self) -> &'static Fonts {
        self.fonts
    }
}

impl Sheet<'_, '_> {
    fn block(&mut self, invoice: &Invoice, block: &Block, top: f32) {
        match block {
            Block::Heading => {
                let mut y = top + TITLE.size;
                self.text(TITLE, MARGIN, y, &title(invoice));
                y += TITLE.leading;
                let mut facts = vec![format!(
                    "Date d'émission : {}",
                    french_date(invoice.issued_on)
                )];
                if let Some(due) = invoice.due_on {
                    facts.push(format!("Date d'échéance : {}", french_date(due)));
                }
                let workshops: i64 = invoice.lines.iter().map(|l| l.quantity).sum();
                facts.push(format!(
                    "{workshops} {} de médiation numérique (pass numérique)",
                    if workshops > 1 { "ateliers" } else { "atelier" }
                ));
                for fact in facts {
                    self.text(SUBTITLE, MARGIN, y, &fact);
                    y += SUBTITLE.leading;
                }
            }
            Block::Parties => {
                let y = top + 16.0;
                let box_w = CONTENT_W / 2.0 - 8.0;
                let seller_lines =
                    party_lines(&invoice.seller.party, invoice.seller.vat_number.as_deref());
                let buyer_lines = party_lines(&invoice.buyer.party, None);
                let height = LABEL.leading
                    + seller_lines.len().max(buyer_lines.len()) as f32 * BODY.leading
                    + 10.0;
                for (x, label, lines) in [
                    (MARGIN, "ÉMETTEUR (LE LIEU)", seller_lines),
                    (
                        MARGIN + CONTENT_W / 2.0 + 8.0,
                        "DESTINATAIRE (LE FINANCEUR)",
                        buyer_lines,
                    ),
                ] {
                    self.rect(x, y - 12.0, box_w, height, Some(TINT), None);
                    self.text(LABEL, x + 8.0, y, label);
                    let mut line_y = y + LABEL.leading + 2.0;
                    for (i, line) in lines.iter().enumerate() {
                        let style = if i == 0 { BODY_BOLD } else { BODY };
                        let line = fit(face(self.fonts, style), style.size, line, box_w - 16.0);
                        self.text(style, x + 8.0, line_y, &line);
                        line_y += BODY.leading;
                    }
                }
            }
            Block::References(lines) => {
                let mut y = top + 8.0 + BODY.size;
                for line in lines {
                    self.text(BODY, MARGIN, y, line);
                    y += BODY.leading;
                }
            }
            Block::TableHead => {
                let y = top + 14.0 + LABEL.size;
                self.text(LABEL, MARGIN + DESIGNATION_X, y, "ATELIERS (THÈME)");
                self.text_right(LABEL, MARGIN + QUANTITY_RIGHT, y, "QUANTITÉ");
                self.text_right(LABEL, MARGIN + PRICE_RIGHT, y, "PRIX UNIT. HT");
                self.text_right(LABEL, MARGIN + VAT_RIGHT, y, "TVA");
                self.text_right(LABEL, MARGIN + AMOUNT_RIGHT, y, "MONTANT HT");
                self.rule(MARGIN, y + 5.0, CONTENT_W, 0.8, BLUE);
            }
            Block::Row(i) => {
                let line = &invoice.lines[*i];
                let y = top + BODY.size + 3.0;
                let label = fit(
                    &self.fonts.regular,
                    BODY.size,
                    &clean(&line.label),
                    QUANTITY_RIGHT - 48.0,
                );
                self.text(BODY, MARGIN + DESIGNATION_X, y, &label);
                self.text_right(BODY, MARGIN + QUANTITY_RIGHT, y, &line.quantity.to_string());
                self.text_right(
                    BODY,
                    MARGIN + PRICE_RIGHT,
                    y,
                    &unit_price(line.unit_price_e4),
                );
                self.text_right(BODY, MARGIN + VAT_RIGHT, y, &rate(&invoice.tax));
                self.text_right(BODY, MARGIN + AMOUNT_RIGHT, y, &euros(line.net_cents));
                self.rule(MARGIN, top + BODY.leading + 4.0, CONTENT_W, 0.3, GREY);
            }
            Block::Totals => {
                let totals = &invoice.totals;
                let mut y = top + 10.0 + BODY.size;
                let label_right = MARGIN + AMOUNT_RIGHT - 110.0;
                let mut rows = vec![
                    ("Total HT".to_owned(), euros(totals.net_cents)),
                    (
                        format!("TVA {}", rate(&invoice.tax)),
                        euros(totals.vat_cents),
                    ),
                    ("Total TTC".to_owned(), euros(totals.gross_cents())),
                ];
                if totals.rounding_cents != 0 {
                    rows.push(("Arrondi".to_owned(), euros(totals.rounding_cents)));
                }
                for (label, value) in rows {
                    self.text_right(BODY, label_right, y, &label);
                    self.text_right(BODY, MARGIN + AMOUNT_RIGHT, y, &value);
                    y += BODY.leading;
                }
                let due_label = match invoice.kind {
                    Kind::Invoice => "Net à payer",
                    Kind::CreditNote => "Montant de l'avoir",
                };
                y += 4.0;
                let left = label_right - 110.0;
                self.rect(
                    left,
                    y - TOTAL.size - 3.0,
                    MARGIN + AMOUNT_RIGHT + 6.0 - left,
                    TOTAL.leading + 2.0,
                    Some(TINT),
                    None,
                );
                self.text_right(TOTAL, label_right, y, due_label);
                self.text_right(TOTAL, MARGIN + AMOUNT_RIGHT, y, &euros(totals.due_cents()));
            }
            Block::Paragraphs(lines) => {
                let mut y = top + 10.0;
                for (style, line) in lines {
                    y += style.size;
                    self.text(*style, MARGIN, y, line);
                    y += style.leading - style.size;
                }
            }
        }
    }

    fn footer(&mut self, invoice: &Invoice, page: usize, pages: usize) {
        let y = PAGE_H - 30.0;
        let left = format!(
            "{} – {} – SIRET {}",
            title(invoice),
            clean(&invoice.seller.party.name),
            invoice.seller.party.siret
        );
        self.text(
            SMALL,
            MARGIN,
            y,
            &fit(&self.fonts.regular, SMALL.size, &left, CONTENT_W - 80.0),
        );
        self.text_right(
            SMALL,
            MARGIN + CONTENT_W,
            y,
            &format!("page {page} / {pages}"),
        );
    }
}

/// A party's block: name, address, town, SIRET, VAT number.
fn party_lines(party: &Party, vat_number: Option<&str>) -> Vec<String> {
    let mut lines = vec![
        clean(&party.name),
        clean(&party.address),
        clean(&format!("{} {}", party.postcode, party.city)),
        format!("SIRET {}", party.siret),
    ];
    if let Some(number) = vat_number {
        lines.push(format!("TVA intracommunautaire {number}"));
    }
    lines
}

/// "20 %", "5,5 %", "exonérée".
fn rate(tax: &Tax) -> String {
    match tax {
        Tax::Exempt { .. } => "0 %".to_owned(),
        Tax::Standard { rate_basis_points } => {
            format!(
                "{}\u{a0}%",
                cii::percent(*rate_basis_points).replace('.', ",")
            )
        }
    }
}

/// A unit price in ten-thousandths of a euro, French style: "20,00 €", "16,6667 €".
fn unit_price(e4: i64) -> String {
    if e4 % 100 == 0 {
        euros(e4 / 100)
    } else {
        format!("{},{:04}\u{a0}€", e4 / 10_000, e4 % 10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::invoices::document::{self, Buyer, Line, Reference, Seller, Source, Totals};

    fn sample(kind: Kind, tax: Tax) -> Invoice {
        let tally = [
            ("email".to_owned(), 2000, 3),
            ("online_procedures".to_owned(), 2000, 2),
        ];
        let (lines, totals): (Vec<Line>, Totals) = document::price(
            &tally,
            |code| {
                crate::domain::themes::label(code)
                    .unwrap_or(code)
                    .to_owned()
            },
            &tax,
        );
        Invoice {
            kind,
            number: "PN-000007".into(),
            issued_on: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            due_on: (kind == Kind::Invoice).then(|| NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()),
            source: Source {
                statement_id: 4,
                statement_number: 2,
                program_name: "Pass numérique Alsace".into(),
                period_start: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
                period_end: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
                sha256: "ab".repeat(32),
                extract_total_cents: 10_000,
            },
            seller: Seller {
                party: Party {
                    name: "Association Les Clés du numérique".into(),
                    siret: "35600000000048".into(),
                    address: "3 rue des Tanneurs".into(),
                    postcode: "67000".into(),
                    city: "Strasbourg".into(),
                },
                vat_number: None,
                iban: "FR7630006000011234567890189".into(),
                bic: Some("AGRIFRPP".into()),
            },
            buyer: Buyer {
                party: Party {
                    name: "Collectivité européenne d'Alsace".into(),
                    siret: "20009475800017".into(),
                    address: "Place du Quartier Blanc".into(),
                    postcode: "67000".into(),
                    city: "Strasbourg".into(),
                },
                service_code: Some("SERV-NUM-01".into()),
                engagement_number: Some("EJ-2026-0042".into()),
            },
            tax,
            lines,
            totals,
            corrects: match kind {
                Kind::Invoice => vec![],
                Kind::CreditNote => vec![Reference {
                    number: "PN-000003".into(),
                    issued_on: NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
                }],
            },
        }
    }

    #[test]
    fn an_invoice_renders_as_pdf_a_3_with_its_xml() {
        for (kind, tax) in [
            (
                Kind::Invoice,
                Tax::Exempt {
                    reason: "TVA non applicable, art. 261-7-1° b du CGI".into(),
                },
            ),
            (
                Kind::Invoice,
                Tax::Standard {
                    rate_basis_points: 2000,
                },
            ),
            (
                Kind::CreditNote,
                Tax::Standard {
                    rate_basis_points: 550,
                },
            ),
        ] {
            let invoice = sample(kind, tax);
            let xml = cii::xml(&invoice);
            let pdf = render(&invoice, &xml).expect("render");
            assert!(pdf.starts_with(b"%PDF-1.7"), "{:?}", &pdf[..10]);
            let text = String::from_utf8_lossy(&pdf);
            assert!(
                text.contains("fx:ConformanceLevel>EN 16931<"),
                "no Factur-X XMP"
            );
            assert!(text.contains("pdfaid:part>3<") || text.contains("pdfaid:part=\"3\""));
            // Rendering is deterministic: the stored document gives the same file every time.
            assert_eq!(render(&invoice, &xml).unwrap(), pdf);
        }
    }
}
