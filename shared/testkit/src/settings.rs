//! Settings lookups for the libraries' `from_lookup` parsers: tests hand them a fixed table
//! instead of the process environment (which the binary alone reads).

/// A lookup answering `pairs` (name → value) and `None` for every other name.
pub fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_the_names_it_was_given() {
        let get = lookup(&[("A", "1")]);
        assert_eq!(get("A").as_deref(), Some("1"));
        assert_eq!(get("B"), None);
    }
}
