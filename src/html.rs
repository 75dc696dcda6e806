//! Text into HTML: the one escape every page that carries data goes
//! through (the gateway's own pages, the Apple emulator's, the demo app's).
//!
//! A leaf, so the stand-in servers ([`crate::httpd`]) need nothing of the
//! proxy to write a page.

/// Escapes text for HTML element content and attribute values (quoted
/// with `"` or `'`).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_both_quotes() {
        assert_eq!(
            escape(r#"<a href="x" title='y'>&amp;</a>"#),
            "&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;amp;&lt;/a&gt;"
        );
        assert_eq!(
            escape("jane.appleseed@example.com"),
            "jane.appleseed@example.com"
        );
    }
}
