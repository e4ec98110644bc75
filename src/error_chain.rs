//! An error and its causes as one line: what `anyhow`'s `{:#}` prints,
//! without `anyhow` in the library (it stays at the CLI and HTTP edges).

use std::error::Error;

/// `error`'s message followed by each of its sources', joined with `": "`
/// (`cannot write x: permission denied`), as `format!("{:#}",
/// anyhow::Error::from(error))` writes it.
pub(crate) fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error with an optional cause.
    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Layer {
        message: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn layer(message: &'static str, source: Option<Layer>) -> Layer {
        Layer {
            message,
            source: source.map(Box::new),
        }
    }

    #[test]
    fn joins_the_messages_of_the_whole_chain() {
        let error = layer(
            "cannot record the run",
            Some(layer(
                "cannot write audit.jsonl",
                Some(layer("disk full", None)),
            )),
        );
        assert_eq!(
            chain(&error),
            "cannot record the run: cannot write audit.jsonl: disk full"
        );
        assert_eq!(chain(&layer("alone", None)), "alone");
    }
}
