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
    // Line numbers are only needed for a finding, so they are counted then, moving forward from
    // the last one (linear in the page size; a clean page never counts them).
    let counted = std::cell::Cell::new((1usize, 0usize));
    let line_of = |at: usize| {
        let (line, from) = counted.get();
        let line = line + bytes[from..at].iter().filter(|&&b| b == b'\n').count();
        counted.set((line, at));
        line
    };
    for_each_tag(bytes, |tag| {
        let start = tag.start;
        let line = || line_of(start);
        check_tag(
            bytes,
            tag,
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
    });
    if extra > 0 {
        findings.push(Finding {
            code: "more_findings",
            message: format!("{} more findings not listed", extra),
        });
    }
    findings
}

/// Calls `tag` with each tag of `bytes`, as the range from its `<` to just past its `>` (or to
/// the end of the page), honouring quoted attribute values and skipping comments.
///
/// It reads the page sixteen bytes at a time and stops only at the bytes that can change what
/// is being read (`<`, `>` and quotes), so most bytes cost a fraction of an instruction, in
/// WebAssembly as natively. The state is two local variables, so that it stays in registers.
fn for_each_tag(bytes: &[u8], mut tag: impl FnMut(std::ops::Range<usize>)) {
    /// `start` between tags.
    const TEXT: usize = usize::MAX;
    // Where the open tag starts, and the quote of the value being read in it (0: none).
    let (mut start, mut quote) = (TEXT, 0u8);
    let mut at = 0;
    while at < bytes.len() {
        let here = chunk(&bytes[at..]);
        let mut hits = positions(&here, b"<>\"'");
        let mut next = at + CHUNK;
        while hits != 0 {
            let i = at + hits.trailing_zeros() as usize;
            hits &= hits - 1;
            let b = bytes[i];
            if start == TEXT {
                if b != b'<' {
                    continue;
                }
                if bytes[i..].starts_with(b"<!--") {
                    next = bytes[i + 4..]
                        .windows(3)
                        .position(|w| w == b"-->")
                        .map_or(bytes.len(), |p| i + 4 + p + 3);
                    break;
                }
                start = i;
            } else if quote != 0 {
                if b == quote {
                    quote = 0;
                }
            } else if b == b'>' {
                tag(start..i + 1);
                start = TEXT;
            } else if b != b'<' {
                quote = b;
            }
        }
        at = next;
    }
    if start != TEXT {
        tag(start..bytes.len());
    }
}

/// Whether any attribute of the tag at `tag` of `page` could be a finding outside `<meta>`: only
/// a value holding a `:` can be a script URL, and only a name starting with `on` an event
/// handler, and a name starts after whitespace, `/` or a closing quote. In a `<form>` (`form`),
/// an action off the site holds a `:` (`https:`) or starts with `//`. Most tags have none of
/// these, and skip the attribute by attribute reading (a test checks that this never hides a
/// finding).
fn may_hold_findings(page: &[u8], tag: std::ops::Range<usize>, form: bool) -> bool {
    let starts_on = |at: usize| {
        at > tag.start
            && at + 1 < tag.end
            && is_separator(page[at - 1])
            && (page[at + 1] | 0x20) == b'n'
    };
    // Chunks are read from the page, past the tag's end where there is more page (bits past
    // the end are ignored), so a short tag needs no copying. A plain loop, not an iterator: in
    // WebAssembly each closure left out of line costs a call per chunk.
    let mut at = tag.start;
    // Whether the byte before this chunk is a `/` (of the tag).
    let mut slash_before = 0;
    while at < tag.end {
        let chunk = chunk(&page[at..]);
        let inside = match tag.end - at {
            n if n >= CHUNK => u32::MAX,
            n => (1 << n) - 1,
        };
        if positions(&chunk, b":") & inside != 0 {
            return true;
        }
        if form {
            let slashes = positions(&chunk, b"/") & inside;
            if slashes & (slashes << 1 | slash_before) != 0 {
                return true;
            }
            slash_before = slashes >> (CHUNK - 1);
        }
        let mut o = positions(&chunk, b"oO") & inside;
        while o != 0 {
            if starts_on(at + o.trailing_zeros() as usize) {
                return true;
            }
            o &= o - 1;
        }
        at += CHUNK;
    }
    false
}

/// Whether `b` is whitespace, `/` or a quote, after which an attribute's name can start.
fn is_separator(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\n' | b'\x0c' | b'\r' | b'/' | b'"' | b'\''
    )
}

/// The scanner's searches test sixteen bytes per step, with the vector instructions of the
/// target: WebAssembly's 128-bit SIMD (the plugin is built with `simd128`) or x86-64's SSE2, and
/// a plain loop elsewhere. A unit test compares the vector search it is built with to the plain
/// loop, and one of berth's tests compares the shipped module (its SIMD path) with this scanner
/// compiled natively, on random pages.
const CHUNK: usize = 16;

/// The first sixteen bytes of `bytes`, padded with zeros (which no search looks for).
fn chunk(bytes: &[u8]) -> [u8; CHUNK] {
    let mut chunk = [0; CHUNK];
    match bytes.get(..CHUNK) {
        // A fixed-size copy, which compiles to one load.
        Some(whole) => chunk.copy_from_slice(whole),
        None => chunk[..bytes.len()].copy_from_slice(bytes),
    }
    chunk
}

/// Bit `k` is set where `chunk[k]` is one of `needles`.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn positions<const N: usize>(chunk: &[u8; CHUNK], needles: &[u8; N]) -> u32 {
    use core::arch::wasm32::{i8x16_bitmask, i8x16_eq, u8x16_splat, v128, v128_load, v128_or};
    // SAFETY: `chunk` is 16 readable bytes, and `v128.load` needs no alignment.
    let bytes = unsafe { v128_load(chunk.as_ptr() as *const v128) };
    let hits = needles.iter().fold(u8x16_splat(0), |hits, &needle| {
        v128_or(hits, i8x16_eq(bytes, u8x16_splat(needle)))
    });
    i8x16_bitmask(hits) as u32
}

/// Bit `k` is set where `chunk[k]` is one of `needles`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn positions<const N: usize>(chunk: &[u8; CHUNK], needles: &[u8; N]) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
        _mm_setzero_si128,
    };
    // SAFETY: SSE2 is part of every x86-64 processor, `chunk` is 16 readable bytes, and
    // `loadu` needs no alignment.
    unsafe {
        let bytes = _mm_loadu_si128(chunk.as_ptr() as *const __m128i);
        let hits = needles.iter().fold(_mm_setzero_si128(), |hits, &needle| {
            _mm_or_si128(hits, _mm_cmpeq_epi8(bytes, _mm_set1_epi8(needle as i8)))
        });
        _mm_movemask_epi8(hits) as u32
    }
}

#[cfg(not(any(
    all(target_arch = "wasm32", target_feature = "simd128"),
    target_arch = "x86_64"
)))]
fn positions<const N: usize>(chunk: &[u8; CHUNK], needles: &[u8; N]) -> u32 {
    positions_one_by_one(chunk, needles)
}

/// [`positions`] a byte at a time, on targets without vector instructions (and for the test).
#[allow(dead_code)]
fn positions_one_by_one(chunk: &[u8; CHUNK], needles: &[u8]) -> u32 {
    (0..CHUNK)
        .filter(|&k| needles.contains(&chunk[k]))
        .fold(0, |bits, k| bits | 1 << k)
}

/// Text of a finding, built only when it is kept.
type Report<'a> = dyn FnMut(&'static str, &dyn Fn() -> String) + 'a;

fn lower(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_lowercase()
}

/// The findings in the tag at `range` of `page`.
fn check_tag(
    page: &[u8],
    range: std::ops::Range<usize>,
    line: &dyn Fn() -> usize,
    allowed: &[&str],
    report: &mut Report<'_>,
) {
    let tag = &page[range.clone()];
    let name = TagName::at(&page[range.start + 1..]);
    if name == SCRIPT {
        report("script_tag", &|| {
            format!("line {}: <script> is not allowed", line())
        });
    } else if let Some((embedded, _)) = EMBEDDED.iter().find(|(_, packed)| name == *packed) {
        report("embedded_content", &|| {
            format!("line {}: <{}> is not allowed", line(), embedded)
        });
    }
    let (is_meta, is_form) = (name == META, name == FORM);
    if is_meta || may_hold_findings(page, range, is_form) {
        check_attributes(tag, (is_meta, is_form), line, allowed, report);
    }
}

const SCRIPT: TagName = TagName::of(b"script");
const META: TagName = TagName::of(b"meta");
const FORM: TagName = TagName::of(b"form");
/// Tags that embed other content, packed once when berth is built.
const EMBEDDED: [(&str, TagName); 6] = [
    ("iframe", TagName::of(b"iframe")),
    ("object", TagName::of(b"object")),
    ("embed", TagName::of(b"embed")),
    ("frame", TagName::of(b"frame")),
    ("frameset", TagName::of(b"frameset")),
    ("applet", TagName::of(b"applet")),
];

/// A tag's name (its ASCII letters and digits after the `<`), lowercased and packed into one
/// word when it has at most eight characters, so that comparing it with a wanted name is one
/// comparison rather than a loop per character; every name berth looks for is that short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TagName(u64);

impl TagName {
    /// No name looked for is longer than this.
    const MAX: usize = 8;
    /// Names longer than [`TagName::MAX`] (or holding no letter), which match nothing looked for.
    const OTHER: TagName = TagName(0);

    /// The name that starts `bytes` (whatever follows the `<`).
    fn at(bytes: &[u8]) -> TagName {
        // The first eight bytes as one word, and the ninth. Read in place (one load); a copy
        // into a buffer would be a call to `memcpy` natively, and one to `memory.copy` in
        // WebAssembly. Only the page's last few bytes take the slow way.
        let (head, ninth) = match bytes.get(..Self::MAX + 1) {
            Some(nine) => {
                let mut word = [0; Self::MAX];
                word.copy_from_slice(&nine[..Self::MAX]);
                (u64::from_le_bytes(word), nine[Self::MAX])
            }
            None => (
                bytes.iter().rev().fold(0, |word, &b| word << 8 | b as u64),
                0,
            ),
        };
        let len = match alphanumeric_prefix(head) {
            Self::MAX if ninth.is_ascii_alphanumeric() => return Self::OTHER,
            len => len,
        };
        // Bit 0x20 lowercases an ASCII letter and leaves a digit as it is.
        let kept = if len == 0 {
            0
        } else {
            u64::MAX >> (64 - 8 * len)
        };
        TagName((head | 0x2020_2020_2020_2020) & kept)
    }

    /// `name` (lowercase, at most [`TagName::MAX`] bytes) as [`TagName::at`] packs it.
    const fn of(name: &[u8]) -> TagName {
        let mut word = 0u64;
        let mut i = name.len();
        while i > 0 {
            i -= 1;
            word = word << 8 | name[i] as u64;
        }
        TagName(word)
    }
}

/// How many of the eight bytes of `word` (first byte lowest) are ASCII letters or digits
/// before the first that is not, with a few word-wide operations instead of a loop.
fn alphanumeric_prefix(word: u64) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // The top bit of each byte of the result is set where that byte, if below 0x80, lies in
    // `lo..=hi` (no carry or borrow crosses bytes for such values).
    let within = |x: u64, lo: u8, hi: u8| {
        (x + ONES * (0x80 - lo as u64)) & (ONES * (0x80 + hi as u64) - x) & HIGH
    };
    let ascii = !word & HIGH;
    let seven = word & !HIGH;
    let letter = within(seven | (ONES * 0x20), b'a', b'z');
    let digit = within(seven, b'0', b'9');
    let other = (!(letter | digit) & ascii) | (!ascii & HIGH);
    (other.trailing_zeros() / 8) as usize
}

/// The findings in `tag`'s attributes (the pair says whether the tag is a `<meta>`, a `<form>`).
fn check_attributes(
    tag: &[u8],
    (is_meta, is_form): (bool, bool),
    line: &dyn Fn() -> usize,
    allowed: &[&str],
    report: &mut Report<'_>,
) {
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

    /// Tags (or whole pages) of random bytes drawn mostly from the characters the scanner
    /// looks at, comment marks and form actions among them, from a fixed seed.
    fn random_inputs(count: usize, max_len: u64) -> impl Iterator<Item = Vec<u8>> {
        const ALPHABET: &[u8] = b"<>\"'/= \t\nonONOxjJ:aA-!";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..count).map(move |_| {
            let len = (next() % max_len) as usize;
            let mut input = Vec::with_capacity(len + 3);
            while input.len() < len {
                match next() % 40 {
                    0 | 1 => input.push((next() % 256) as u8),
                    2 => input.extend_from_slice(b"<!--"),
                    3 => input.extend_from_slice(b"-->"),
                    4 => input.extend_from_slice(b" action="),
                    _ => input.push(ALPHABET[(next() % ALPHABET.len() as u64) as usize]),
                }
            }
            input
        })
    }

    /// The tags as a plain byte-by-byte reading finds them.
    fn tags_byte_by_byte(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
        let (mut tags, mut i) = (Vec::new(), 0);
        while let Some(start) = (i..bytes.len()).find(|&at| bytes[at] == b'<') {
            if bytes[start..].starts_with(b"<!--") {
                i = (start + 4..bytes.len())
                    .find(|&at| bytes[at..].starts_with(b"-->"))
                    .map_or(bytes.len(), |at| at + 3);
                continue;
            }
            let (mut end, mut quote) = (bytes.len(), None);
            for (at, &b) in bytes.iter().enumerate().skip(start + 1) {
                match (quote, b) {
                    (None, b'"') | (None, b'\'') => quote = Some(b),
                    (Some(q), b) if b == q => quote = None,
                    (None, b'>') => {
                        end = at + 1;
                        break;
                    }
                    _ => {}
                }
            }
            tags.push(start..end);
            i = end;
        }
        tags
    }

    #[test]
    fn vector_searches_find_what_a_byte_search_finds() {
        for input in random_inputs(20_000, 24) {
            let chunk = chunk(&input);
            let check = |found: u32, needles: &[u8]| {
                let expected = positions_one_by_one(&chunk, needles);
                assert_eq!(found, expected, "{:?} in {:?}", needles, chunk);
            };
            check(positions(&chunk, b"<>\"'"), b"<>\"'");
            check(positions(&chunk, b" \t\n\x0c\r/\"'"), b" \t\n\x0c\r/\"'");
            check(positions(&chunk, b"oO"), b"oO");
            check(positions(&chunk, b":"), b":");
        }
    }

    #[test]
    fn the_chunk_reader_finds_the_tags_a_byte_reader_finds() {
        for input in random_inputs(50_000, 120) {
            let mut tags = Vec::new();
            for_each_tag(&input, |tag| tags.push(tag));
            assert_eq!(
                tags,
                tags_byte_by_byte(&input),
                "{:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn skipping_attributes_never_hides_a_finding() {
        let mut checked = 0;
        for page in random_inputs(50_000, 120) {
            for_each_tag(&page, |tag| {
                for form in [false, true] {
                    let mut found = false;
                    check_attributes(
                        &page[tag.clone()],
                        (false, form),
                        &|| 1,
                        &[],
                        &mut |_, _| found = true,
                    );
                    if found {
                        checked += 1;
                        assert!(
                            may_hold_findings(&page, tag.clone(), form),
                            "{:?} in {:?}",
                            tag,
                            String::from_utf8_lossy(&page)
                        );
                    }
                }
            });
        }
        assert!(
            checked > 1_000,
            "only {} random tags had a finding",
            checked
        );
        // What follows a tag on the page, or comes before it, is not the tag's.
        let page = b"x onclick=a:b <p class=x><a onclick=x><b>";
        let mut flags = Vec::new();
        for_each_tag(page, |tag| flags.push(may_hold_findings(page, tag, false)));
        assert_eq!(flags, [false, true, false]);
        // A form's action off the site, however it is written: `//` may fall on either side of
        // a sixteen-byte boundary.
        for padding in 0..CHUNK {
            let page = format!("<form{} action='//e.example/x'>", " ".repeat(padding));
            let mut found = Vec::new();
            for_each_tag(page.as_bytes(), |tag| {
                found.push(may_hold_findings(page.as_bytes(), tag, true))
            });
            assert_eq!(found, [true], "{:?}", page);
            assert_eq!(codes(&page), ["offsite_form"], "{:?}", page);
        }
        let mut flags = Vec::new();
        let page = b"<form action='/a/b/c'><form action=\"/x/\"/>";
        for_each_tag(page, |tag| flags.push(may_hold_findings(page, tag, true)));
        assert_eq!(flags, [false, false]);
    }

    #[test]
    fn packed_tag_names_match_a_plain_comparison() {
        let names: [&[u8]; 10] = [
            b"script",
            b"iframe",
            b"object",
            b"embed",
            b"frame",
            b"frameset",
            b"applet",
            b"meta",
            b"form",
            b"a",
        ];
        let plain = |bytes: &[u8], wanted: &[u8]| {
            let len = bytes
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count();
            bytes[..len].eq_ignore_ascii_case(wanted)
        };
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut matched = 0;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let wanted = names[(state % names.len() as u64) as usize];
            // A wanted name with some letters flipped in case or replaced, cut short or run
            // on, followed by anything, including bytes at and above 0x80.
            let mut bytes = wanted.to_vec();
            let mut r = state >> 8;
            for b in bytes.iter_mut() {
                match r % 8 {
                    0 => *b = b.to_ascii_uppercase(),
                    1 => *b = (r >> 3) as u8,
                    _ => {}
                }
                r >>= 5;
            }
            let keep = if r & 3 == 0 {
                (r >> 2) as usize % (bytes.len() + 1)
            } else {
                bytes.len()
            };
            bytes.truncate(keep);
            let tail = (state >> 40) as u8;
            for k in 0..(state >> 60) as usize {
                bytes.push(tail.wrapping_add((k as u8).wrapping_mul(37)));
            }
            for name in names {
                let expected = plain(&bytes, name);
                matched += expected as usize;
                assert_eq!(
                    TagName::at(&bytes) == TagName::of(name),
                    expected,
                    "{:?} against {:?}",
                    bytes,
                    String::from_utf8_lossy(name)
                );
            }
        }
        assert!(matched > 20_000, "only {} inputs matched a name", matched);
        assert_eq!(TagName::at(b"framesets"), TagName::OTHER);
        assert_eq!(TagName::at(b"SCRIPT>"), TagName::of(b"script"));
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
