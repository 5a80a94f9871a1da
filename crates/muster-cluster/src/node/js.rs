//! JavaScript value semantics the protocol leans on: `String(v)`, truthiness, integers.
//!
//! Node builds keys with template strings and tests fields with `||` and `if (x)`; to agree with
//! it byte for byte we have to apply the same rules to the JSON we received.

use serde_json::{Number, Value};

/// `String(v)` for a field that may be absent (`None` is JS `undefined`).
pub(crate) fn to_js_string(value: Option<&Value>) -> String {
    match value {
        None => "undefined".to_owned(),
        Some(value) => value_to_js_string(value),
    }
}

fn value_to_js_string(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_to_js_string(n),
        Value::String(s) => s.clone(),
        // Array.prototype.join: null and undefined elements become empty strings.
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Null => String::new(),
                other => value_to_js_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".to_owned(),
    }
}

/// `Number.prototype.toString()`: integers without a fraction, exponent form outside
/// `[1e-6, 1e21)`, `e+` for positive exponents.
fn number_to_js_string(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let Some(x) = n.as_f64() else {
        return n.to_string();
    };
    if x == 0.0 {
        // Also covers -0, which JS prints as "0".
        return "0".to_owned();
    }
    let magnitude = x.abs();
    if (1e-6..1e21).contains(&magnitude) {
        // Rust's Display is the shortest round-trip decimal without exponent, as JS in this range.
        return format!("{x}");
    }
    let exp = format!("{x:e}");
    match exp.split_once('e') {
        Some((mantissa, power)) if !power.starts_with('-') => format!("{mantissa}e+{power}"),
        _ => exp,
    }
}

/// JS truthiness of a present value (absent is falsy too, handled by callers).
pub(crate) fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|x| x != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// An integral JSON number as `i64` (JS has only doubles, so `3000.0` counts as `3000`).
pub(crate) fn as_integer(value: &Value) -> Option<i64> {
    let Value::Number(n) = value else {
        return None;
    };
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    if n.is_u64() {
        return None;
    }
    let x = n.as_f64()?;
    // 2^63 as f64 is exact; anything at or beyond it does not fit.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x) {
        // In range and integral, so the cast is exact.
        Some(x as i64)
    } else {
        None
    }
}

/// A non-negative integral JSON number, as used for `seq`, `ack` and `index`.
pub(crate) fn as_unsigned(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) if n.is_u64() => n.as_u64(),
        other => as_integer(other).and_then(|i| u64::try_from(i).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn js_string_conversion_matches_template_literals() {
        assert_eq!(to_js_string(None), "undefined");
        assert_eq!(to_js_string(Some(&json!(null))), "null");
        assert_eq!(to_js_string(Some(&json!(true))), "true");
        assert_eq!(to_js_string(Some(&json!(3000))), "3000");
        assert_eq!(to_js_string(Some(&json!(-1))), "-1");
        assert_eq!(to_js_string(Some(&json!(3000.0))), "3000");
        assert_eq!(to_js_string(Some(&json!(-0.0))), "0");
        assert_eq!(to_js_string(Some(&json!(0.5))), "0.5");
        assert_eq!(to_js_string(Some(&json!(1e21))), "1e+21");
        assert_eq!(to_js_string(Some(&json!(1.5e-7))), "1.5e-7");
        assert_eq!(to_js_string(Some(&json!(u64::MAX))), u64::MAX.to_string());
        assert_eq!(to_js_string(Some(&json!("udp4"))), "udp4");
        assert_eq!(
            to_js_string(Some(&json!([1, null, "a", [2, 3]]))),
            "1,,a,2,3"
        );
        assert_eq!(to_js_string(Some(&json!({"a": 1}))), "[object Object]");
    }

    #[test]
    fn truthiness() {
        for falsy in [json!(null), json!(false), json!(0), json!(0.0), json!("")] {
            assert!(!is_truthy(&falsy), "{falsy}");
        }
        for truthy in [
            json!(true),
            json!(1),
            json!(-1),
            json!("0"),
            json!([]),
            json!({}),
        ] {
            assert!(is_truthy(&truthy), "{truthy}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(as_integer(&json!(42)), Some(42));
        assert_eq!(as_integer(&json!(-1)), Some(-1));
        assert_eq!(as_integer(&json!(42.0)), Some(42));
        assert_eq!(as_integer(&json!(42.5)), None);
        assert_eq!(as_integer(&json!(1e300)), None);
        assert_eq!(as_integer(&json!(u64::MAX)), None);
        assert_eq!(as_integer(&json!("42")), None);
        assert_eq!(as_integer(&json!(null)), None);
        assert_eq!(as_unsigned(&json!(u64::MAX)), Some(u64::MAX));
        assert_eq!(as_unsigned(&json!(7.0)), Some(7));
        assert_eq!(as_unsigned(&json!(-7)), None);
    }
}
