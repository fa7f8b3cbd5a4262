//! How an error reaches a person: its whole chain of causes on one line, each cause once.
//! Many errors quote their source in their own message (object_store's "Error performing
//! GET …: <the HTTP error>"), so printing the chain as it is (`{:#}`) says the same thing
//! two or three times. One renderer for the CLI, the agent's failure reports and logs.

/// `context: cause: root cause`, without a cause that an earlier message already quotes.
/// For an `anyhow::Error` pass `err.as_ref()`.
pub fn render(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let s = cause.to_string();
        if !out.contains(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use std::fmt;

    #[derive(Debug)]
    struct E(String, Option<Box<E>>);
    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn a_cause_its_parent_quotes_is_said_once() {
        let root = E("404 Not Found".into(), None);
        let get = E("Error performing GET /k: 404 Not Found".into(), Some(Box::new(root)));
        let top = E("cannot read s3://b/k".into(), Some(Box::new(get)));
        assert_eq!(super::render(&top), "cannot read s3://b/k: Error performing GET /k: 404 Not Found");
    }
}
