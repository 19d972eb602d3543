//! The statement as a PDF for a funder's finance team or a venue: A4
//! portrait, in French. A heading with the programme, the period and the
//! total; then one section per venue (name, SIRET, total, payment) with its
//! lines; at the end the SHA-256 and the Ed25519 signature of the CSV file,
//! which is the signed document: the PDF is a reading of it, and its lines
//! are read back from those exact CSV bytes so that the two never differ.

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::surface::Surface;
use krilla::Document;

use super::typeset::{clean, fit, fonts, french_date, wrap, Fonts, Pen, Style, BLACK, BLUE, GREY};

/// Everything printed on a statement; nothing is looked up.
#[derive(Debug, Clone)]
pub struct StatementPdf<'a> {
    pub program_name: &'a str,
    pub funder_name: &'a str,
    pub number: i32,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub closed_at: DateTime<Utc>,
    /// The programme's time zone, in which times are printed.
    pub tz: Tz,
    /// `Some(name)` when this is one venue's extract.
    pub extract_of: Option<&'a str>,
    pub sections: Vec<Section<'a>>,
    pub total_count: i32,
    pub total_cents: i64,
    pub sha256: &'a str,
    pub kid: &'a str,
    pub signature: &'a str,
}

/// One venue's part.
#[derive(Debug, Clone)]
pub struct Section<'a> {
    pub venue_name: &'a str,
    pub venue_siret: &'a str,
    pub total_cents: i64,
    /// "Payé le … (réf. …)", "À payer", "Rien à payer : reporté…".
    pub status: String,
    pub lines: Vec<Line>,
}

/// One line as printed.
#[derive(Debug, Clone)]
pub struct Line {
    pub redeemed_at: Option<DateTime<Utc>>,
    pub voucher_id: String,
    pub position: String,
    /// The theme's French label, or where a carried balance comes from.
    pub theme: String,
    pub held_on: NaiveDate,
    pub amount_cents: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StatementPdfError {
    #[error("the embedded font could not be read")]
    Font,
    #[error("PDF writing failed: {0}")]
    Pdf(String),
}

const PAGE_W: f32 = 595.276;
const PAGE_H: f32 = 841.89;
const MARGIN: f32 = 42.0;
const TOP: f32 = 48.0;
/// The last baseline of content; the footer goes below it.
const BOTTOM: f32 = PAGE_H - 54.0;
const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;

const TITLE: Style = Style::bold(18.0, 24.0, BLUE);
const SUBTITLE: Style = Style::regular(11.0, 15.0, BLACK);
const HEADING: Style = Style::bold(13.0, 18.0, BLUE);
const BODY: Style = Style::regular(10.0, 14.0, BLACK);
const BODY_BOLD: Style = Style::bold(10.0, 14.0, BLACK);
const CELL: Style = Style::regular(8.5, 12.0, BLACK);
const CELL_HEAD: Style = Style::bold(8.5, 12.0, GREY);
const SMALL: Style = Style::regular(8.0, 11.0, GREY);
/// Small enough for a whole signature on one line, so that it copies whole.
const PROOF: Style = Style::regular(8.5, 12.0, BLACK);

/// The table's columns: title, left edge, width; the amount is right-aligned.
/// The voucher number is printed whole (19 digits), for reconciliation.
const COLUMNS: [(&str, f32, f32); 6] = [
    ("Enregistré le", 0.0, 82.0),
    ("Bon n°", 84.0, 106.0),
    ("Atelier", 192.0, 34.0),
    ("Thème", 232.0, 144.0),
    ("Tenu le", 380.0, 56.0),
    ("Montant", 438.0, CONTENT_W - 438.0),
];

/// What goes down a page, in order; each has a height.
enum Block<'s> {
    Heading,
    Venue(&'s Section<'s>),
    TableHead,
    Row(&'s Line),
    Proof(Vec<String>),
}

impl Block<'_> {
    fn height(&self) -> f32 {
        match self {
            Block::Heading => TITLE.leading + 3.0 * SUBTITLE.leading + 14.0,
            Block::Venue(_) => 10.0 + HEADING.leading + 2.0 * BODY.leading + 4.0,
            Block::TableHead => CELL_HEAD.leading + 4.0,
            Block::Row(_) => CELL.leading,
            Block::Proof(lines) => 20.0 + HEADING.leading + lines.len() as f32 * PROOF.leading,
        }
    }
}

/// Renders the statement (or one venue's extract).
pub fn render(statement: &StatementPdf) -> Result<Vec<u8>, StatementPdfError> {
    let fonts = fonts().ok_or(StatementPdfError::Font)?;
    let proof = proof_lines(statement, fonts);
    let mut blocks = vec![Block::Heading];
    for section in &statement.sections {
        blocks.push(Block::Venue(section));
        blocks.push(Block::TableHead);
        blocks.extend(section.lines.iter().map(Block::Row));
    }
    blocks.push(Block::Proof(proof));
    let pages = paginate(&blocks);

    let mut document = Document::new();
    document.set_metadata(
        Metadata::new()
            .title(title(statement))
            .language("fr-FR".into())
            .authors(vec![clean(statement.funder_name)])
            .creator("passnum".into()),
    );
    let settings = PageSettings::from_wh(PAGE_W, PAGE_H)
        .ok_or_else(|| StatementPdfError::Pdf("invalid page size".into()))?;
    for (index, page_blocks) in pages.iter().enumerate() {
        let mut page = document.start_page_with(settings.clone());
        let mut surface = page.surface();
        let mut sheet = Sheet {
            surface: &mut surface,
            fonts,
        };
        let mut y = TOP;
        for block in page_blocks {
            sheet.block(statement, block, y);
            y += block.height();
        }
        sheet.footer(statement, index + 1, pages.len());
        surface.finish();
        page.finish();
    }
    document
        .finish()
        .map_err(|error| StatementPdfError::Pdf(error.to_string()))
}

/// Splits the blocks into pages; a venue heading never ends a page (it
/// moves to the next with its table head), and a continued table gets its
/// head again.
fn paginate<'b, 's>(blocks: &'b [Block<'s>]) -> Vec<Vec<&'b Block<'s>>> {
    let (mut pages, mut page) = (Vec::new(), Vec::new());
    let mut y = TOP;
    let mut table_head = None;
    for block in blocks {
        let keep_with_next = match block {
            Block::Venue(_) => Block::TableHead.height() + CELL.leading,
            Block::TableHead => CELL.leading,
            _ => 0.0,
        };
        if y + block.height() + keep_with_next > BOTTOM && !page.is_empty() {
            pages.push(std::mem::take(&mut page));
            y = TOP;
            if let (Block::Row(_), Some(head)) = (block, table_head) {
                page.push(head);
                y += Block::TableHead.height();
            }
        }
        if let Block::TableHead = block {
            table_head = Some(block);
        }
        page.push(block);
        y += block.height();
    }
    pages.push(page);
    pages
}

fn title(statement: &StatementPdf) -> String {
    match statement.extract_of {
        None => format!("Relevé n° {}", statement.number),
        Some(venue) => format!(
            "Relevé n° {} – extrait pour {}",
            statement.number,
            clean(venue)
        ),
    }
}

/// The proof at the end, wrapped to the page: digest, signature, how to check.
fn proof_lines(statement: &StatementPdf, fonts: &'static Fonts) -> Vec<String> {
    let texts = [
        "Le document signé est le fichier CSV de ce relevé ; ce PDF en est la lecture.".to_owned(),
        format!("Empreinte SHA-256 du fichier CSV : {}", statement.sha256),
        format!("Signature Ed25519 (clé n° {}) : {}", statement.kid, statement.signature),
        format!(
            "Pour vérifier : passnum statement verify releve.csv --kid {} --signature <la signature ci-dessus>, ou avec la clé publiée à /.well-known/jwks.json.",
            statement.kid
        ),
    ];
    texts
        .iter()
        .flat_map(|text| wrap(&fonts.regular, PROOF.size, text, CONTENT_W, 6))
        .collect()
}

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
    fn block(&mut self, s: &StatementPdf, block: &Block, top: f32) {
        match block {
            Block::Heading => {
                let mut y = top + TITLE.size;
                self.text(TITLE, MARGIN, y, &title(s));
                y += TITLE.leading;
                let closed = s.closed_at.with_timezone(&s.tz);
                let lines = [
                    format!(
                        "{} – financeur : {}",
                        clean(s.program_name),
                        clean(s.funder_name)
                    ),
                    format!(
                        "Période du {} au {}, close le {} à {}",
                        french_date(s.period_start),
                        french_date(s.period_end),
                        french_date(closed.date_naive()),
                        closed.format("%H:%M")
                    ),
                    format!(
                        "{} {} – total {}",
                        s.total_count,
                        if s.total_count > 1 { "lignes" } else { "ligne" },
                        euros(s.total_cents)
                    ),
                ];
                for line in lines {
                    let line = fit(&self.fonts.regular, SUBTITLE.size, &line, CONTENT_W);
                    self.text(SUBTITLE, MARGIN, y, &line);
                    y += SUBTITLE.leading;
                }
                self.rule(MARGIN, y, CONTENT_W, 1.0, BLUE);
            }
            Block::Venue(section) => {
                let mut y = top + 10.0 + HEADING.size;
                let name = fit(
                    &self.fonts.bold,
                    HEADING.size,
                    &clean(section.venue_name),
                    CONTENT_W,
                );
                self.text(HEADING, MARGIN, y, &name);
                y += HEADING.leading;
                self.text(BODY, MARGIN, y, &format!("SIRET {}", section.venue_siret));
                self.text_right(
                    BODY_BOLD,
                    MARGIN + CONTENT_W,
                    y,
                    &format!("Total : {}", euros(section.total_cents)),
                );
                y += BODY.leading;
                self.text(BODY, MARGIN, y, &section.status);
            }
            Block::TableHead => {
                let y = top + CELL_HEAD.size + 2.0;
                for (i, (name, x, width)) in COLUMNS.iter().enumerate() {
                    if i + 1 == COLUMNS.len() {
                        self.text_right(CELL_HEAD, MARGIN + x + width, y, name);
                    } else {
                        self.text(CELL_HEAD, MARGIN + x, y, name);
                    }
                }
                self.rule(MARGIN, y + 4.0, CONTENT_W, 0.5, GREY);
            }
            Block::Row(line) => {
                let y = top + CELL.size;
                let at = line
                    .redeemed_at
                    .map(|at| at.with_timezone(&s.tz).format("%d/%m/%Y %H:%M").to_string())
                    .unwrap_or_default();
                let cells = [
                    at,
                    line.voucher_id.clone(),
                    line.position.clone(),
                    line.theme.clone(),
                    line.held_on.format("%d/%m/%Y").to_string(),
                ];
                for (cell, (_, x, width)) in cells.iter().zip(COLUMNS) {
                    let cell = fit(&self.fonts.regular, CELL.size, cell, width);
                    self.text(CELL, MARGIN + x, y, &cell);
                }
                let (_, x, width) = COLUMNS[5];
                self.text_right(CELL, MARGIN + x + width, y, &euros(line.amount_cents));
            }
            Block::Proof(lines) => {
                let mut y = top + 20.0;
                self.rule(MARGIN, y - 6.0, CONTENT_W, 1.0, BLUE);
                y += HEADING.size;
                self.text(HEADING, MARGIN, y, "Preuve");
                y += HEADING.leading;
                for line in lines {
                    self.text(PROOF, MARGIN, y, line);
                    y += PROOF.leading;
                }
            }
        }
    }

    fn footer(&mut self, s: &StatementPdf, page: usize, pages: usize) {
        let y = PAGE_H - 30.0;
        self.text(
            SMALL,
            MARGIN,
            y,
            &fit(&self.fonts.regular, SMALL.size, &title(s), CONTENT_W - 80.0),
        );
        self.text_right(
            SMALL,
            MARGIN + CONTENT_W,
            y,
            &format!("page {page} / {pages}"),
        );
    }
}

/// "1 234,56 €": no-break spaces between thousands and before the sign.
pub fn euros(cents: i64) -> String {
    let sign = if cents < 0 { "−" } else { "" };
    let abs = cents.unsigned_abs();
    let units = (abs / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in units.chars().enumerate() {
        if i > 0 && (units.len() - i).is_multiple_of(3) {
            grouped.push('\u{a0}');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped},{:02}\u{a0}€", abs % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euros_are_written_the_french_way() {
        assert_eq!(euros(0), "0,00\u{a0}€");
        assert_eq!(euros(2000), "20,00\u{a0}€");
        assert_eq!(euros(123_456_789), "1\u{a0}234\u{a0}567,89\u{a0}€");
        assert_eq!(euros(-2005), "−20,05\u{a0}€");
    }

    fn statement(lines: usize) -> (Vec<Line>, StatementPdf<'static>) {
        let line = Line {
            redeemed_at: Some(Utc::now()),
            voucher_id: "7885133078171049785".into(),
            position: "3".into(),
            theme: "Envoyer et recevoir des e-mails".into(),
            held_on: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
            amount_cents: 2000,
        };
        let lines = vec![line; lines];
        let pdf = StatementPdf {
            program_name: "Pass numérique Alsace",
            funder_name: "Collectivité européenne d’Alsace",
            number: 3,
            period_start: NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            period_end: NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
            closed_at: Utc::now(),
            tz: chrono_tz::Europe::Paris,
            extract_of: None,
            sections: vec![Section {
                venue_name: "Médiathèque Malraux",
                venue_siret: "90000004300019",
                total_cents: 2000 * lines.len() as i64,
                status: "À payer".into(),
                lines: lines.clone(),
            }],
            total_count: lines.len() as i32,
            total_cents: 2000 * lines.len() as i64,
            sha256: "ab".repeat(32).leak(),
            kid: "2",
            signature: "s".repeat(86).leak(),
        };
        (lines, pdf)
    }

    #[test]
    fn a_long_statement_runs_over_pages_with_the_proof_at_the_end() {
        let (_, pdf) = statement(200);
        let mut blocks = vec![
            Block::Heading,
            Block::Venue(&pdf.sections[0]),
            Block::TableHead,
        ];
        blocks.extend(pdf.sections[0].lines.iter().map(Block::Row));
        blocks.push(Block::Proof(vec!["x".into(); 6]));
        let pages = paginate(&blocks);
        assert!(pages.len() >= 4, "{} pages", pages.len());
        for page in &pages {
            let height: f32 = page.iter().map(|b| b.height()).sum();
            assert!(TOP + height <= BOTTOM, "{height}");
        }
        // A continued table starts with its head again; the proof ends the last page.
        assert!(pages[1..]
            .iter()
            .all(|page| matches!(page[0], Block::TableHead)));
        assert!(matches!(
            pages.last().unwrap().last().unwrap(),
            Block::Proof(_)
        ));
        let rows: usize = pages
            .iter()
            .flatten()
            .filter(|b| matches!(b, Block::Row(_)))
            .count();
        assert_eq!(rows, 200);
        assert!(render(&pdf).unwrap().starts_with(b"%PDF-"));
    }
}
