//! Plugin call costs, measured side by side in one run (not a test; nothing asserts timings):
//!
//! - call overhead: a fresh pooled instance plus one `berth_validate` on a short name, for the
//!   smallest possible plugin (`allow.wat`), for `reserved-names` (Rust) and for
//!   `blocked-words` (AssemblyScript);
//! - the cost of handing a plugin 100 KiB (`allow.wat`, which reads none of it);
//! - `html-guard` on 100 KiB of HTML, beside the very same scanner compiled natively, as a ratio
//!   (measured taking turns, one call of each, so both see the same moments of a noisy machine).
//!
//! Run: `cargo bench --bench plugins` (the committed modules in `plugins/dist`). With
//! `-- --baseline DIR`, the `html_guard.wasm` in DIR (another build's `plugins/dist`, say the
//! previous main's) takes its turns too and is reported beside this one.

#[path = "../plugins/examples/html-guard/src/scan.rs"]
#[allow(dead_code)]
mod scan;

use std::path::Path;
use std::time::{Duration, Instant};

use berth::adapters::plugin_host::{Metering, PluginHost};
use berth::configuration::PluginSettings;
use berth::domain::{EmailAddress, Hook, SiteName};
use berth::services::policy::{context_json, Submission};

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() - 1) as f64 * p).round() as usize]
}

fn measure(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..runs / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    (
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99),
    )
}

/// Like [`measure`] for several functions at once, taking turns: one call of each per round.
fn measure_each<const N: usize>(
    runs: usize,
    mut fs: [&mut dyn FnMut(); N],
) -> [(Duration, Duration); N] {
    for _ in 0..runs / 10 {
        fs.iter_mut().for_each(|f| f());
    }
    let mut samples = [(); N].map(|_| Vec::with_capacity(runs));
    for _ in 0..runs {
        for (f, samples) in fs.iter_mut().zip(&mut samples) {
            let start = Instant::now();
            f();
            samples.push(start.elapsed());
        }
    }
    samples.map(|mut s| (percentile(&mut s, 0.5), percentile(&mut s, 0.99)))
}

fn page(bytes: usize) -> String {
    let block = "<section class=\"product\">\n  <h2>Hand-thrown mug</h2>\n  <p>Stoneware, glazed in <em>deep blue</em>. Holds 350 ml.\
        <a href=\"/shop/mugs/blue\" title=\"Blue mug\">See more</a></p>\n  <img src=\"/img/mug-blue.jpg\" alt=\"A blue mug\" width=\"320\" height=\"240\">\n\
        <form action=\"/cart\" method=\"post\"><input type=\"hidden\" name=\"sku\" value=\"mug-blue\"><button>Add to cart</button></form>\n</section>\n";
    let mut html = String::from("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Shop</title></head><body>\n");
    while html.len() + block.len() < bytes - 20 {
        html.push_str(block);
    }
    html.push_str("</body></html>\n");
    html
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dist = root.join("plugins/dist");
    let read = |file: &str| {
        std::fs::read(dist.join(file))
            .unwrap_or_else(|_| panic!("{file} is missing: run plugins/build.sh first"))
    };
    // A generous deadline: this measures cost, and a busy machine must not turn into timeouts.
    let settings = PluginSettings {
        timeout_ms: 10_000,
        ..PluginSettings::default()
    };
    // The host signups run on: bounded by the deadline, counting no fuel.
    let host = PluginHost::new(&settings, Metering::DeadlineOnly).expect("host starts");
    let allow = host
        .load(&wat::parse_file(root.join("tests/fixtures/plugins/allow.wat")).unwrap())
        .unwrap();
    let reserved = host.load(&read("reserved_names.wasm")).unwrap();
    let blocked = host.load(&read("blocked_words.wasm")).unwrap();
    let guard = host.load(&read("html_guard.wasm")).unwrap();

    let (name, email) = (
        SiteName::parse("my-shop").unwrap(),
        EmailAddress::parse("ann@example.com").unwrap(),
    );
    let submission = Submission {
        name: &name,
        email: &email,
        plan: None,
    };
    let name_ctx = context_json(
        Hook::Name,
        "default",
        "reserved-names",
        &serde_json::json!({"names": ["admin", "root", "support"]}),
        &submission,
    );
    let html_ctx = context_json(
        Hook::Html,
        "default",
        "html-guard",
        &serde_json::json!({}),
        &submission,
    );
    let html = page(100 * 1024);

    println!("berth plugin benchmark ({} runs each; p50 / p99)", 2000);
    let (p50, p99) = measure(2000, || {
        host.validate(&allow, &name_ctx, "my-shop").unwrap();
    });
    println!(
        "  call overhead, allow.wat, short name:      {:>8.1} / {:>8.1} µs",
        us(p50),
        us(p99)
    );
    let (p50, p99) = measure(2000, || {
        host.validate(&reserved, &name_ctx, "my-shop").unwrap();
    });
    println!(
        "  reserved-names (Rust), short name:         {:>8.1} / {:>8.1} µs",
        us(p50),
        us(p99)
    );

    let (p50, p99) = measure(2000, || {
        host.validate(&blocked, &name_ctx, "my-shop").unwrap();
    });
    println!(
        "  blocked-words (AssemblyScript), short name:{:>8.1} / {:>8.1} µs",
        us(p50),
        us(p99)
    );

    let (pass50, pass99) = measure(1000, || {
        host.validate(&allow, &html_ctx, &html).unwrap();
    });
    println!(
        "  allow.wat handed {} KiB:                   {:>8.1} / {:>8.1} µs",
        html.len() / 1024,
        us(pass50),
        us(pass99)
    );
    let baseline = std::env::args()
        .skip_while(|arg| arg != "--baseline")
        .nth(1)
        .map(|dir| {
            let path = Path::new(&dir).join("html_guard.wasm");
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("--baseline: {}: {e}", path.display()));
            host.load(&bytes).expect("the baseline html-guard loads")
        });
    let [(wasm50, wasm99), (native50, native99), (base50, base99)] = measure_each(
        1000,
        [
            &mut || {
                let report = host.validate(&guard, &html_ctx, &html).unwrap();
                assert!(!report.result.denies());
            },
            &mut || assert!(scan::scan(std::hint::black_box(&html), &[]).is_empty()),
            &mut || {
                if let Some(baseline) = &baseline {
                    host.validate(baseline, &html_ctx, &html).unwrap();
                }
            },
        ],
    );
    if baseline.is_some() {
        println!(
            "  html-guard on {} KiB, Wasm, baseline:      {:>8.1} / {:>8.1} µs",
            html.len() / 1024,
            us(base50),
            us(base99)
        );
    }
    println!(
        "  html-guard on {} KiB, Wasm:                {:>8.1} / {:>8.1} µs",
        html.len() / 1024,
        us(wasm50),
        us(wasm99)
    );
    println!(
        "  html-guard on {} KiB, native Rust:         {:>8.1} / {:>8.1} µs",
        html.len() / 1024,
        us(native50),
        us(native99)
    );
    println!(
        "  Wasm / native (p50 / p99):                 {:>8.2}x / {:>6.2}x",
        wasm50.as_secs_f64() / native50.as_secs_f64(),
        wasm99.as_secs_f64() / native99.as_secs_f64()
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
