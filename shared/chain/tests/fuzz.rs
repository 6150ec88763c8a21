//! Property tests of the address and chains.toml parsers on hostile input: never a panic,
//! oversize input refused, and EIP-55 held exactly. `PROPTEST_CASES` sets the number of cases
//! (`make fuzz` runs many more than `make test`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use meshpay_chain::config::MAX_CONFIG_BYTES;
use meshpay_chain::{Address, AddressError, ChainsConfig, ConfigError, parse_address};
use proptest::prelude::*;

const DEV_FILE: &str = include_str!("../../../chains.dev.toml");

/// `PROPTEST_CASES` cases (256 unless set); a failure prints its shrunk input instead of
/// writing a regressions file into the source tree.
fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text as a caller or a config file might hold it: mostly short, sometimes up to 64 KiB.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => any::<String>(),
        8 => "(0x)?[0-9a-fA-FxX ]{0,48}",
        1 => proptest::collection::vec(any::<char>(), 0..=65_536)
            .prop_map(|chars| chars.into_iter().collect::<String>()),
    ]
}

/// One edit of a text: a cut, an insertion, or a value swapped for another token.
#[derive(Debug, Clone)]
enum Edit {
    Cut { at: usize, len: usize },
    Insert { at: usize, text: String },
    Value { nth: usize, with: String },
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop_oneof![
        Just("\"\"".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1e400".to_owned()),
        Just("\"0x5fbdb2315678afecb367f032d93F642f64180aa3\"".to_owned()),
        "\"[ -~]{0,40}\"",
        "[0-9]{1,80}",
    ];
    prop_oneof![
        (any::<usize>(), 0usize..200).prop_map(|(at, len)| Edit::Cut { at, len }),
        (any::<usize>(), any::<String>()).prop_map(|(at, text)| Edit::Insert { at, text }),
        (any::<usize>(), token).prop_map(|(nth, with)| Edit::Value { nth, with }),
    ]
}

/// The largest char boundary of `text` at or below `at % (len + 1)`.
fn boundary(text: &str, at: usize) -> usize {
    let mut at = at % (text.len() + 1);
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(mut text: String, edit: &Edit) -> String {
    match edit {
        Edit::Cut { at, len } => {
            let start = boundary(&text, *at);
            let end = boundary(&text, start.saturating_add(*len).min(text.len()));
            text.replace_range(start..end.max(start), "");
        }
        Edit::Insert { at, text: inserted } => {
            let at = boundary(&text, *at);
            text.insert_str(at, inserted);
        }
        Edit::Value { nth, with } => {
            let values: Vec<usize> = text.match_indices(" = ").map(|(i, _)| i + 3).collect();
            if let Some(&start) = values.get(nth % values.len().max(1)) {
                let end = text[start..].find('\n').map_or(text.len(), |n| start + n);
                text.replace_range(start..end, with);
            }
        }
    }
    text
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn address_parser_never_panics_and_accepts_only_0x_and_40_hex(text in any_text()) {
        if parse_address(&text).is_ok() {
            prop_assert_eq!(text.len(), 42);
            prop_assert!(text.starts_with("0x"));
        }
    }

    #[test]
    fn address_in_checksummed_lower_or_upper_form_parses_to_itself(bytes in any::<[u8; 20]>()) {
        let address = Address::from(bytes);
        let checksummed = address.to_checksum(None);
        let hex = &checksummed[2..];
        for form in [
            checksummed.clone(),
            format!("0x{}", hex.to_ascii_lowercase()),
            format!("0x{}", hex.to_ascii_uppercase()),
        ] {
            prop_assert_eq!(parse_address(&form), Ok(address), "{}", form);
        }
    }

    #[test]
    fn address_with_one_letter_case_flipped_is_a_checksum_error_unless_no_case_is_mixed(
        bytes in any::<[u8; 20]>(),
        pick in any::<usize>(),
    ) {
        let checksummed = Address::from(bytes).to_checksum(None);
        let letters: Vec<usize> = checksummed
            .char_indices()
            .skip(2)
            .filter(|(_, c)| c.is_ascii_alphabetic())
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!letters.is_empty());
        let at = letters[pick % letters.len()];
        let mut flipped = checksummed.into_bytes();
        flipped[at] ^= 0x20;
        let flipped = String::from_utf8(flipped).unwrap();
        let hex = &flipped[2..];
        let mixed = hex.bytes().any(|b| b.is_ascii_lowercase())
            && hex.bytes().any(|b| b.is_ascii_uppercase());
        if mixed {
            prop_assert_eq!(parse_address(&flipped), Err(AddressError::Checksum), "{}", flipped);
        } else {
            prop_assert_eq!(parse_address(&flipped), Ok(Address::from(bytes)));
        }
    }

    #[test]
    fn chains_loader_never_panics_on_any_text(text in any_text()) {
        let _ = ChainsConfig::from_toml_str(&text);
    }

    #[test]
    fn chains_loader_never_panics_on_an_edited_real_file(
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let text = edits.iter().fold(DEV_FILE.to_owned(), apply);
        let _ = ChainsConfig::from_toml_str(&text);
    }

    #[test]
    fn chains_config_over_the_bound_is_refused_before_parsing(extra in 1usize..65_536) {
        // A valid file padded with comment lines: only its size is wrong.
        let line = "# padding\n";
        let mut text = DEV_FILE.to_owned();
        text.push_str(&line.repeat((MAX_CONFIG_BYTES - DEV_FILE.len()) / line.len() + 1));
        text.push_str(&"#".repeat(extra));
        prop_assert!(
            matches!(ChainsConfig::from_toml_str(&text), Err(ConfigError::TooLarge { .. })),
            "{} bytes accepted", text.len()
        );
    }
}

#[test]
fn real_file_parses_and_load_refuses_a_file_over_the_bound() {
    ChainsConfig::from_toml_str(DEV_FILE).unwrap();
    let path = std::env::temp_dir().join(format!("chains-oversize-{}.toml", std::process::id()));
    let mut text = DEV_FILE.to_owned();
    text.push_str(&"#".repeat(MAX_CONFIG_BYTES));
    std::fs::write(&path, &text).unwrap();
    let loaded = ChainsConfig::load(&path);
    std::fs::remove_file(&path).unwrap();
    assert!(
        matches!(loaded, Err(ConfigError::TooLarge { .. })),
        "{loaded:?}"
    );
}
