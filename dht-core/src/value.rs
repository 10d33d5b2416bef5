//! Values as the Python `kademlia` package types them: any msgpack data.

/// Deepest nesting of lists and maps a value may have (a scalar is depth 0,
/// `[1]` depth 1). The decoder refuses deeper data, so recursion over a value
/// received from the network is bounded.
pub const MAX_VALUE_DEPTH: usize = 32;

/// A stored value. Each variant travels as one msgpack type, so a value put
/// from Python and read here (or the other way round) keeps its type:
/// Python `int` ↔ `Int`/`UInt`, `float` ↔ `Float`, `bool` ↔ `Bool`,
/// `str` ↔ `Str`, `bytes` ↔ `Bytes` (msgpack bin; also what C callers use),
/// `None` ↔ `Nil`, `list`/`tuple` ↔ `List`, `dict` ↔ `Map`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Int(i64),
    /// Only for integers above `i64::MAX`; smaller ones decode as `Int`.
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    /// Entries in the order they were received or built (msgpack maps are
    /// ordered on the wire; Python dicts keep insertion order). Keys may be
    /// any value, as in msgpack.
    Map(Vec<(Value, Value)>),
}

impl Value {
    /// Size used for storage limits and the maximum value size: the payload
    /// bytes of a scalar (8 for numbers, 1 for a bool, the length of a string
    /// or byte string), and the whole msgpack encoding of `Nil`, a list or a
    /// map (headers included), so a container's size bounds its encoding.
    pub fn size(&self) -> usize {
        match self {
            Value::Int(_) | Value::UInt(_) | Value::Float(_) => 8,
            Value::Bool(_) => 1,
            Value::Str(s) => s.len(),
            Value::Bytes(b) => b.len(),
            Value::Nil | Value::List(_) | Value::Map(_) => self.encoded_len(),
        }
    }

    /// Length of this value's msgpack encoding (as `wire` writes it), computed
    /// without encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Value::Nil | Value::Bool(_) => 1,
            Value::Int(i) => int_len(*i),
            Value::UInt(u) => uint_len(*u),
            Value::Float(_) => 9,
            Value::Str(s) => str_header_len(s.len()) + s.len(),
            Value::Bytes(b) => bin_header_len(b.len()) + b.len(),
            Value::List(items) => {
                container_header_len(items.len())
                    + items.iter().map(Value::encoded_len).sum::<usize>()
            }
            Value::Map(entries) => {
                container_header_len(entries.len())
                    + entries
                        .iter()
                        .map(|(k, v)| k.encoded_len() + v.encoded_len())
                        .sum::<usize>()
            }
        }
    }

    /// Nesting depth: 0 for a scalar, 1 + the deepest item for a container.
    /// Values deeper than [`MAX_VALUE_DEPTH`] cannot be decoded by peers.
    pub fn depth(&self) -> usize {
        match self {
            Value::List(items) => 1 + items.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(k, v)| k.depth().max(v.depth()))
                    .max()
                    .unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// Why a Python peer (`umsgpack`) could not unpack this value, if it
    /// could not: see [`crate::umsgpack_rules`]. Such values are refused.
    pub fn umsgpack_refusal(&self) -> Option<&'static str> {
        crate::umsgpack_rules::refusal(self)
    }

    /// Canonical form: non-negative `UInt`s that fit an `i64` become `Int`.
    pub fn normalized(self) -> Value {
        match self {
            Value::UInt(u) if i64::try_from(u).is_ok() => Value::Int(u as i64),
            v => v,
        }
    }
}

// msgpack's smallest encodings, as rmp's `write_sint`/`write_uint` choose them.
fn uint_len(u: u64) -> usize {
    match u {
        0..=0x7f => 1,
        0x80..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

fn int_len(i: i64) -> usize {
    match i {
        0.. => uint_len(i as u64),
        -32..=-1 => 1,
        -128..=-33 => 2,
        -32_768..=-129 => 3,
        -2_147_483_648..=-32_769 => 5,
        _ => 9,
    }
}

fn str_header_len(n: usize) -> usize {
    match n {
        0..=31 => 1,
        32..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

fn bin_header_len(n: usize) -> usize {
    match n {
        0..=0xff => 2,
        0x100..=0xffff => 3,
        _ => 5,
    }
}

fn container_header_len(n: usize) -> usize {
    match n {
        0..=15 => 1,
        16..=0xffff => 3,
        _ => 5,
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
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}
