//! `brand-guard` (name hook): refuses names that imitate a protected brand, such as `paypa1`,
//! `g00gle-login` or `rnicrosoft`.
//!
//! Settings: `{"brands": ["paypal", "google", …], "max_distance": 1}`. Names are folded first
//! (look-alike digits and letter pairs become the letters they imitate, `-` is dropped); a name
//! is refused when it contains a brand, or when some part of it is within `max_distance` edits
//! of one.

use berth_plugin_sdk::{berth_plugin, Context, Outcome, Value};

/// Folds common look-alikes onto the letters they imitate.
pub fn fold(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.to_ascii_lowercase().chars() {
        out.push(match c {
            '0' => 'o',
            '1' | '!' | '|' => 'l',
            '3' => 'e',
            '4' | '@' => 'a',
            '5' | '$' => 's',
            '7' => 't',
            '8' => 'b',
            '-' | '_' | '.' => continue,
            c => c,
        });
    }
    out.replace("rn", "m").replace("vv", "w").replace("cl", "d")
}

/// Levenshtein distance, stopping early above `limit`.
pub fn distance(a: &str, b: &str, limit: usize) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = if ca == cb { 0 } else { 1 };
            current[j + 1] = (previous[j] + cost)
                .min(previous[j + 1] + 1)
                .min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// The brand `name` imitates, if any.
pub fn imitated<'a>(name: &str, brands: &[&'a str], max_distance: usize) -> Option<&'a str> {
    let folded = fold(name);
    brands.iter().copied().find(|brand| {
        let brand_folded = fold(brand);
        if brand_folded.is_empty() {
            return false;
        }
        if folded.contains(&brand_folded) {
            return true;
        }
        // Compare against every window of the brand's length (±1) so `paypa1-login` is caught.
        let chars: Vec<char> = folded.chars().collect();
        let n = brand_folded.chars().count();
        (n.saturating_sub(1)..=n + 1).any(|width| {
            width > 0
                && width <= chars.len()
                && (0..=chars.len() - width).any(|start| {
                    let window: String = chars[start..start + width].iter().collect();
                    distance(&window, &brand_folded, max_distance) <= max_distance
                })
        })
    })
}

fn settings_of(settings: &Value) -> (Vec<&str>, usize) {
    let brands = settings
        .get("brands")
        .and_then(|v| v.string_list("brands").ok())
        .unwrap_or_default();
    let max = settings
        .get("max_distance")
        .and_then(Value::as_f64)
        .unwrap_or(1.0) as usize;
    (brands, max)
}

pub fn validate(ctx: &Context, name: &str) -> Outcome {
    let (brands, max_distance) = settings_of(&ctx.settings);
    match imitated(name, &brands, max_distance) {
        Some(brand) => Outcome::deny(
            "brand_imitation",
            &format!("{:?} is too close to the protected name {:?}", name, brand),
        ),
        None => Outcome::allow(),
    }
}

pub fn validate_settings(settings: &Value) -> Result<(), String> {
    let brands = settings
        .get("brands")
        .ok_or_else(|| "settings need \"brands\": a list of protected names".to_string())?;
    brands.string_list("brands")?;
    if let Some(max) = settings.get("max_distance") {
        match max.as_f64() {
            Some(n) if (0.0..=3.0).contains(&n) && n.fract() == 0.0 => {}
            _ => return Err("max_distance must be a whole number from 0 to 3".to_string()),
        }
    }
    Ok(())
}

berth_plugin!(validate = validate, validate_settings = validate_settings);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_look_alikes() {
        let brands = ["paypal", "google", "microsoft"];
        for name in [
            "paypa1",
            "pay-pal",
            "g00gle-login",
            "rnicrosoft",
            "my-paypal-shop",
            "paypall",
        ] {
            assert!(imitated(name, &brands, 1).is_some(), "{}", name);
        }
        for name in ["my-bakery", "garden-tools", "palpay-art"] {
            assert_eq!(imitated(name, &brands, 1), None, "{}", name);
        }
    }
}
