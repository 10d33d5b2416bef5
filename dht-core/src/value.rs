//! Values as the Python `kademlia` package types them.

/// A stored value. Each variant travels as one msgpack type, so a value put
/// from Python and read here (or the other way round) keeps its type:
/// Python `int` ↔ `Int`/`UInt`, `float` ↔ `Float`, `bool` ↔ `Bool`,
/// `str` ↔ `Str`, `bytes` ↔ `Bytes` (msgpack bin; also what C callers use).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    /// Only for integers above `i64::MAX`; smaller ones decode as `Int`.
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
}

impl Value {
    /// Approximate payload size, used for storage limits and the maximum
    /// value size.
    pub fn size(&self) -> usize {
        match self {
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => 8,
            Value::Bool(_) => 1,
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
        }
    }

    /// Canonical form: non-negative `UInt`s that fit an `i64` become `Int`.
    pub fn normalized(self) -> Value {
        match self {
            Value::UInt(u) if i64::try_from(u).is_ok() => Value::Int(u as i64),
            v => v,
        }
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::UInt(v).normalized()
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
