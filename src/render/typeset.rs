//! Typesetting shared by the PDFs (the book, the statement): the compiled-in
//! DejaVu Sans fonts measured from their own `cmap` and `hmtx` tables, line
//! breaking, drawing primitives on a krilla surface, and French wording.
//!
//! Rendering is pure: no I/O, no clock, no font lookup. Measuring (for
//! wrapping and alignment) and drawing use the same tables, so they always
//! agree; there is no kerning.

use std::ops::Range;
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};
use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::num::NormalizedF32;
use krilla::paint::{Fill, FillRule, LineJoin, Paint, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, GlyphId, KrillaGlyph};

pub type Rgb = (u8, u8, u8);
pub const BLACK: Rgb = (0, 0, 0);
pub const WHITE: Rgb = (255, 255, 255);
/// Headings and accents: dark blue, 10:1 contrast on white.
pub const BLUE: Rgb = (0, 61, 122);
/// Light tint behind highlighted text, still black-on-light for contrast.
pub const TINT: Rgb = (225, 236, 248);
pub const GREY: Rgb = (90, 90, 90);

#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub bold: bool,
    pub size: f32,
    /// Distance from one baseline to the next.
    pub leading: f32,
    pub color: Rgb,
}

impl Style {
    pub const fn regular(size: f32, leading: f32, color: Rgb) -> Style {
        Style {
            bold: false,
            size,
            leading,
            color,
        }
    }

    pub const fn bold(size: f32, leading: f32, color: Rgb) -> Style {
        Style {
            bold: true,
            ..Style::regular(size, leading, color)
        }
    }
}

/// Drawing on a page with the compiled-in fonts; a renderer gives its
/// surface and fonts and gets the primitives.
pub trait Pen<'p> {
    fn surface(&mut self) -> &mut Surface<'p>;
    fn fonts(&self) -> &'static Fonts;

    fn face(&self, style: Style) -> &'static Face {
        if style.bold {
            &self.fonts().bold
        } else {
            &self.fonts().regular
        }
    }

    fn width(&self, style: Style, text: &str) -> f32 {
        self.face(style).width(style.size, text)
    }

    /// Draws `text` wrapped to `width` (at most `max_lines`) from baseline
    /// `y`; returns the baseline of the line after it.
    fn paragraph(
        &mut self,
        style: Style,
        x: f32,
        mut y: f32,
        width: f32,
        max_lines: usize,
        text: &str,
    ) -> f32 {
        for line in wrap(self.face(style), style.size, text, width, max_lines) {
            self.text(style, x, y, &line);
            y += style.leading;
        }
        y
    }

    /// Draws one line of text with its baseline starting at (`x`, `y`).
    fn text(&mut self, style: Style, x: f32, y: f32, text: &str) {
        if text.is_empty() {
            return;
        }
        let face = self.face(style);
        let glyphs = face.shape(text);
        self.surface().set_stroke(None);
        self.surface().set_fill(Some(fill(style.color)));
        self.surface().draw_glyphs(
            Point::from_xy(x, y),
            &glyphs,
            face.font.clone(),
            text,
            style.size,
            false,
        );
    }

    /// Draws one line of text ending at `right`.
    fn text_right(&mut self, style: Style, right: f32, y: f32, text: &str) {
        let width = self.width(style, text);
        self.text(style, right - width, y, text);
    }

    fn rect(
        &mut self,
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill_rgb: Option<Rgb>,
        stroke: Option<(Rgb, f32)>,
    ) {
        let Some(rect) = Rect::from_xywh(x, y, w, h) else {
            return;
        };
        let mut path = PathBuilder::new();
        path.push_rect(rect);
        let Some(path) = path.finish() else {
            return;
        };
        self.surface().set_fill(fill_rgb.map(fill));
        self.surface().set_stroke(stroke.map(|(rgb, width)| Stroke {
            paint: color(rgb),
            width,
            line_join: LineJoin::Miter,
            ..Stroke::default()
        }));
        self.surface().draw_path(&path);
        self.surface().set_stroke(None);
    }

    fn rule(&mut self, x: f32, y: f32, w: f32, thickness: f32, rgb: Rgb) {
        self.rect(x, y - thickness / 2.0, w, thickness, Some(rgb), None);
    }
}

pub fn fill(rgb: Rgb) -> Fill {
    Fill {
        paint: color(rgb),
        opacity: NormalizedF32::ONE,
        rule: FillRule::NonZero,
    }
}

pub fn color((r, g, b): Rgb) -> Paint {
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
pub fn french_date(date: NaiveDate) -> String {
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
pub fn french_km(km: f64) -> Option<String> {
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

pub fn plural<'w>(count: usize, one: &'w str, many: &'w str) -> &'w str {
    if count > 1 {
        many
    } else {
        one
    }
}

/// `text` ending with a full stop, unless it already ends a sentence.
pub fn sentence(text: &str) -> String {
    let text = text.trim_end();
    if text.ends_with(['.', '!', '?', '…']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// Text from the outside on one line: control characters and runs of white
/// space become single spaces, ends trimmed (no-break spaces are kept).
pub fn clean(text: &str) -> String {
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
pub fn wrap(face: &Face, size: f32, text: &str, width: f32, max_lines: usize) -> Vec<String> {
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
pub fn fit(face: &Face, size: f32, text: &str, width: f32) -> String {
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

pub struct Fonts {
    pub regular: Face,
    pub bold: Face,
}

/// The compiled-in fonts, read once per process.
pub fn fonts() -> Option<&'static Fonts> {
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
pub struct Face {
    pub font: Font,
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
        ['a', 'é', '’', '✂', '…']
            .iter()
            .all(|&c| face.glyph(c) != 0)
            .then_some(face)
    }

    /// Glyphs for `text`, one per character, for the PDF writer. A character
    /// the font lacks gets glyph 0 (a box); its text still extracts.
    pub fn shape(&self, text: &str) -> Vec<KrillaGlyph> {
        text.char_indices()
            .map(|(i, c)| {
                let glyph = self.glyph(c);
                let range: Range<usize> = i..i + c.len_utf8();
                let advance = self.glyph_advance(glyph) / self.units_per_em;
                KrillaGlyph::new(
                    GlyphId::new(u32::from(glyph)),
                    advance,
                    0.0,
                    0.0,
                    0.0,
                    range,
                    None,
                )
            })
            .collect()
    }

    /// Width of `text` set at `size` points.
    pub fn width(&self, size: f32, text: &str) -> f32 {
        text.chars().map(|c| self.advance(c)).sum::<f32>() * size
    }

    /// Advance of one character, in ems.
    pub fn advance(&self, c: char) -> f32 {
        self.glyph_advance(self.glyph(c)) / self.units_per_em
    }

    pub fn glyph_advance(&self, glyph: u16) -> f32 {
        let index = usize::from(glyph).min(self.h_metrics - 1);
        f32::from(be_u16(self.hmtx, 4 * index).unwrap_or(0))
    }

    /// The glyph of `c`, 0 (missing) outside the table.
    pub fn glyph(&self, c: char) -> u16 {
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
    let glyph = be_u16(
        subtable,
        range_offset_at + range_offset + 2 * usize::from(c - start),
    )?;
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
