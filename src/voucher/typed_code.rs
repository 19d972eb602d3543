//! The typed code: the voucher_id in Crockford Base32 plus a Luhn mod 32 check
//! symbol, printed as `XXXX-XXXX-XXXX-XX` for when the camera fails. It carries
//! no signature, so it is redeemable only online by an authenticated venue.

use super::body::MAX_VOUCHER_ID;
use super::error::{BodyError, MalformedCode};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// 13 symbols of 5 bits hold the 63-bit id (65 bits, the top two always 0).
const DATA_SYMBOLS: usize = 13;
const SYMBOLS: usize = DATA_SYMBOLS + 1;
/// Hyphens go after these many symbols: `XXXX-XXXX-XXXX-XX`.
const GROUP: usize = 4;

/// Formats a voucher id; ids outside `1..=2^63-1` have no typed code.
pub fn encode(voucher_id: u64) -> Result<String, BodyError> {
    if voucher_id == 0 || voucher_id > MAX_VOUCHER_ID {
        return Err(BodyError::VoucherIdOutOfRange(voucher_id));
    }
    Ok(format(voucher_id))
}

/// Formatting without the range check, for ids already validated.
pub(super) fn format(voucher_id: u64) -> String {
    let mut values = [0u8; SYMBOLS];
    for (i, value) in values[..DATA_SYMBOLS].iter_mut().enumerate() {
        let shift = 5 * (DATA_SYMBOLS - 1 - i);
        // `shift` is at most 60 and the mask keeps 5 bits.
        *value = ((voucher_id >> shift) & 0x1f) as u8;
    }
    values[DATA_SYMBOLS] = check_value(&values[..DATA_SYMBOLS]);
    let mut code = String::with_capacity(SYMBOLS + SYMBOLS / GROUP);
    for (i, &value) in values.iter().enumerate() {
        if i > 0 && i % GROUP == 0 {
            code.push('-');
        }
        code.push(char::from(ALPHABET[usize::from(value)]));
    }
    code
}

/// Reads a typed code back to its voucher id. Forgiving about how people type
/// (case, hyphens, spaces, I/L for 1, O for 0), strict about everything else.
pub fn decode(input: &str) -> Result<u64, MalformedCode> {
    let mut values = [0u8; SYMBOLS];
    let mut found = 0usize;
    for character in input.trim().chars() {
        if character == '-' || character == ' ' {
            continue;
        }
        let value = symbol_value(character).ok_or(MalformedCode::TypedCodeSymbol(character))?;
        if let Some(slot) = values.get_mut(found) {
            *slot = value;
        }
        found += 1;
    }
    if found == 0 {
        return Err(MalformedCode::Empty);
    }
    if found != SYMBOLS {
        return Err(MalformedCode::TypedCodeLength { found });
    }
    let (data, check) = values.split_at(DATA_SYMBOLS);
    if data[0] > 7 {
        return Err(MalformedCode::TypedCodeTooLarge(char::from(
            ALPHABET[usize::from(data[0])],
        )));
    }
    if check[0] != check_value(data) {
        return Err(MalformedCode::TypedCodeCheck);
    }
    let voucher_id = data
        .iter()
        .fold(0u64, |id, &value| id << 5 | u64::from(value));
    if voucher_id == 0 {
        return Err(BodyError::VoucherIdOutOfRange(0).into());
    }
    Ok(voucher_id)
}

fn symbol_value(character: char) -> Option<u8> {
    let symbol = match character.to_ascii_uppercase() {
        'I' | 'L' => '1',
        'O' => '0',
        other => other,
    };
    let position = ALPHABET.iter().position(|&s| char::from(s) == symbol)?;
    u8::try_from(position).ok()
}

/// Luhn mod 32 check value: from the rightmost data symbol leftwards, values
/// are multiplied by 2, 1, 2, 1…, the base-32 digits of each product summed.
/// It catches every single-symbol error and most swaps of adjacent symbols.
fn check_value(data: &[u8]) -> u8 {
    let mut sum = 0u32;
    let mut factor = 2;
    for &value in data.iter().rev() {
        let addend = factor * u32::from(value);
        sum += addend / 32 + addend % 32;
        factor = 3 - factor;
    }
    // The result is below 32.
    ((32 - sum % 32) % 32) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn worked_example() {
        // 1 = symbols 0000000000001; the rightmost has factor 2: sum 2, check 30 = 'Y'.
        assert_eq!(encode(1).as_deref(), Ok("0000-0000-0000-1Y"));
        assert_eq!(decode("0000-0000-0000-1Y"), Ok(1));
        assert_eq!(encode(MAX_VOUCHER_ID).as_deref(), Ok("7ZZZ-ZZZZ-ZZZZ-ZY"));
        assert_eq!(decode("7ZZZ-ZZZZ-ZZZZ-ZY"), Ok(MAX_VOUCHER_ID));
    }

    #[test]
    fn out_of_range_ids_have_no_code() {
        assert_eq!(encode(0), Err(BodyError::VoucherIdOutOfRange(0)));
        assert_eq!(
            encode(1 << 63),
            Err(BodyError::VoucherIdOutOfRange(1 << 63))
        );
        // The all-zero code has a correct check symbol but names no voucher.
        assert_eq!(
            decode("0000-0000-0000-00"),
            Err(MalformedCode::Body(BodyError::VoucherIdOutOfRange(0)))
        );
    }

    #[test]
    fn wrong_check_symbol_is_rejected() {
        let code = encode(123_456_789_012_345).expect("valid id");
        let last = code.chars().last().expect("non-empty code");
        for symbol in ALPHABET.iter().map(|&s| char::from(s)) {
            let mut typed = code[..code.len() - 1].to_string();
            typed.push(symbol);
            let expected = if symbol == last {
                Ok(123_456_789_012_345)
            } else {
                Err(MalformedCode::TypedCodeCheck)
            };
            assert_eq!(decode(&typed), expected, "{typed}");
        }
    }

    #[test]
    fn every_single_symbol_error_is_caught() {
        let code: Vec<char> = encode(0x1234_5678_9abc_def0)
            .expect("valid id")
            .chars()
            .collect();
        for i in (0..code.len()).filter(|&i| code[i] != '-') {
            for symbol in ALPHABET.iter().map(|&s| char::from(s)) {
                if symbol == code[i] {
                    continue;
                }
                let mut typed = code.clone();
                typed[i] = symbol;
                let typed: String = typed.into_iter().collect();
                assert!(decode(&typed).is_err(), "{typed}");
            }
        }
    }

    #[test]
    fn first_symbol_above_7_is_rejected() {
        // Same data as 0000-0000-0000-1Y with the top symbol 8: valid check, too large.
        let mut data = [0u8; DATA_SYMBOLS];
        data[0] = 8;
        data[12] = 1;
        let check = char::from(ALPHABET[usize::from(check_value(&data))]);
        let typed = format!("8000-0000-0000-1{check}");
        assert_eq!(decode(&typed), Err(MalformedCode::TypedCodeTooLarge('8')));
        assert_eq!(
            decode("Z000-0000-0000-1Y"),
            Err(MalformedCode::TypedCodeTooLarge('Z'))
        );
    }

    #[test]
    fn u_and_foreign_symbols_are_rejected() {
        assert_eq!(
            decode("U000-0000-0000-1Y"),
            Err(MalformedCode::TypedCodeSymbol('U'))
        );
        assert_eq!(
            decode("0000-0000-0000-1u"),
            Err(MalformedCode::TypedCodeSymbol('u'))
        );
        assert_eq!(
            decode("0000_0000_0000_1Y"),
            Err(MalformedCode::TypedCodeSymbol('_'))
        );
        assert_eq!(
            decode("0000-0000-0000-1É"),
            Err(MalformedCode::TypedCodeSymbol('É'))
        );
    }

    #[test]
    fn people_may_type_loosely() {
        let id = 0x0123_4567_89ab_cdef;
        let code = encode(id).expect("valid id");
        assert_eq!(decode(&code.to_lowercase()), Ok(id));
        assert_eq!(decode(&code.replace('-', "")), Ok(id));
        assert_eq!(decode(&code.replace('-', " ")), Ok(id));
        assert_eq!(decode(&format!("  {code}\r\n")), Ok(id));
        assert_eq!(decode("OOOO-oooo-OOOO-iy"), Ok(1));
        assert_eq!(decode("0000 0000 0000 lY"), Ok(1));
        assert_eq!(decode("0000-0000-0000-LY"), Ok(1));
    }

    #[test]
    fn wrong_length_and_empty_are_rejected() {
        assert_eq!(decode(""), Err(MalformedCode::Empty));
        assert_eq!(decode(" - - "), Err(MalformedCode::Empty));
        assert_eq!(
            decode("0000-0000-0000-1"),
            Err(MalformedCode::TypedCodeLength { found: 13 })
        );
        assert_eq!(
            decode("0000-0000-0000-1Y0"),
            Err(MalformedCode::TypedCodeLength { found: 15 })
        );
    }

    proptest! {
        #[test]
        fn round_trip(id in 1..=MAX_VOUCHER_ID) {
            let code = encode(id).expect("valid id");
            prop_assert_eq!(code.len(), 17);
            prop_assert_eq!(decode(&code), Ok(id));
        }

        #[test]
        fn decode_never_panics(input in "\\PC*") {
            let _ = decode(&input);
        }

        #[test]
        fn decode_never_panics_on_near_codes(input in "[0-9A-Za-z -]{10,20}") {
            let _ = decode(&input);
        }
    }
}
