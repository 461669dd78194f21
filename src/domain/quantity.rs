//! The two kinds of Kubernetes quantities a plan names: CPU and memory (and volume sizes).
//! Parsed so a bad plan is refused when the configuration loads, and so quotas can be computed
//! from them (a quota leaves room for a second pod during a rolling update).

use std::fmt;

/// CPU in millicores: `250m`, `1`, `1.5`, `2000m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cpu(u64);

/// Bytes: `256Mi`, `1Gi`, `512M`, `1.5Gi`, `1048576`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(u64);

impl Cpu {
    pub fn parse(value: &str) -> Result<Self, String> {
        let (number, scale) = match value.strip_suffix('m') {
            Some(number) => (number, 1),
            None => (value, 1000),
        };
        let millis = scaled(number, scale)
            .ok_or_else(|| format!("{value:?} is not a CPU amount like 250m or 1.5"))?;
        if millis == 0 {
            return Err(format!("{value:?}: CPU must be above 0"));
        }
        Ok(Self(millis))
    }

    pub fn times(self, n: u64) -> Self {
        Self(self.0.saturating_mul(n))
    }

    pub fn plus(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Cpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            write!(f, "{}m", self.0)
        }
    }
}

const SUFFIXES: [(&str, u64); 10] = [
    ("Ki", 1 << 10),
    ("Mi", 1 << 20),
    ("Gi", 1 << 30),
    ("Ti", 1 << 40),
    ("Pi", 1 << 50),
    ("k", 1_000),
    ("M", 1_000_000),
    ("G", 1_000_000_000),
    ("T", 1_000_000_000_000),
    ("P", 1_000_000_000_000_000),
];

impl Bytes {
    pub fn parse(value: &str) -> Result<Self, String> {
        let (number, scale) = SUFFIXES
            .iter()
            .find_map(|(suffix, scale)| value.strip_suffix(suffix).map(|n| (n, *scale)))
            .unwrap_or((value, 1));
        let bytes = scaled(number, scale)
            .ok_or_else(|| format!("{value:?} is not a size like 256Mi or 1Gi"))?;
        if bytes == 0 {
            return Err(format!("{value:?}: the size must be above 0"));
        }
        Ok(Self(bytes))
    }

    pub const ZERO: Self = Self(0);

    pub fn times(self, n: u64) -> Self {
        Self(self.0.saturating_mul(n))
    }

    pub fn plus(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return write!(f, "0");
        }
        let binary = [("Gi", 1u64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)];
        match binary.iter().find(|(_, unit)| self.0.is_multiple_of(*unit)) {
            Some((suffix, unit)) => write!(f, "{}{suffix}", self.0 / unit),
            None => write!(f, "{}", self.0),
        }
    }
}

/// `number × scale` for a plain decimal (`12`, `0.5`), when it is a whole number.
fn scaled(number: &str, scale: u64) -> Option<u64> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) {
        return None;
    }
    if fraction.len() > 9 {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let denominator = 10u64.pow(fraction.len() as u32);
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let scaled_fraction = fraction.checked_mul(scale)?;
    if scaled_fraction % denominator != 0 {
        return None;
    }
    whole
        .checked_mul(scale)?
        .checked_add(scaled_fraction / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_amounts_parse_and_print_canonically() {
        for (input, millis, shown) in [
            ("250m", 250, "250m"),
            ("1", 1000, "1"),
            ("1.5", 1500, "1500m"),
            ("0.1", 100, "100m"),
            ("2000m", 2000, "2"),
        ] {
            let cpu = Cpu::parse(input).unwrap();
            assert_eq!(cpu, Cpu(millis), "{input}");
            assert_eq!(cpu.to_string(), shown, "{input}");
        }
        assert_eq!(Cpu::parse("250m").unwrap().times(2).to_string(), "500m");
    }

    #[test]
    fn bad_cpu_amounts_are_refused() {
        for (input, why) in [
            ("", "empty"),
            ("m", "no number"),
            ("0", "zero"),
            ("-1", "negative"),
            ("1.0001", "below a millicore"),
            ("one", "not a number"),
            ("1Gi", "a memory suffix"),
            ("1e3", "exponents are not supported"),
        ] {
            assert!(Cpu::parse(input).is_err(), "{input:?} ({why}) was accepted");
        }
    }

    #[test]
    fn sizes_parse_and_print_canonically() {
        for (input, bytes, shown) in [
            ("256Mi", 256 << 20, "256Mi"),
            ("1Gi", 1 << 30, "1Gi"),
            ("1.5Gi", 3 << 29, "1536Mi"),
            ("512M", 512_000_000, "500000Ki"),
            ("1000", 1000, "1000"),
        ] {
            let size = Bytes::parse(input).unwrap();
            assert_eq!(size, Bytes(bytes), "{input}");
            assert_eq!(size.to_string(), shown, "{input}");
        }
        assert_eq!(Bytes::parse("256Mi").unwrap().times(2).to_string(), "512Mi");
    }

    #[test]
    fn bad_sizes_are_refused() {
        for (input, why) in [
            ("", "empty"),
            ("Mi", "no number"),
            ("0Gi", "zero"),
            ("256MB", "not a Kubernetes suffix"),
            ("256m", "millibytes"),
            ("0.3", "fractional bytes"),
        ] {
            assert!(
                Bytes::parse(input).is_err(),
                "{input:?} ({why}) was accepted"
            );
        }
    }
}
