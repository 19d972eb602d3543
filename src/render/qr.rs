//! QR codes for vouchers: encode once, render as SVG, PNG or a module matrix.
//!
//! Voucher format v1 fixes error-correction level Q and a quiet zone of 4
//! modules. A voucher's text (`PN1:` + Base45) only uses the QR alphanumeric
//! character set, so it is encoded as one alphanumeric segment: the 127
//! characters of a v1 voucher always give a version 8 symbol (49x49 modules),
//! whatever the characters are. (The `qrcode` crate's automatic segmentation
//! may switch to numeric mode for runs of digits, which would make the symbol
//! size depend on the voucher; we do not use it for such text.)

use std::fmt::Write as _;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ExtendedColorType, ImageEncoder};
use qrcode::bits::Bits;
use qrcode::types::QrError as LibError;
use qrcode::{Color, EcLevel, Version};

/// Light margin around the symbol, in modules, in every rendering.
pub const QUIET_ZONE_MODULES: usize = 4;

/// Smallest PNG scale accepted by [`QrCode::to_png`], in pixels per module.
pub const MIN_PIXELS_PER_MODULE: u32 = 8;

/// Largest PNG scale accepted by [`QrCode::to_png`], in pixels per module
/// (a version 8 code is then 1824 px wide; it bounds memory use).
pub const MAX_PIXELS_PER_MODULE: u32 = 32;

/// Error-correction level of every code (voucher format v1: level Q).
const EC_LEVEL: EcLevel = EcLevel::Q;

/// Why a QR code could not be made or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The text does not fit in a version 40 QR code at level Q.
    #[error("text of {len} bytes is too long for a QR code at error correction level Q")]
    TooLong { len: usize },
    /// Any other failure of the QR encoder (not expected for normal QR codes).
    #[error("QR encoding failed: {0}")]
    Encode(LibError),
    /// The PNG scale is outside the accepted range.
    #[error(
        "{requested} pixels per module is outside the accepted range \
         {MIN_PIXELS_PER_MODULE}..={MAX_PIXELS_PER_MODULE}"
    )]
    PixelsPerModule { requested: u32 },
    /// The PNG encoder failed.
    #[error("PNG encoding failed: {0}")]
    Png(#[from] image::ImageError),
}

/// How the text is stored in the code: always one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// QR alphanumeric mode (`0-9A-Z $%*+-./:`), 5.5 bits per character:
    /// used whenever the text allows it, so for every voucher.
    Alphanumeric,
    /// Byte mode, the UTF-8 bytes of the text (8 bits per byte), for any other
    /// text, preceded by the ECI designator for UTF-8 when the text is not
    /// ASCII. Kanji mode is never used: the `qrcode` crate's automatic choice
    /// can mistake UTF-8 bytes for Shift JIS.
    Byte,
}

/// A horizontal run of dark modules, in module coordinates of the symbol
/// (without quiet zone, origin at the top-left module, x to the right,
/// y downwards). Drawing every run as a `len` x 1 rectangle draws the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DarkRun {
    pub x: usize,
    pub y: usize,
    pub len: usize,
}

/// A QR code at error-correction level Q, encoded once and rendered many ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrCode {
    version: i16,
    mode: Mode,
    width: usize,
    /// Row-major, `width * width`, `true` = dark.
    dark: Vec<bool>,
}

impl QrCode {
    /// Encodes `text` at level Q in the smallest version that holds it, as a
    /// single alphanumeric segment when every character allows it, else as a
    /// single byte segment of its UTF-8 bytes (see [`Mode`]).
    pub fn new(text: &str) -> Result<QrCode, QrError> {
        let data = text.as_bytes();
        let mode = if data.iter().all(|&b| is_alphanumeric(b)) {
            Mode::Alphanumeric
        } else {
            Mode::Byte
        };
        let bits = encode_single_segment(data, mode)?;
        let code = qrcode::QrCode::with_bits(bits, EC_LEVEL).map_err(QrError::Encode)?;
        let version = match code.version() {
            Version::Normal(v) | Version::Micro(v) => v,
        };
        Ok(QrCode {
            version,
            mode,
            width: code.width(),
            dark: code
                .into_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect(),
        })
    }

    /// QR version, 1 to 40 (8 for a v1 voucher).
    pub fn version(&self) -> i16 {
        self.version
    }

    /// The single segment mode the text was encoded in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Modules per side of the symbol, without quiet zone (49 for version 8).
    pub fn width_modules(&self) -> usize {
        self.width
    }

    /// Modules per side including the quiet zone on both sides (57 for version 8).
    pub fn width_with_quiet_zone(&self) -> usize {
        self.width + 2 * QUIET_ZONE_MODULES
    }

    /// The dark/light matrix of the symbol without quiet zone, row-major,
    /// [`width_modules`](Self::width_modules) squared entries, `true` = dark.
    pub fn modules(&self) -> &[bool] {
        &self.dark
    }

    /// Whether the module at column `x`, row `y` of the symbol (without quiet
    /// zone) is dark. Coordinates outside the symbol are light.
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.width && self.dark[y * self.width + x]
    }

    /// The dark modules as horizontal runs, row by row, left to right: what a
    /// vector renderer (SVG, PDF) draws as rectangles.
    pub fn dark_runs(&self) -> impl Iterator<Item = DarkRun> + '_ {
        self.dark
            .chunks(self.width)
            .enumerate()
            .flat_map(|(y, row)| row_runs(row).map(move |(x, len)| DarkRun { x, y, len }))
    }

    /// An SVG image of the code with its quiet zone: `viewBox` in modules
    /// (`0 0 57 57` for version 8), no fixed size (it fills the width it is
    /// given; set a size in CSS or on the embedding element), a white
    /// background and the dark modules as one black `<path>` with
    /// `shape-rendering="crispEdges"`.
    ///
    /// With `aria_label` the image gets `role="img"` and that accessible name
    /// (escaped here); without, it is `aria-hidden="true"`, for pages that
    /// give the same information as text next to it.
    pub fn to_svg(&self, aria_label: Option<&str>) -> String {
        let side = self.width_with_quiet_zone();
        let mut svg = String::with_capacity(64 * self.width + 256);
        svg.push_str(r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1""#);
        // Writing to a String cannot fail.
        let _ = write!(
            svg,
            r#" viewBox="0 0 {side} {side}" shape-rendering="crispEdges""#
        );
        match aria_label {
            Some(label) => {
                svg.push_str(r#" role="img" aria-label=""#);
                push_xml_escaped(&mut svg, label);
                svg.push('"');
            }
            None => svg.push_str(r#" aria-hidden="true""#),
        }
        let _ = write!(
            svg,
            r##"><rect width="{side}" height="{side}" fill="#fff"/><path fill="#000" d=""##
        );
        let q = QUIET_ZONE_MODULES;
        for DarkRun { x, y, len } in self.dark_runs() {
            let _ = write!(svg, "M{} {}h{len}v1h-{len}z", x + q, y + q);
        }
        svg.push_str(r#""/></svg>"#);
        svg
    }

    /// A PNG image of the code with its quiet zone: 8-bit grayscale, black
    /// on white, `pixels_per_module` pixels per module, so
    /// `(width_modules() + 8) * pixels_per_module` pixels per side.
    ///
    /// `pixels_per_module` must be in
    /// [`MIN_PIXELS_PER_MODULE`]`..=`[`MAX_PIXELS_PER_MODULE`]: fewer pixels
    /// per module scan badly once printed or scaled.
    pub fn to_png(&self, pixels_per_module: u32) -> Result<Vec<u8>, QrError> {
        if !(MIN_PIXELS_PER_MODULE..=MAX_PIXELS_PER_MODULE).contains(&pixels_per_module) {
            return Err(QrError::PixelsPerModule {
                requested: pixels_per_module,
            });
        }
        // In range, so every size below is small (at most 185 * 32 pixels a side).
        let ppm = pixels_per_module as usize;
        let side_px = self.width_with_quiet_zone() * ppm;
        let quiet_px = QUIET_ZONE_MODULES * ppm;
        const LIGHT: u8 = 0xff;
        const DARK: u8 = 0x00;

        let mut pixels = vec![LIGHT; side_px * side_px];
        let mut line = vec![LIGHT; side_px];
        for (y, row) in self.dark.chunks(self.width).enumerate() {
            line.fill(LIGHT);
            for (x, len) in row_runs(row) {
                let start = quiet_px + x * ppm;
                line[start..start + len * ppm].fill(DARK);
            }
            let top = quiet_px + y * ppm;
            for pixel_row in pixels[top * side_px..(top + ppm) * side_px].chunks_mut(side_px) {
                pixel_row.copy_from_slice(&line);
            }
        }

        let side = u32::try_from(side_px).map_err(|_| QrError::PixelsPerModule {
            requested: pixels_per_module,
        })?;
        // Unfiltered rows compress best while the `ppm` copies of a row fit
        // well in deflate's 32 KiB window (1745 bytes for a voucher at 8 px);
        // beyond, filtering makes each copy a run of zeros.
        let filter = if pixels_per_module <= 10 {
            FilterType::NoFilter
        } else {
            FilterType::Adaptive
        };
        let mut png = Vec::new();
        PngEncoder::new_with_quality(&mut png, CompressionType::Best, filter).write_image(
            &pixels,
            side,
            side,
            ExtendedColorType::L8,
        )?;
        Ok(png)
    }
}

/// Whether `b` is in the QR alphanumeric set, `0-9A-Z $%*+-./:` (the Base45
/// alphabet).
fn is_alphanumeric(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_uppercase() || b" $%*+-./:".contains(&b)
}

/// The data bits of `data` as one segment in `mode`, in the smallest normal
/// QR version that holds them at level Q.
fn encode_single_segment(data: &[u8], mode: Mode) -> Result<Bits, QrError> {
    // Capacity of version 40 at level L in alphanumeric mode, the most of any
    // case here: no need to try 40 versions on a huge input.
    const MAX_CHARS: usize = 4296;
    if data.len() > MAX_CHARS {
        return Err(QrError::TooLong { len: data.len() });
    }
    for v in 1..=40 {
        let mut bits = Bits::new(Version::Normal(v));
        let pushed = match mode {
            Mode::Alphanumeric => bits.push_alphanumeric_data(data),
            // Without ECI, readers guess the charset of byte data (zbar takes
            // UTF-8 for Shift JIS); ECI 26 declares UTF-8.
            Mode::Byte if !data.is_ascii() => bits
                .push_eci_designator(26)
                .and_then(|()| bits.push_byte_data(data)),
            Mode::Byte => bits.push_byte_data(data),
        };
        match pushed.and_then(|()| bits.push_terminator(EC_LEVEL)) {
            Ok(()) => return Ok(bits),
            Err(LibError::DataTooLong) => continue,
            Err(e) => return Err(QrError::Encode(e)),
        }
    }
    Err(QrError::TooLong { len: data.len() })
}

/// The runs of `true` in `row`, as (start, length).
fn row_runs(row: &[bool]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut x = 0;
    std::iter::from_fn(move || {
        let start = x + row.get(x..)?.iter().position(|&d| d)?;
        let len = row[start..].iter().take_while(|&&d| d).count();
        x = start + len;
        Some((start, len))
    })
}

fn push_xml_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE45: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

    /// Deterministic pseudo-random voucher-shaped text: `PN1:` and 123 Base45
    /// characters, with a space and every special character somewhere.
    fn voucher_text(seed: u64) -> String {
        let mut state = seed | 1;
        let mut body: Vec<u8> = (0..123)
            .map(|_| {
                // xorshift64
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                BASE45[(state % 45) as usize]
            })
            .collect();
        body[10..19].copy_from_slice(b" $%*+-./:");
        let text = format!("PN1:{}", String::from_utf8(body).expect("ASCII"));
        assert_eq!(text.len(), 127);
        text
    }

    // ---- An independent reader of the symbol, written from ISO/IEC 18004 ----

    const EC_Q_BITS: u32 = 0b11; // format information: L=01 M=00 Q=11 H=10

    /// BCH(15,5) format information word, before the 0x5412 mask.
    fn format_word(data: u32) -> u32 {
        let mut rem = data;
        for _ in 0..10 {
            rem = (rem << 1) ^ ((rem >> 9) * 0x537);
        }
        (data << 10) | rem
    }

    /// Golay(18,6) version information word.
    fn version_word(version: u32) -> u32 {
        let mut rem = version;
        for _ in 0..12 {
            rem = (rem << 1) ^ ((rem >> 11) * 0x1f25);
        }
        (version << 12) | rem
    }

    /// (EC level bits, mask) read from both copies of the format information.
    fn read_format(code: &QrCode) -> (u32, u32) {
        let size = code.width_modules();
        let bit = |x, y| u32::from(code.is_dark(x, y));
        let (mut first, mut second) = (0, 0);
        for i in 0..15 {
            let (x, y) = match i {
                0..=5 => (8, i),
                6 => (8, 7),
                7 => (8, 8),
                8 => (7, 8),
                _ => (14 - i, 8),
            };
            first |= bit(x, y) << i;
            let (x, y) = if i < 8 {
                (size - 1 - i, 8)
            } else {
                (8, size - 15 + i)
            };
            second |= bit(x, y) << i;
        }
        assert_eq!(first, second, "the two format information copies differ");
        assert!(code.is_dark(8, size - 8), "the always-dark module is light");
        let data = (first ^ 0x5412) >> 10;
        assert_eq!(
            format_word(data) ^ 0x5412,
            first,
            "bad format information BCH"
        );
        (data >> 3, data & 7)
    }

    /// Version read from both copies of the version information (version >= 7).
    fn read_version(code: &QrCode) -> u32 {
        let size = code.width_modules();
        let (mut top_right, mut bottom_left) = (0, 0);
        for i in 0..18 {
            let (a, b) = (size - 11 + i % 3, i / 3);
            top_right |= u32::from(code.is_dark(a, b)) << i;
            bottom_left |= u32::from(code.is_dark(b, a)) << i;
        }
        assert_eq!(
            top_right, bottom_left,
            "the two version information copies differ"
        );
        let version = top_right >> 12;
        assert_eq!(version_word(version), top_right, "bad version information");
        version
    }

    fn is_function_module_v8(x: usize, y: usize) -> bool {
        let size = 49;
        // Finder patterns with separators and format information.
        let (low, high) = (|v: usize| v < 9, |v: usize| v >= size - 8);
        let finder = (low(x) && low(y)) || (high(x) && low(y)) || (low(x) && high(y));
        let timing = x == 6 || y == 6;
        let version_info =
            (x >= size - 11 && x < size - 8 && y < 6) || (y >= size - 11 && y < size - 8 && x < 6);
        let centres = [6usize, 24, 42];
        let alignment = centres.iter().any(|&cx| {
            centres.iter().any(|&cy| {
                !matches!((cx, cy), (6, 6) | (6, 42) | (42, 6))
                    && x.abs_diff(cx) <= 2
                    && y.abs_diff(cy) <= 2
            })
        });
        finder || timing || version_info || alignment
    }

    fn mask_applies(mask: u32, x: usize, y: usize) -> bool {
        match mask {
            0 => (x + y).is_multiple_of(2),
            1 => y.is_multiple_of(2),
            2 => x.is_multiple_of(3),
            3 => (x + y).is_multiple_of(3),
            4 => (x / 3 + y / 2).is_multiple_of(2),
            5 => x * y % 2 + x * y % 3 == 0,
            6 => (x * y % 2 + x * y % 3).is_multiple_of(2),
            _ => ((x + y) % 2 + x * y % 3).is_multiple_of(2),
        }
    }

    /// Reads a version 8, level Q symbol back to its data segments and
    /// returns the text, asserting it is one alphanumeric segment followed by
    /// the terminator.
    fn read_v8_q_alphanumeric(code: &QrCode) -> String {
        assert_eq!(code.width_modules(), 49);
        assert_eq!(read_version(code), 8);
        let (ec, mask) = read_format(code);
        assert_eq!(ec, EC_Q_BITS, "not error correction level Q");

        // Data modules in placement order, unmasked.
        let size = 49;
        let mut bits = Vec::new();
        let mut right = size - 1;
        loop {
            if right == 6 {
                right = 5;
            }
            let upward = (right + 1) & 2 == 0;
            for vert in 0..size {
                let y = if upward { size - 1 - vert } else { vert };
                for x in [right, right - 1] {
                    if !is_function_module_v8(x, y) {
                        bits.push(code.is_dark(x, y) ^ mask_applies(mask, x, y));
                    }
                }
            }
            if right < 2 {
                break;
            }
            right -= 2;
        }
        // 242 codewords: 6 blocks of 22 EC codewords, data 4 x 18 + 2 x 19.
        assert!(bits.len() >= 242 * 8);
        let codewords: Vec<u8> = bits[..242 * 8]
            .chunks(8)
            .map(|b| b.iter().fold(0, |acc, &bit| (acc << 1) | u8::from(bit)))
            .collect();
        let block_lens = [18, 18, 18, 18, 19, 19];
        let mut blocks: Vec<Vec<u8>> = vec![Vec::new(); 6];
        let mut next = codewords.iter();
        for i in 0..19 {
            for (block, &len) in blocks.iter_mut().zip(&block_lens) {
                if i < len {
                    block.push(*next.next().expect("enough codewords"));
                }
            }
        }
        let stream: Vec<bool> = blocks
            .concat()
            .iter()
            .flat_map(|byte| (0..8).rev().map(move |i| byte >> i & 1 == 1))
            .collect();

        let mut pos = 0;
        let mut take = |n: usize| {
            let v = stream[pos..pos + n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 1) | usize::from(b));
            pos += n;
            v
        };
        assert_eq!(take(4), 0b0010, "first segment is not alphanumeric");
        let count = take(9);
        let mut text = String::new();
        for _ in 0..count / 2 {
            let v = take(11);
            text.push(char::from(BASE45[v / 45]));
            text.push(char::from(BASE45[v % 45]));
        }
        if count % 2 == 1 {
            text.push(char::from(BASE45[take(6)]));
        }
        assert_eq!(take(4), 0, "another segment follows the alphanumeric one");
        text
    }

    // ---- Encoding ----

    #[test]
    fn voucher_text_is_version_8_level_q_one_alphanumeric_segment() {
        let text = voucher_text(0x5eed);
        assert!(text.contains(' '));
        let code = QrCode::new(&text).expect("encodes");
        assert_eq!(code.version(), 8);
        assert_eq!(code.width_modules(), 49);
        assert_eq!(code.width_with_quiet_zone(), 57);
        assert_eq!(code.mode(), Mode::Alphanumeric);
        assert_eq!(read_v8_q_alphanumeric(&code), text);
    }

    #[test]
    fn every_voucher_text_gives_the_same_symbol_size() {
        for seed in 1..=40u64 {
            let text = voucher_text(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let code = QrCode::new(&text).expect("encodes");
            assert_eq!(code.version(), 8, "{text}");
            assert_eq!(read_v8_q_alphanumeric(&code), text);
        }
        // Long digit runs would tempt an optimising encoder into numeric mode
        // and a smaller symbol; a voucher is always one alphanumeric segment.
        let digits = format!("PN1:{}", "7".repeat(123));
        let code = QrCode::new(&digits).expect("encodes");
        assert_eq!(code.version(), 8);
        assert_eq!(read_v8_q_alphanumeric(&code), digits);
    }

    #[test]
    fn other_text_is_byte_mode() {
        let code = QrCode::new("pn1:abc").expect("encodes");
        assert_eq!(code.mode(), Mode::Byte);
        assert_eq!(QrCode::new("").expect("encodes").version(), 1);
        // 127 bytes do not fit version 8 in byte mode.
        let lower = voucher_text(3).to_lowercase();
        assert!(QrCode::new(&lower).expect("encodes").version() > 8);
    }

    #[test]
    fn too_long_text_is_refused() {
        // Version 40-Q holds 2420 alphanumeric characters, 1663 bytes.
        assert_eq!(QrCode::new(&"A".repeat(2420)).expect("fits").version(), 40);
        assert!(matches!(
            QrCode::new(&"A".repeat(2421)),
            Err(QrError::TooLong { len: 2421 })
        ));
        assert_eq!(QrCode::new(&"a".repeat(1663)).expect("fits").version(), 40);
        assert!(matches!(
            QrCode::new(&"a".repeat(1664)),
            Err(QrError::TooLong { .. })
        ));
        assert!(matches!(
            QrCode::new(&"A".repeat(1_000_000)),
            Err(QrError::TooLong { .. })
        ));
    }

    #[test]
    fn dark_runs_cover_exactly_the_dark_modules() {
        let code = QrCode::new(&voucher_text(7)).expect("encodes");
        let w = code.width_modules();
        let mut seen = vec![false; w * w];
        let mut previous: Option<DarkRun> = None;
        for run in code.dark_runs() {
            assert!(run.len > 0 && run.x + run.len <= w && run.y < w);
            if let Some(p) = previous {
                // In order, and maximal: two runs never touch.
                assert!(p.y < run.y || p.x + p.len < run.x, "{p:?} then {run:?}");
            }
            for x in run.x..run.x + run.len {
                seen[run.y * w + x] = true;
            }
            previous = Some(run);
        }
        assert_eq!(seen, code.modules());
        assert!(!code.is_dark(w, 0) && !code.is_dark(0, w));
    }

    // ---- PNG ----

    fn decode_png(png: &[u8]) -> image::GrayImage {
        image::load_from_memory_with_format(png, image::ImageFormat::Png)
            .expect("valid PNG")
            .into_luma8()
    }

    #[test]
    fn png_is_the_modules_scaled_with_a_light_quiet_zone() {
        let code = QrCode::new(&voucher_text(11)).expect("encodes");
        for ppm in [MIN_PIXELS_PER_MODULE, 9, MAX_PIXELS_PER_MODULE] {
            let png = code.to_png(ppm).expect("renders");
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            let img = decode_png(&png);
            assert_eq!(img.dimensions(), ((49 + 8) * ppm, (49 + 8) * ppm));
            let q = QUIET_ZONE_MODULES as u32;
            for (px, py, pixel) in img.enumerate_pixels() {
                let (mx, my) = (px / ppm, py / ppm);
                let in_symbol = (q..q + 49).contains(&mx) && (q..q + 49).contains(&my);
                let dark = in_symbol && code.is_dark((mx - q) as usize, (my - q) as usize);
                assert_eq!(pixel.0[0], if dark { 0 } else { 255 }, "pixel {px},{py}");
            }
        }
    }

    #[test]
    fn png_scale_out_of_range_is_refused() {
        let code = QrCode::new("PN1:TEST").expect("encodes");
        for ppm in [
            0,
            1,
            MIN_PIXELS_PER_MODULE - 1,
            MAX_PIXELS_PER_MODULE + 1,
            u32::MAX,
        ] {
            let refused = code.to_png(ppm);
            assert!(
                matches!(refused, Err(QrError::PixelsPerModule { requested }) if requested == ppm),
                "{ppm} px/module: {refused:?}"
            );
        }
    }

    // ---- SVG ----

    #[test]
    fn svg_has_module_viewbox_crisp_edges_and_the_modules() {
        let code = QrCode::new(&voucher_text(13)).expect("encodes");
        let svg = code.to_svg(None);
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#));
        assert!(svg.contains(r#"viewBox="0 0 57 57""#));
        assert!(svg.contains(r#"shape-rendering="crispEdges""#));
        assert!(svg.contains(r##"<rect width="57" height="57" fill="#fff"/>"##));
        assert!(svg.contains(r#"aria-hidden="true""#) && !svg.contains("role="));
        let svg_tag = &svg[..svg.find('>').expect("tag")];
        assert!(!svg_tag.contains(" width=") && !svg_tag.contains(" height="));
        assert_eq!(svg.matches("<path").count(), 1);
        assert!(svg.ends_with(r#""/></svg>"#));

        // Redraw the path: it must give exactly the dark modules, all inside
        // the quiet zone.
        let d_start = svg.find(r#" d=""#).expect("path data") + 4;
        let d = &svg[d_start..svg.len() - r#""/></svg>"#.len()];
        let mut dark = vec![false; 57 * 57];
        for rect in d.split('z').filter(|r| !r.is_empty()) {
            let nums: Vec<usize> = rect
                .split(['M', ' ', 'h', 'v'])
                .filter(|n| !n.is_empty())
                .map(|n| n.trim_start_matches('-').parse().expect("number"))
                .collect();
            let [x, y, len, 1, back] = nums[..] else {
                panic!("unexpected path segment {rect:?}");
            };
            assert_eq!(len, back);
            assert!(x >= 4 && y >= 4 && x + len <= 53 && y < 53, "{rect}");
            for i in x..x + len {
                dark[y * 57 + i] = true;
            }
        }
        for y in 0..57 {
            for x in 0..57 {
                let expected = x >= 4 && y >= 4 && code.is_dark(x - 4, y - 4);
                assert_eq!(dark[y * 57 + x], expected, "module {x},{y}");
            }
        }
    }

    #[test]
    fn svg_label_is_escaped() {
        let svg = QrCode::new("PN1:X")
            .expect("encodes")
            .to_svg(Some(r#"Bon n°3 <"atelier" & 'web'>"#));
        assert!(svg.contains(
            r#" role="img" aria-label="Bon n°3 &lt;&quot;atelier&quot; &amp; &apos;web&apos;&gt;""#
        ));
        assert!(!svg.contains("aria-hidden"));
    }

    // ---- A real scanner: zbarimg (package zbar-tools) ----

    /// Decodes a PNG with `zbarimg --raw -q` (QR codes only) and returns the
    /// one symbol found; the line end zbarimg adds is removed, nothing else.
    fn zbarimg(png: &[u8]) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("passnum-render-qr-{}-{n}.png", std::process::id()));
        std::fs::write(&path, png).expect("write temporary PNG");
        let output = std::process::Command::new("zbarimg")
            // QR only: zbar's linear decoders find spurious barcodes inside
            // a QR code (e.g. a Codabar "A:6D").
            .args(["--raw", "-q", "--nodbus", "-Sdisable", "-Sqrcode.enable"])
            .arg(&path)
            .output();
        let _ = std::fs::remove_file(&path);
        let output = match output {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "zbarimg not found: install zbar-tools (apt-get install -y zbar-tools) \
                 to run the QR decode test"
            ),
            Err(e) => panic!("could not run zbarimg: {e}"),
        };
        assert!(
            output.status.success(),
            "zbarimg found no code ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let text = String::from_utf8(output.stdout).expect("zbarimg printed UTF-8");
        match text.strip_suffix('\n') {
            Some(text) if !text.contains('\n') => text.to_string(),
            _ => panic!("zbarimg did not find exactly one symbol: {text:?}"),
        }
    }

    #[test]
    fn zbarimg_reads_back_the_exact_text() {
        let texts = [
            voucher_text(0x5eed),
            voucher_text(42),
            format!("PN1:{}", "7".repeat(123)),
            "PN1:  $%*+-./:0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ  ".to_string(),
            "pass numérique: bon n°3 €".to_string(),
        ];
        for text in &texts {
            let code = QrCode::new(text).expect("encodes");
            for ppm in [MIN_PIXELS_PER_MODULE, 12] {
                let png = code.to_png(ppm).expect("renders");
                assert_eq!(&zbarimg(&png), text, "at {ppm} px/module");
            }
        }
    }
}
