//! Redaction of secrets in URLs: what an agent (`GET /api/records`' `last_error`) or a log
//! line sees of a webhook URL keeps its scheme, host, port and path, and loses the userinfo
//! (`user:password@`), the query (`?api_token=…`) and the fragment, where CRMs put tokens.
//!
//! Must not: keep or log what it removes.

use std::sync::LazyLock;

use regex::Regex;

/// What stands in for a removed part.
const HIDDEN: &str = "REDACTED";

/// A URL without its userinfo, query and fragment. Text that is not a URL is replaced whole
/// (it cannot be told which part of it is secret).
pub fn url(raw: &str) -> String {
    match reqwest::Url::parse(raw) {
        Ok(mut u) => {
            if !u.username().is_empty() || u.password().is_some() {
                // Only fails for URLs that cannot have userinfo, which have none to hide.
                let _ = u.set_username(HIDDEN);
                let _ = u.set_password(None);
            }
            if u.query().is_some() {
                u.set_query(Some(HIDDEN));
            }
            if u.fragment().is_some() {
                u.set_fragment(Some(HIDDEN));
            }
            u.to_string()
        }
        Err(_) => format!("<{HIDDEN} URL>"),
    }
}

/// `text` with every `http://` or `https://` URL in it passed through [`url`] (error
/// messages of HTTP clients and config parsers quote the URL they were given).
pub fn text(text: &str) -> String {
    static URL: LazyLock<Regex> = LazyLock::new(|| {
        // A URL runs to the first space, quote or bracket that cannot be part of it.
        Regex::new(r#"(?i)https?://[^\s"'<>()\[\]{}`]+"#).expect("a valid regex")
    });
    URL.replace_all(text, |c: &regex::Captures<'_>| url(&c[0]))
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_query_and_fragment_are_hidden() {
        assert_eq!(
            url("https://bot:hunter2@crm.example:8443/hooks/lead?api_token=s3cret&x=1#frag"),
            "https://REDACTED@crm.example:8443/hooks/lead?REDACTED#REDACTED"
        );
        assert_eq!(url("http://crm.example/in"), "http://crm.example/in");
        assert_eq!(url("not a url s3cret"), "<REDACTED URL>");
    }

    #[test]
    fn urls_inside_messages_are_hidden() {
        let m = "error sending request for url (http://crm.example/in?api_token=s3cret): refused";
        assert_eq!(
            text(m),
            "error sending request for url (http://crm.example/in?REDACTED): refused"
        );
        assert_eq!(text("webhook answered 500"), "webhook answered 500");
    }
}
