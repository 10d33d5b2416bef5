//! What a Python peer's decoder refuses in a value that msgpack itself
//! allows. `kademlia` nodes decode with `umsgpack`, which builds a Python
//! dict for every map: a key that holds a map cannot be hashed
//! (`UnhashableKeyException`), and a key equal to an earlier one — by
//! Python's `==`, so `1`, `1.0` and `True` are one key — is refused
//! (`DuplicateKeyException`); either fails the whole datagram. A node that
//! held such a value would answer every Python reader with a datagram it
//! cannot read (and a Python caller could not be given the value), so
//! kadmium refuses it wherever a value comes in: a STORE, a FIND_VALUE
//! answer, a put. List keys are fine (Python gets a tuple), and `umsgpack`
//! does not check them for duplicates.

use std::collections::HashSet;

use crate::value::Value;

pub const MAP_AS_KEY: &str = "a map used as a map key";
pub const DUPLICATE_KEY: &str = "a map key repeated (as Python compares keys)";

/// Why `umsgpack` would refuse the map with these entries (its keys only,
/// not what they hold), if it would.
pub fn map_keys_refusal(entries: &[(Value, Value)]) -> Option<&'static str> {
    if entries.iter().any(|(k, _)| holds_map(k)) {
        return Some(MAP_AS_KEY);
    }
    if entries.len() > 1 {
        let mut seen = HashSet::with_capacity(entries.len());
        for (k, _) in entries {
            if let Some(key) = PythonKey::of(k) {
                if !seen.insert(key) {
                    return Some(DUPLICATE_KEY);
                }
            }
        }
    }
    None
}

/// Why `umsgpack` would refuse `value`, if it would (any map in it).
pub fn refusal(value: &Value) -> Option<&'static str> {
    match value {
        Value::List(items) => items.iter().find_map(refusal),
        Value::Map(entries) => map_keys_refusal(entries).or_else(|| {
            entries
                .iter()
                .find_map(|(k, v)| refusal(k).or_else(|| refusal(v)))
        }),
        _ => None,
    }
}

/// Whether `value` is or contains a map.
fn holds_map(value: &Value) -> bool {
    match value {
        Value::Map(_) => true,
        Value::List(items) => items.iter().any(holds_map),
        _ => false,
    }
}

/// A map key as Python's `==` and `hash` see it: numbers by value (an
/// integral float is its integer, a bool 0 or 1). `None` for the keys
/// `umsgpack` never finds in the dict: lists (it does not check them) and
/// NaN (equal to nothing, not even itself).
#[derive(PartialEq, Eq, Hash)]
enum PythonKey<'a> {
    Nil,
    Int(i128),
    Float(u64),
    Str(&'a str),
    Bytes(&'a [u8]),
}

impl<'a> PythonKey<'a> {
    fn of(value: &'a Value) -> Option<Self> {
        // Integral floats below 2^127 convert exactly; msgpack's integers
        // (at most 64 bits) never equal a larger float.
        const I128_RANGE: f64 = 1.7014118346046923e38; // 2^127
        Some(match value {
            Value::Nil => PythonKey::Nil,
            Value::Bool(b) => PythonKey::Int(i128::from(*b)),
            Value::Int(i) => PythonKey::Int(i128::from(*i)),
            Value::UInt(u) => PythonKey::Int(i128::from(*u)),
            Value::Float(f) if f.is_nan() => return None,
            Value::Float(f) if f.fract() == 0.0 && f.abs() < I128_RANGE => {
                PythonKey::Int(*f as i128) // -0.0 is 0 here, as in Python
            }
            Value::Float(f) => PythonKey::Float(f.to_bits()),
            Value::Str(s) => PythonKey::Str(s),
            Value::Bytes(b) => PythonKey::Bytes(b),
            Value::List(_) | Value::Map(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: Vec<Value>) -> Value {
        Value::Map(keys.into_iter().map(|k| (k, Value::Nil)).collect())
    }

    #[test]
    fn refused_as_umsgpack_refuses() {
        let s = |t: &str| Value::Str(t.into());
        let refused = [
            (map(vec![Value::Map(vec![])]), MAP_AS_KEY),
            (map(vec![Value::List(vec![Value::Map(vec![])])]), MAP_AS_KEY),
            (map(vec![Value::Int(1), Value::Int(1)]), DUPLICATE_KEY),
            (map(vec![Value::Int(1), Value::Bool(true)]), DUPLICATE_KEY),
            (map(vec![Value::Int(1), Value::Float(1.0)]), DUPLICATE_KEY),
            (
                map(vec![
                    Value::UInt(1 << 63),
                    Value::Float((1u64 << 63) as f64),
                ]),
                DUPLICATE_KEY,
            ),
            (
                map(vec![Value::Bool(false), Value::Float(-0.0)]),
                DUPLICATE_KEY,
            ),
            (map(vec![s("a"), s("b"), s("a")]), DUPLICATE_KEY),
            (map(vec![Value::Nil, Value::Nil]), DUPLICATE_KEY),
            (
                map(vec![
                    Value::Float(f64::INFINITY),
                    Value::Float(f64::INFINITY),
                ]),
                DUPLICATE_KEY,
            ),
            // Deeper down: in a list, in a value, in a list key.
            (
                Value::List(vec![map(vec![Value::Int(2), Value::Int(2)])]),
                DUPLICATE_KEY,
            ),
            (
                Value::Map(vec![(s("k"), map(vec![Value::Map(vec![])]))]),
                MAP_AS_KEY,
            ),
        ];
        for (value, why) in refused {
            assert_eq!(refusal(&value), Some(why), "{value:?}");
        }
        let accepted = [
            map(vec![s("a"), Value::Bytes(b"a".to_vec())]),
            map(vec![Value::Int(1), Value::Float(1.5), s("1")]),
            map(vec![Value::Float(f64::NAN), Value::Float(f64::NAN)]),
            map(vec![
                Value::List(vec![Value::Int(1)]),
                Value::List(vec![Value::Int(1)]),
            ]),
            map(vec![Value::Int(i64::MAX), Value::UInt(u64::MAX)]),
            // 2^64 - 1 is not 2^64, the nearest float.
            map(vec![Value::UInt(u64::MAX), Value::Float(u64::MAX as f64)]),
            Value::List(vec![Value::Int(1), Value::Int(1)]),
        ];
        for value in accepted {
            assert_eq!(refusal(&value), None, "{value:?}");
        }
    }
}
