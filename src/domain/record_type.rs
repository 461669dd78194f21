//! The kinds of DNS record berth writes, and what each may point at.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// The kinds of record berth writes: an address (`A`, `AAAA`) or an alias (`CNAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordType {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
}

impl RecordType {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Cname => "CNAME",
        }
    }

    /// Checks that `target` can be this record's content: an IPv4 address for `A`, an IPv6
    /// address for `AAAA`, a hostname (not an address) for `CNAME`.
    pub fn check_target(self, target: &str) -> Result<(), String> {
        let ok = match self {
            RecordType::A => target.parse::<Ipv4Addr>().is_ok(),
            RecordType::Aaaa => target.parse::<Ipv6Addr>().is_ok(),
            RecordType::Cname => is_hostname(target),
        };
        if ok {
            Ok(())
        } else {
            let wanted = match self {
                RecordType::A => "an IPv4 address",
                RecordType::Aaaa => "an IPv6 address",
                RecordType::Cname => "a hostname",
            };
            Err(format!(
                "{target:?} cannot be the content of a {} record: it needs {wanted}",
                self.as_str()
            ))
        }
    }
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hostname a CNAME may point at: dot-separated labels of letters, digits, `-` and `_`, at most
/// 253 characters, and not an IP address.
fn is_hostname(value: &str) -> bool {
    let name = value.strip_suffix('.').unwrap_or(value);
    !name.is_empty()
        && name.len() <= 253
        && name.parse::<IpAddr>().is_err()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_must_suit_the_record_type() {
        let cases = [
            (RecordType::A, "203.0.113.7", true),
            (RecordType::A, "2001:db8::1", false),
            (RecordType::A, "lb.example.net", false),
            (RecordType::Aaaa, "2001:db8::1", true),
            (RecordType::Aaaa, "203.0.113.7", false),
            (RecordType::Cname, "lb.example.net", true),
            (RecordType::Cname, "lb.example.net.", true),
            (RecordType::Cname, "203.0.113.7", false),
            (RecordType::Cname, "", false),
            (RecordType::Cname, "bad host.example", false),
            (RecordType::Cname, "a..b", false),
        ];
        for (kind, target, ok) in cases {
            assert_eq!(kind.check_target(target).is_ok(), ok, "{kind} {target}");
        }
    }
}
