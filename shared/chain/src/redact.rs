//! Removes URLs from error text before it is logged or stored: RPC endpoints carry provider API
//! keys in their path, query or user info (`https://eth-mainnet.g.alchemy.com/v2/<key>`), and
//! HTTP client errors quote the full request URL ("error sending request for url (…)").

/// Placeholder written where a URL was.
pub const REDACTED_URL: &str = "<url redacted>";

/// `text` with every `scheme://…` URL replaced by [`REDACTED_URL`]. A URL ends at whitespace or
/// at a character that cannot end one in prose (`)`, `"`, `'`, `>`, `,`).
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme: the ASCII letters (and `+.-`) right before "://".
        let head = &rest[..at];
        let scheme_len = head
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'))
            .map(char::len_utf8)
            .sum::<usize>();
        let start = at - scheme_len;
        let tail = &rest[at + 3..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | '>' | ','))
            .unwrap_or(tail.len());
        out.push_str(&rest[..start]);
        out.push_str(REDACTED_URL);
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_keys_are_removed_and_the_rest_is_kept() {
        let text = "error sending request for url (https://user:pw@eth.example/v2/SECRETKEY?k=SECRET2): connection refused";
        let redacted = redact_urls(text);
        assert!(!redacted.contains("SECRET"), "{redacted}");
        assert!(!redacted.contains("pw@"), "{redacted}");
        assert_eq!(
            redacted,
            "error sending request for url (<url redacted>): connection refused"
        );
    }

    #[test]
    fn several_urls_and_text_without_urls() {
        assert_eq!(
            redact_urls("a http://x/1 b wss://y/2"),
            "a <url redacted> b <url redacted>"
        );
        assert_eq!(
            redact_urls("nonce too low: ünïcode"),
            "nonce too low: ünïcode"
        );
        assert_eq!(redact_urls("://"), "<url redacted>");
    }
}
