//! Integers as JSON spells them. JSON Schema's `integer` is any number with no fraction, so a
//! client may send `3` as `3.0` (and schema-driven tools do); both read the same here.

/// The integer `number` is, when it is one: `3` and `3.0` alike, not `3.5` nor a float too
/// large to be exact.
pub fn of(number: &serde_json::Number) -> Option<i64> {
    number.as_i64().or_else(|| {
        number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    })
}

#[cfg(test)]
mod tests {
    use super::of;

    #[test]
    fn whole_numbers_read_as_integers_whichever_way_they_are_spelled() {
        let read = |text: &str| of(&serde_json::from_str(text).unwrap());
        assert_eq!(read("3"), Some(3));
        assert_eq!(read("3.0"), Some(3));
        assert_eq!(read("-2e3"), Some(-2000));
        assert_eq!(read("3.5"), None);
        assert_eq!(read("1e300"), None);
    }
}
