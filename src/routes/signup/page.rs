//! The signup page berth hosts for each tenant (`GET /t/{tenant}/signup`), and the same page
//! again when a browser's form post is refused: the customer's values kept (never the
//! honeypot), each field's problem next to it, a policy's reasons and a rate limit in plain
//! words, under the status code the API gives. The page holds no script at all: its hints are
//! HTML's own (`required`, `pattern`, lengths), matching the server's rules.

use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use maud::{html, Markup, DOCTYPE};

use crate::configuration::WorkloadKind;
use crate::routes::error::ApiError;
use crate::services::signup::RawForm;
use crate::services::tenants::Tenant;

/// What the customer typed, kept for the page that says what was wrong with it.
#[derive(Debug, Default, Clone)]
pub(crate) struct Typed {
    name: String,
    email: String,
    html: String,
    plan: String,
}

impl Typed {
    pub(crate) fn of(form: &RawForm) -> Self {
        let text = |key: &str| {
            form.get(key)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        Self {
            name: text("name"),
            email: text("email"),
            html: text("html"),
            plan: text("plan"),
        }
    }
}

/// The page's headers: no script may run, images only over HTTPS (the logo), and the form
/// posts only back to berth.
const POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'self'";

/// The empty signup page.
pub(crate) fn blank(tenant: &Tenant) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .body(render(tenant, &Typed::default(), None, None).into_string())
}

/// The page for a refused form post: the API's status (and `Retry-After`), in HTML, with a
/// link back to the page the post came from (its `Referer`, when that is an http(s) URL).
pub(crate) fn refused(
    tenant: &Tenant,
    typed: &Typed,
    error: &ApiError,
    referer: Option<&str>,
) -> HttpResponse {
    let mut response = error.error_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
        .set_body(render(tenant, typed, Some(error), back(referer)).into_string())
        .map_into_boxed_body()
}

/// The page to go back to: the post's `Referer`, if it is an http(s) URL.
fn back(referer: Option<&str>) -> Option<&str> {
    referer.filter(|r| {
        (r.starts_with("https://") || r.starts_with("http://"))
            && r.len() <= 2048
            && !r.chars().any(char::is_whitespace)
    })
}

/// Where a problem is shown: next to one field, or above the form.
fn problems(error: Option<&ApiError>) -> (Vec<(&'static str, String)>, Vec<String>) {
    let Some(error) = error else {
        return (Vec::new(), Vec::new());
    };
    match error {
        ApiError::InvalidFields(fields) => (
            fields
                .iter()
                .map(|f| (f.field, sentence(&f.message)))
                .collect(),
            Vec::new(),
        ),
        ApiError::Conflict { code, message } if *code == "name_taken" => {
            (vec![("name", sentence(message))], Vec::new())
        }
        ApiError::PolicyRejected(reasons) => (
            Vec::new(),
            reasons.iter().map(|r| sentence(&r.message)).collect(),
        ),
        ApiError::TooManyRequests {
            retry_after_secs, ..
        } => (
            Vec::new(),
            vec![format!(
                "Too many signups right now. Please try again in {}.",
                wait(*retry_after_secs)
            )],
        ),
        ApiError::PayloadTooLarge(_) => (
            Vec::new(),
            vec!["The page is too large to accept. Make it smaller and try again.".into()],
        ),
        ApiError::Internal(_) | ApiError::Unavailable => (
            Vec::new(),
            vec!["Something went wrong on our side. Please try again in a moment.".into()],
        ),
        other => (Vec::new(), vec![sentence(&other.to_string())]),
    }
}

/// `message` starting with a capital and ending with a full stop.
fn sentence(message: &str) -> String {
    let mut chars = message.trim().chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// A wait of `secs` seconds, in words.
fn wait(secs: u64) -> String {
    match secs {
        0..=1 => "a second".into(),
        2..=59 => format!("{secs} seconds"),
        60..=119 => "a minute".into(),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

fn render(tenant: &Tenant, typed: &Typed, error: Option<&ApiError>, back: Option<&str>) -> Markup {
    let settings = &tenant.settings;
    let brand = settings.display_name_or_name();
    let (by_field, above) = problems(error);
    let problem = |field: &str| -> Option<&str> {
        by_field
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    };
    let needs_html = settings.workload.kind == WorkloadKind::Static;
    let action = tenant.signup_path();
    let kib = settings.html_max_bytes / 1024;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { @if error.is_some() { "Please check your details — " } "Sign up — " (brand) }
                style { (style(&settings.accent_color)) }
            }
            body {
                header {
                    @if !settings.logo_url.is_empty() {
                        img src=(settings.logo_url) alt="" height="40";
                    }
                    h1 { "Create your site with " (brand) }
                }
                @if !above.is_empty() {
                    div class="problems" role="alert" {
                        p { strong { "We could not create your site:" } }
                        ul { @for line in &above { li { (line) } } }
                        @if let Some(back) = back {
                            p { a href=(back) { "Back to the page you came from" } }
                        }
                    }
                } @else if !by_field.is_empty() {
                    div class="problems" role="alert" {
                        p { strong { "Please check the fields marked below." } }
                        @if let Some(back) = back {
                            p { a href=(back) { "Back to the page you came from" } }
                        }
                    }
                }
                form method="post" action=(action) enctype="application/x-www-form-urlencoded" {
                    (field("name", "Site name", problem("name"), html! {
                        input id="name" name="name" value=(typed.name) required
                            minlength="3" maxlength="63" pattern="[a-z][a-z0-9\\-]*[a-z0-9]"
                            autocapitalize="none" autocomplete="off" spellcheck="false"
                            aria-describedby=(described("name", problem("name")))
                            aria-invalid=[problem("name").map(|_| "true")];
                        p class="hint" id="name-hint" {
                            "3 to 63 characters: lowercase letters, digits and hyphens, starting with a letter. "
                            "Your site will be at " em { "name." (settings.base_domain) } "."
                        }
                    }))
                    (field("email", "Email", problem("email"), html! {
                        input id="email" name="email" type="email" value=(typed.email) required
                            autocomplete="email" aria-describedby=(described("email", problem("email")))
                            aria-invalid=[problem("email").map(|_| "true")];
                        p class="hint" id="email-hint" { "We send the link to your site here." }
                    }))
                    @if !settings.plans.is_empty() {
                        (field("plan", "Plan", problem("plan"), html! {
                            select id="plan" name="plan" {
                                @for (key, plan) in &settings.plans {
                                    option value=(key) selected[typed.plan == *key || typed.plan == plan.name] { (plan.name) }
                                }
                            }
                        }))
                    }
                    @if needs_html {
                        (field("html", "Your page (HTML)", problem("html"), html! {
                            textarea id="html" name="html" rows="10" required
                                aria-describedby=(described("html", problem("html")))
                                aria-invalid=[problem("html").map(|_| "true")] { (typed.html) }
                            p class="hint" id="html-hint" {
                                "Up to " (kib) " KiB. Scripts, inline event handlers, embedded frames and forms that post to other sites are not accepted."
                            }
                        }))
                    }
                    // The honeypot: people never see it, and it is never filled in again.
                    div class="trap" aria-hidden="true" {
                        label for=(settings.honeypot_field) { "Leave this empty" }
                        input id=(settings.honeypot_field) name=(settings.honeypot_field) tabindex="-1" autocomplete="off";
                    }
                    button type="submit" { "Create my site" }
                }
            }
        }
    }
}

/// One labelled field with its problem, if it has one, right under the label.
fn field(id: &str, label: &str, problem: Option<&str>, control: Markup) -> Markup {
    html! {
        div class={ "field" @if problem.is_some() { " invalid" } } {
            label for=(id) { (label) }
            @if let Some(problem) = problem {
                p class="problem" id={ (id) "-problem" } { (problem) }
            }
            (control)
        }
    }
}

/// What a field's control is described by: its problem, when it has one, then its hint.
fn described(id: &str, problem: Option<&str>) -> String {
    match problem {
        Some(_) => format!("{id}-problem {id}-hint"),
        None => format!("{id}-hint"),
    }
}

/// The text colour for a button in `accent` (`#rgb` or `#rrggbb`): white or near-black,
/// whichever contrasts more (WCAG relative luminance), so any accent stays readable.
fn text_on(accent: &str) -> &'static str {
    let hex = accent.trim_start_matches('#');
    let channel = |i: usize| -> f64 {
        let value = if hex.len() == 3 {
            u8::from_str_radix(&hex[i..i + 1].repeat(2), 16)
        } else {
            u8::from_str_radix(hex.get(2 * i..2 * i + 2).unwrap_or("00"), 16)
        };
        let c = f64::from(value.unwrap_or(0)) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let luminance = 0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2);
    // #111's luminance is 0.0056; white's is 1.
    let on_white = 1.05 / (luminance + 0.05);
    let on_dark = (luminance + 0.05) / (0.0056 + 0.05);
    if on_white >= on_dark {
        "#fff"
    } else {
        "#111"
    }
}

fn style(accent: &str) -> String {
    let text = text_on(accent);
    format!(
        "body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#222}}
header{{display:flex;gap:.75rem;align-items:center}}h1{{font-size:1.5rem}}
.field{{margin:1rem 0}}label{{display:block;font-weight:600;margin-bottom:.25rem}}
input,select,textarea{{box-sizing:border-box;width:100%;font:inherit;padding:.5rem;border:1px solid #999;border-radius:.3rem}}
textarea{{font-family:ui-monospace,monospace;font-size:.9rem}}
.hint{{color:#555;font-size:.9rem;margin:.25rem 0 0}}
.invalid input,.invalid textarea,.invalid select{{border-color:#b3261e}}
.problem{{color:#b3261e;margin:.25rem 0}}
.problems{{border-left:4px solid #b3261e;background:#fdf0ef;padding:.5rem 1rem;margin:1rem 0}}
button{{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:.3rem;background:{accent};color:{text};cursor:pointer}}
.trap{{position:absolute;left:-10000px;width:1px;height:1px;overflow:hidden}}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_and_messages_read_as_words() {
        assert_eq!(wait(1), "a second");
        assert_eq!(wait(30), "30 seconds");
        assert_eq!(wait(61), "a minute");
        assert_eq!(wait(601), "11 minutes");
        assert_eq!(
            sentence("my-shop.localhost is already taken; choose another name"),
            "My-shop.localhost is already taken; choose another name."
        );
        assert_eq!(sentence("Done!"), "Done!");
    }

    #[test]
    fn button_text_contrasts_with_any_accent() {
        assert_eq!(text_on("#2f6fed"), "#fff");
        assert_eq!(text_on("#000"), "#fff");
        assert_eq!(text_on("#ffcc00"), "#111");
        assert_eq!(text_on("#fff"), "#111");
        assert_eq!(text_on("#7a3e9d"), "#fff");
    }
}
