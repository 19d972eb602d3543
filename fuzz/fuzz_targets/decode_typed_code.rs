//! Any string given to the typed-code decoder: no panic, and an accepted code
//! names a valid voucher_id whose own code decodes to it again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passnum::voucher::{typed_code, MAX_VOUCHER_ID};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    if let Ok(id) = typed_code::decode(&input) {
        assert!((1..=MAX_VOUCHER_ID).contains(&id));
        let code = typed_code::encode(id).expect("decoded ids are in range");
        assert_eq!(typed_code::decode(&code), Ok(id));
    }
});
