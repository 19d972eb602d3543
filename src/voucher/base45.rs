//! Base45 (RFC 9285): bytes as symbols of the QR alphanumeric alphabet, so the
//! voucher text fits QR alphanumeric mode. The decoder is strict: every input
//! has at most one decoding, and anything RFC 9285 calls invalid is refused.

use thiserror::Error;

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// Symbol value by ASCII code; `NONE` marks bytes outside the alphabet.
const NONE: u8 = u8::MAX;
const VALUES: [u8; 128] = {
    let mut table = [NONE; 128];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Why a string is not valid Base45. Indexes count characters from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Base45Error {
    #[error("character {character:?} at index {index} is not in the Base45 alphabet")]
    InvalidCharacter { character: char, index: usize },
    #[error("a single symbol is left at the end; Base45 groups are 2 or 3 symbols")]
    DanglingSymbol,
    #[error("the group of 3 symbols at index {index} has value {value}, above 65535")]
    TripletTooLarge { index: usize, value: u32 },
    #[error("the final pair of symbols at index {index} has value {value}, above 255")]
    PairTooLarge { index: usize, value: u32 },
}

/// Encodes bytes as Base45: 3 symbols per 2 bytes, 2 for a final odd byte.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(2) * 3);
    let mut push = |mut value: u32, symbols: usize| {
        for _ in 0..symbols {
            out.push(char::from(ALPHABET[(value % 45) as usize]));
            value /= 45;
        }
    };
    let mut pairs = bytes.chunks_exact(2);
    for pair in &mut pairs {
        push(u32::from(pair[0]) << 8 | u32::from(pair[1]), 3);
    }
    if let [last] = *pairs.remainder() {
        push(u32::from(last), 2);
    }
    out
}

/// Decodes strict Base45 (upper case only; the text decoder normalises case).
pub fn decode(text: &str) -> Result<Vec<u8>, Base45Error> {
    let values = text
        .chars()
        .enumerate()
        .map(|(index, character)| {
            symbol_value(character).ok_or(Base45Error::InvalidCharacter { character, index })
        })
        .collect::<Result<Vec<u8>, _>>()?;

    let mut out = Vec::with_capacity(values.len() / 3 * 2 + 1);
    let mut triplets = values.chunks_exact(3);
    for (n, triplet) in (&mut triplets).enumerate() {
        let value = group_value(triplet);
        let word = u16::try_from(value).map_err(|_| Base45Error::TripletTooLarge {
            index: n * 3,
            value,
        })?;
        out.extend_from_slice(&word.to_be_bytes());
    }
    match *triplets.remainder() {
        [] => {}
        [_] => return Err(Base45Error::DanglingSymbol),
        ref pair @ [_, _, ..] => {
            let value = group_value(pair);
            let byte = u8::try_from(value).map_err(|_| Base45Error::PairTooLarge {
                index: values.len() - 2,
                value,
            })?;
            out.push(byte);
        }
    }
    Ok(out)
}

fn symbol_value(character: char) -> Option<u8> {
    let code = usize::try_from(u32::from(character)).ok()?;
    VALUES.get(code).copied().filter(|&value| value != NONE)
}

/// Little-endian in base 45: the first symbol is the least significant.
fn group_value(symbols: &[u8]) -> u32 {
    symbols
        .iter()
        .rev()
        .fold(0, |acc, &symbol| acc * 45 + u32::from(symbol))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc9285_examples() {
        for (bytes, text) in [
            (&b"AB"[..], "BB8"),
            (b"Hello!!", "%69 VD92EX0"),
            (b"base-45", "UJCLQE7W581"),
            (b"ietf!", "QED8WEX0"),
            (b"", ""),
        ] {
            assert_eq!(encode(bytes), text);
            assert_eq!(decode(text).as_deref(), Ok(bytes));
        }
    }

    #[test]
    fn triplet_above_65535_is_rejected() {
        assert_eq!(
            decode("GGW"),
            Err(Base45Error::TripletTooLarge {
                index: 0,
                value: 65536
            })
        );
        assert_eq!(decode("FGW"), Ok(vec![0xff, 0xff]));
        assert!(matches!(
            decode("BB8GGW"),
            Err(Base45Error::TripletTooLarge { index: 3, .. })
        ));
    }

    #[test]
    fn pair_above_255_is_rejected() {
        // "U5" = 30 + 5 * 45 = 255 is the largest valid pair; "V5" is 256.
        assert_eq!(decode("U5"), Ok(vec![255]));
        assert_eq!(
            decode("BB8V5"),
            Err(Base45Error::PairTooLarge {
                index: 3,
                value: 256
            })
        );
        assert!(matches!(
            decode("::"),
            Err(Base45Error::PairTooLarge { value: 2024, .. })
        ));
    }

    #[test]
    fn lone_trailing_symbol_is_rejected() {
        assert_eq!(decode("0"), Err(Base45Error::DanglingSymbol));
        assert_eq!(decode("BB80"), Err(Base45Error::DanglingSymbol));
    }

    #[test]
    fn symbols_outside_the_alphabet_are_rejected() {
        for (text, character, index) in [
            ("bb8", 'b', 0),
            ("BB8#", '#', 3),
            ("B=8", '=', 1),
            ("BB\n", '\n', 2),
            ("BBé", 'é', 2),
            ("BB\u{0}", '\u{0}', 2),
        ] {
            assert_eq!(
                decode(text),
                Err(Base45Error::InvalidCharacter { character, index }),
                "{text:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decode(&encode(&bytes)), Ok(bytes));
        }

        #[test]
        fn decode_never_panics(text in "\\PC*") {
            let _ = decode(&text);
        }

        #[test]
        fn accepted_text_is_canonical(text in "[0-9A-Z $%*+./:-]{0,40}") {
            // Strictness means one text per byte string: re-encoding gives it back.
            if let Ok(bytes) = decode(&text) {
                prop_assert_eq!(encode(&bytes), text);
            }
        }
    }
}
