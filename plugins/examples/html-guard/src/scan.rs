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
/// its line number. A clean page costs no allocation: names and values are compared in place,
/// and text is only built for a finding.
pub fn scan(html: &str, allowed_form_targets: &[&str]) -> Vec<Finding> {
    let bytes = html.as_bytes();
    let mut findings = Vec::new();
    let mut extra = 0usize;
    let mut i = 0;
    // Line numbers are only needed for a finding, so they are counted then, moving forward from
    // the last one (linear in the page size; a clean page never counts them).
    let counted = std::cell::Cell::new((1usize, 0usize));
    let line_of = |at: usize| {
        let (line, from) = counted.get();
        let line = line + bytes[from..at].iter().filter(|&&b| b == b'\n').count();
        counted.set((line, at));
        line
    };
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
        let line = || line_of(start);
        check_tag(
            &bytes[start..end],
            &line,
            allowed_form_targets,
            &mut |code, message| {
                if findings.len() < MAX_FINDINGS {
                    findings.push(Finding {
                        code,
                        message: message(),
                    });
                } else {
                    extra += 1;
                }
            },
        );
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

/// Text of a finding, built only when it is kept.
type Report<'a> = dyn FnMut(&'static str, &dyn Fn() -> String) + 'a;

fn lower(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_lowercase()
}

fn check_tag(tag: &[u8], line: &dyn Fn() -> usize, allowed: &[&str], report: &mut Report<'_>) {
    let name_len = tag[1..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let name = &tag[1..1 + name_len];
    let is = |wanted: &str| name.eq_ignore_ascii_case(wanted.as_bytes());
    if is("script") {
        report("script_tag", &|| {
            format!("line {}: <script> is not allowed", line())
        });
    } else if ["iframe", "object", "embed", "frame", "frameset", "applet"]
        .iter()
        .any(|n| is(n))
    {
        report("embedded_content", &|| {
            format!("line {}: <{}> is not allowed", line(), lower(name))
        });
    }
    let (is_meta, is_form) = (is("meta"), is("form"));
    for (attr, value) in attributes(tag) {
        if attr.len() > 2 && attr[..2].eq_ignore_ascii_case(b"on") {
            report("inline_handler", &|| {
                format!(
                    "line {}: inline event handler {}= is not allowed",
                    line(),
                    lower(attr)
                )
            });
        }
        if ["javascript:", "vbscript:", "data:text/html"]
            .iter()
            .any(|scheme| compact_starts_with(value, scheme.as_bytes()))
        {
            report("javascript_url", &|| {
                format!("line {}: {}= holds a script URL", line(), lower(attr))
            });
        }
        if is_meta
            && attr.eq_ignore_ascii_case(b"http-equiv")
            && trim(value).eq_ignore_ascii_case(b"refresh")
        {
            report("meta_refresh", &|| {
                format!("line {}: <meta http-equiv=refresh> is not allowed", line())
            });
        }
        if is_form
            && attr.eq_ignore_ascii_case(b"action")
            && is_offsite(trim(value))
            && !allowed
                .iter()
                .any(|a| starts_with_ignore_case(value, a.as_bytes()))
        {
            report("offsite_form", &|| {
                format!(
                    "line {}: a form posts to {}, off this site",
                    line(),
                    lower(trim(value))
                )
            });
        }
    }
}

fn starts_with_ignore_case(value: &[u8], prefix: &[u8]) -> bool {
    value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Whether `value`, with ASCII whitespace and control characters left out, starts with
/// `prefix` (lowercase), ignoring case.
fn compact_starts_with(value: &[u8], prefix: &[u8]) -> bool {
    let mut wanted = prefix.iter();
    let mut next = wanted.next();
    for &b in value {
        let want = match next {
            Some(&want) => want,
            None => return true,
        };
        if b.is_ascii_whitespace() || b.is_ascii_control() {
            continue;
        }
        if b.to_ascii_lowercase() != want {
            return false;
        }
        next = wanted.next();
    }
    next.is_none()
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |p| p + 1);
    &value[start..end.max(start)]
}

fn is_offsite(action: &[u8]) -> bool {
    starts_with_ignore_case(action, b"http://")
        || starts_with_ignore_case(action, b"https://")
        || action.starts_with(b"//")
}

/// The tag's attributes as `(name, value)` slices of the tag, values unquoted.
fn attributes(tag: &[u8]) -> Attributes<'_> {
    let mut inner = tag;
    while let [b'<', rest @ ..] = inner {
        inner = rest;
    }
    while let [rest @ .., b'>'] = inner {
        inner = rest;
    }
    while let [rest @ .., b'/'] = inner {
        inner = rest;
    }
    let at = inner
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'/')
        .unwrap_or(inner.len());
    Attributes { bytes: inner, at }
}

struct Attributes<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Attributes<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let bytes = self.bytes;
        let mut i = self.at;
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
            let name = &bytes[start..i];
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let mut value: &[u8] = &[];
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
                    value = &bytes[vstart..i];
                    i += 1;
                } else {
                    let vstart = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                        i += 1;
                    }
                    value = &bytes[vstart..i];
                }
            }
            if !name.is_empty() {
                self.at = i;
                return Some((name, value));
            }
        }
        self.at = bytes.len();
        None
    }
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
    fn case_and_spacing_tricks_are_still_found() {
        assert_eq!(
            codes("<A HREF=\"\tJava\nScript:alert(1)\" OnMouseOver=x>"),
            ["javascript_url", "inline_handler"]
        );
        let found = scan("<FORM ACTION=' HTTPS://Evil.Example/x '>", &[]);
        assert_eq!(
            found[0].message,
            "line 1: a form posts to https://evil.example/x, off this site"
        );
        assert_eq!(codes("<Meta HTTP-EQUIV=' Refresh '>"), ["meta_refresh"]);
        assert_eq!(
            scan("<IFRAME src=x>", &[])[0].message,
            "line 1: <iframe> is not allowed"
        );
        assert!(codes("<a href=\"java\">x</a><p on>x</p><form action=/x>").is_empty());
    }

    #[test]
    fn findings_past_the_limit_are_summarised() {
        let found = scan(&"<script>".repeat(MAX_FINDINGS + 3), &[]);
        assert_eq!(found.len(), MAX_FINDINGS + 1);
        assert_eq!(found[MAX_FINDINGS].message, "3 more findings not listed");
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
