//! [`ErrorChain`]: an error with its sources on one line, for logs and messages.
//!
//! Many errors say only the outermost part (reqwest: "error sending request", Azure: "HTTP
//! request failed"); the cause is in their `source()` chain.

use std::error::Error;
use std::fmt;

/// Displays an error and its sources as `outer: inner: root`.
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn every_source_follows_the_error_outermost_first() {
        let root = Layer("connection refused", None);
        let middle = Layer("error sending request", Some(Box::new(root)));
        let outer = Layer("fetching key", Some(Box::new(middle)));
        assert_eq!(
            ErrorChain(&outer).to_string(),
            "fetching key: error sending request: connection refused"
        );
    }

    #[test]
    fn an_error_without_sources_is_shown_alone() {
        assert_eq!(
            ErrorChain(&Layer("timed out", None)).to_string(),
            "timed out"
        );
    }
}
