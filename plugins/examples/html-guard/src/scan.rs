//! The scanner behind `html-guard`, plain Rust with no plugin ABI, so berth's benchmark can run
//! exactly the same check natively for comparison.

/// One problem found in the HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub code: &'static str,
    pub message: String,
}

/// At most this many findings are reported (the rest are summarised in the last one).
pub const MAX_FINDINGS: usize = 20;

/// Scans `html` tag by tag (case-insensitively, ignoring comments) and reports each finding with
/// its line number.
pub fn scan(html: &str, allowed_form_targets: &[&str]) -> Vec<Finding> {
    let bytes = html.as_bytes();
    let mut findings = Vec::new();
    let mut extra = 0usize;
    let mut report = |code: &'static str, message: String, findings: &mut Vec<Finding>| {
        if findings.len() < MAX_FINDINGS {
            findings.push(Finding { code, message });
        } else {
            extra += 1;
        }
    };
    let mut i = 0;
    // Line numbers are counted as the scan moves forward (linear in the page size).
    let (mut line, mut counted_to) = (1usize, 0usize);
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'<') {
        let start = i + offset;
        if bytes[start..].starts_with(b"<!--") {
            i = match find(bytes, start + 4, b"-->") {
                Some(end) => end + 3,
                None => bytes.len(),
            };
            continue;
        }
        let end = tag_end(bytes, start + 1);
        let tag = &html[start..end];
        line += bytes[counted_to..start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = start;
        check_tag(tag, line, allowed_form_targets, &mut |code, message| {
            report(code, message, &mut findings)
        });
        i = end.max(start + 1);
    }
    if extra > 0 {
        findings.push(Finding {
            code: "more_findings",
            message: format!("{} more findings not listed", extra),
        });
    }
    findings
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes[from.min(bytes.len())..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The index just past the `>` closing the tag that starts before `from`, honouring quotes.
fn tag_end(bytes: &[u8], from: usize) -> usize {
    let mut quote = None;
    let mut i = from;
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (None, b'"') | (None, b'\'') => quote = Some(bytes[i]),
            (Some(q), b) if b == q => quote = None,
            (None, b'>') => return i + 1,
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

fn check_tag(
    tag: &str,
    line: usize,
    allowed: &[&str],
    report: &mut dyn FnMut(&'static str, String),
) {
    let lower = tag.to_ascii_lowercase();
    let name: String = lower[1..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    match name.as_str() {
        "script" => report(
            "script_tag",
            format!("line {}: <script> is not allowed", line),
        ),
        "iframe" | "object" | "embed" | "frame" | "frameset" | "applet" => report(
            "embedded_content",
            format!("line {}: <{}> is not allowed", line, name),
        ),
        _ => {}
    }
    for (attr, value) in attributes(&lower) {
        if attr.starts_with("on") && attr.len() > 2 {
            report(
                "inline_handler",
                format!(
                    "line {}: inline event handler {}= is not allowed",
                    line, attr
                ),
            );
        }
        let compact: String = value
            .chars()
            .filter(|c| !c.is_ascii_whitespace() && !c.is_ascii_control())
            .collect();
        if compact.starts_with("javascript:")
            || compact.starts_with("vbscript:")
            || compact.starts_with("data:text/html")
        {
            report(
                "javascript_url",
                format!("line {}: {}= holds a script URL", line, attr),
            );
        }
        if name == "meta" && attr == "http-equiv" && value.trim() == "refresh" {
            report(
                "meta_refresh",
                format!("line {}: <meta http-equiv=refresh> is not allowed", line),
            );
        }
        if name == "form"
            && attr == "action"
            && is_offsite(&value)
            && !allowed
                .iter()
                .any(|a| value.starts_with(&a.to_ascii_lowercase()))
        {
            report(
                "offsite_form",
                format!(
                    "line {}: a form posts to {}, off this site",
                    line,
                    value.trim()
                ),
            );
        }
    }
}

fn is_offsite(action: &str) -> bool {
    let action = action.trim();
    action.starts_with("http://") || action.starts_with("https://") || action.starts_with("//")
}

/// The tag's attributes as `(name, value)`, values unquoted.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let inner = tag
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim_end_matches('/');
    let bytes = inner.as_bytes();
    let mut i = bytes
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'/')
        .unwrap_or(bytes.len());
    let mut out = Vec::new();
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && bytes[i] != b'='
            && bytes[i] != b'/'
        {
            i += 1;
        }
        let name = inner[start..i].to_string();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let quote = bytes[i];
                let vstart = i + 1;
                i = vstart;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
                value = inner[vstart..i].to_string();
                i += 1;
            } else {
                let vstart = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = inner[vstart..i].to_string();
            }
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(html: &str) -> Vec<&'static str> {
        scan(html, &[]).into_iter().map(|f| f.code).collect()
    }

    #[test]
    fn clean_html_passes() {
        assert!(codes("<h1 class=\"title\">Hi</h1><p>Some <a href=\"https://x.example\">link</a></p><form action=\"/subscribe\"></form>").is_empty());
    }

    #[test]
    fn each_finding_is_reported() {
        let html = "<SCRIPT>x</SCRIPT>\n<img src=x onerror='alert(1)'>\n<a href=\" JaVaScRiPt:alert(1)\">x</a>\n<iframe src=//e></iframe>\n<meta http-equiv=\"refresh\" content=\"0;url=//e\">\n<form action=\"https://evil.example/steal\">";
        assert_eq!(
            codes(html),
            [
                "script_tag",
                "inline_handler",
                "javascript_url",
                "embedded_content",
                "meta_refresh",
                "offsite_form"
            ]
        );
        assert!(scan(html, &[])[1].message.starts_with("line 2:"));
    }

    #[test]
    fn comments_and_quoted_brackets_do_not_confuse_it() {
        assert!(codes("<!-- <script> --><p title=\"a > b\">ok</p>").is_empty());
        assert_eq!(
            codes("<p title=\"a > b\" onclick=x>ok</p>"),
            ["inline_handler"]
        );
    }

    #[test]
    fn allowed_form_targets_pass() {
        assert!(scan(
            "<form action=\"https://forms.example.com/x\">",
            &["https://forms.example.com"]
        )
        .is_empty());
    }
}
