//! The course-style INI file (`-c config.ini`) that VoidPhone modules share.
//!
//! Only the `[dht]` section is read:
//!
//! ```ini
//! hostkey = /hostkey.pem          ; keys before any section are ignored
//! [gossip]                        ; other modules' sections are ignored
//! listen_address = 127.0.0.1:6001
//! [dht]
//! p2p_address = 127.0.0.1:6501    ; or listen_address; may be left to the command line
//! api_address = 127.0.0.1:7501    ; optional: default is the P2P port + 1000
//! bootstrapper = 127.0.0.1:6001   ; or bootstrap_node; may repeat, or list several
//! data_dir = /var/lib/kadmium     ; optional: keep values and contacts across restarts
//! ```
//!
//! Syntax, close to Python's `configparser`: `key = value` or `key: value`
//! (the first `=` or `:` splits; a line with neither is an error in any
//! section; `[dht]`'s keys are one word, so `api_address 1.2.3.4:7401` is
//! an error there too), keys and section names case-insensitive, a line
//! indented deeper than the key above continues its value (a bootstrapper
//! list may go on over several lines; our other keys take one value),
//! whole-line comments starting with `;` or `#`, and inline comments
//! starting with whitespace then `;` or `#`. Values may be quoted. Addresses
//! are `host:port`, IPv6 in brackets (`[::1]:6501`); a host name is
//! resolved once, when the file is read. Unknown keys in `[dht]` are ignored
//! (implementations add their own, such as `max_store_duration`).
//!
//! A hand-written parser rather than a crate: the format is ten rules, and
//! the errors must name file, line and key in one line.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Where a node listens and whom it asks first, as read from the `[dht]`
/// section. `p2p` and `api` stay `None` when the file does not set them: a
/// file may hold only the API address and leave the P2P address to the
/// command line (`-a`/`-p`), and flags can still override the P2P address
/// before the default API address (P2P port + 1000) is derived with
/// [`default_api_address`]. Whoever needs the P2P address reports it missing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSettings {
    pub p2p: Option<SocketAddr>,
    pub api: Option<SocketAddr>,
    pub bootstrap: Vec<SocketAddr>,
    /// `data_dir`: where the node keeps its state (`Config::data_dir`);
    /// a relative path is relative to the config file's directory.
    pub data_dir: Option<PathBuf>,
}

/// A config file that cannot be used. `Display` is one line naming the
/// file, and where it applies the line and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read config file: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}:{line}: {key}: {message}")]
    Value {
        file: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{file}: {message}")]
    Missing {
        file: String,
        key: String,
        message: String,
    },
}

/// An address problem outside any file (e.g. a command-line flag).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AddressError(pub String);

/// The DHT-8 rule: the API listens on the P2P port + 1000, on the same host.
/// P2P port 0 ("any free port") gives API port 0 as well. An error when the
/// sum does not fit a port number.
pub fn default_api_address(p2p: SocketAddr) -> Result<SocketAddr, AddressError> {
    if p2p.port() == 0 {
        return Ok(SocketAddr::new(p2p.ip(), 0));
    }
    match p2p.port().checked_add(1000) {
        Some(port) => Ok(SocketAddr::new(p2p.ip(), port)),
        None => Err(AddressError(format!(
            "no default API address for P2P port {} (port + 1000 exceeds 65535); set it explicitly",
            p2p.port()
        ))),
    }
}

impl NodeSettings {
    /// The API address: the configured one, or [`default_api_address`] of
    /// the configured P2P address.
    pub fn api_or_default(&self) -> Result<SocketAddr, AddressError> {
        match (self.api, self.p2p) {
            (Some(api), _) => Ok(api),
            (None, Some(p2p)) => default_api_address(p2p),
            (None, None) => Err(AddressError(
                "[dht]: neither api_address nor p2p_address (or listen_address) is set".to_owned(),
            )),
        }
    }

    /// Read and parse a config file. Errors name the file as given.
    pub fn from_file(path: impl AsRef<Path>) -> Result<NodeSettings, ConfigError> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let text = String::from_utf8(text).map_err(|e| ConfigError::Syntax {
            file: file.clone(),
            line: line_of_offset(e.as_bytes(), e.utf8_error().valid_up_to()),
            message: "file is not valid UTF-8".to_owned(),
        })?;
        let mut settings = Self::parse(&text, &file)?;
        // A relative data_dir is relative to the file, not to wherever the
        // node happens to be started from.
        if let (Some(dir), Some(base)) = (&settings.data_dir, path.parent()) {
            if dir.is_relative() {
                settings.data_dir = Some(base.join(dir));
            }
        }
        Ok(settings)
    }

    /// Parse config text; `file` is only used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<NodeSettings, ConfigError> {
        let mut p2p: Option<Entry> = None;
        let mut api: Option<Entry> = None;
        let mut bootstrap = Vec::new();
        let mut data_dir: Option<(usize, PathBuf)> = None;
        let mut saw_dht = false;
        let mut in_dht = false;
        // The section's last key and its line's indentation: a line indented
        // deeper continues that key's value, as in `configparser`.
        let mut last_key: Option<(String, usize)> = None;
        // A bootstrapper key with an empty value, until indented lines below
        // give it addresses: (its line, its key).
        let mut empty_list: Option<(usize, String)> = None;
        let empty_error = |(line, key): (usize, String)| ConfigError::Value {
            file: file.to_owned(),
            line,
            key,
            message: "expected host:port, got an empty value".to_owned(),
        };

        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let syntax = |message: String| ConfigError::Syntax {
                file: file.to_owned(),
                line,
                message,
            };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix('[') {
                let name = strip_inline_comment(rest);
                let Some(name) = name.strip_suffix(']') else {
                    return Err(syntax(format!("malformed section header {trimmed:?}")));
                };
                if let Some(empty) = empty_list.take() {
                    return Err(empty_error(empty));
                }
                in_dht = name.trim().eq_ignore_ascii_case("dht");
                saw_dht |= in_dht;
                last_key = None;
                continue;
            }
            let indent = raw.len() - raw.trim_start().len();
            if let Some((key, key_indent)) = &last_key {
                if indent > *key_indent {
                    if in_dht {
                        let value = unquote(strip_inline_comment(trimmed).trim());
                        let listed = bootstrap.len();
                        continue_value(key, value, &mut bootstrap).map_err(|message| {
                            ConfigError::Value {
                                file: file.to_owned(),
                                line,
                                key: key.clone(),
                                message,
                            }
                        })?;
                        if bootstrap.len() > listed {
                            empty_list = None;
                        }
                    }
                    continue;
                }
            }
            if let Some(empty) = empty_list.take() {
                return Err(empty_error(empty));
            }
            // Every other line is `key = value` (or `key: value`), in any
            // section: a line with neither is a typo to report, not a key to
            // ignore.
            let expected = || syntax(format!("expected `key = value`, got {trimmed:?}"));
            let Some(split) = trimmed.find(['=', ':']) else {
                return Err(expected());
            };
            let key = trimmed[..split].trim().to_ascii_lowercase();
            if key.is_empty() {
                return Err(syntax(format!(
                    "missing key before {:?}",
                    &trimmed[split..split + 1]
                )));
            }
            last_key = Some((key.clone(), indent));
            if !in_dht {
                // Global keys (hostkey) and other modules' sections: not ours
                // (their keys may hold spaces, as `configparser` allows).
                continue;
            }
            // Our keys are one word: `api_address 127.0.0.1:7401`, missing its
            // `=`, would otherwise split at the port's `:` and vanish as an
            // unknown key.
            if key.contains(char::is_whitespace) {
                return Err(syntax(format!(
                    "expected `key = value` with a one-word key, got {trimmed:?}"
                )));
            }
            let value = unquote(strip_inline_comment(&trimmed[split + 1..]).trim());
            let bad_value = |message: String| ConfigError::Value {
                file: file.to_owned(),
                line,
                key: key.clone(),
                message,
            };
            match key.as_str() {
                "p2p_address" | "listen_address" | "api_address" => {
                    let slot = if key == "api_address" {
                        &mut api
                    } else {
                        &mut p2p
                    };
                    if let Some(first) = slot {
                        return Err(bad_value(format!(
                            "already set by {} on line {}",
                            first.key, first.line
                        )));
                    }
                    let addr = parse_host_port(value).map_err(|e| bad_value(e.0))?;
                    *slot = Some(Entry {
                        key: key.clone(),
                        line,
                        addr,
                    });
                }
                "bootstrapper" | "bootstrap_node" => {
                    let listed = bootstrap.len();
                    add_bootstrappers(value, &mut bootstrap).map_err(bad_value)?;
                    if bootstrap.len() == listed {
                        // Unless indented lines below list the addresses.
                        empty_list = Some((line, key.clone()));
                    }
                }
                "data_dir" => {
                    if let Some((first, _)) = &data_dir {
                        return Err(bad_value(format!("already set on line {first}")));
                    }
                    if value.is_empty() {
                        return Err(bad_value(
                            "expected a directory, got an empty value".to_owned(),
                        ));
                    }
                    data_dir = Some((line, PathBuf::from(value)));
                }
                _ => {}
            }
        }

        if let Some(empty) = empty_list {
            return Err(empty_error(empty));
        }
        if !saw_dht {
            return Err(ConfigError::Missing {
                file: file.to_owned(),
                key: "[dht]".to_owned(),
                message: "no [dht] section".to_owned(),
            });
        }
        Ok(NodeSettings {
            p2p: p2p.map(|e| e.addr),
            api: api.map(|e| e.addr),
            bootstrap,
            data_dir: data_dir.map(|(_, dir)| dir),
        })
    }
}

struct Entry {
    key: String,
    line: usize,
    addr: SocketAddr,
}

/// Addresses listed in a bootstrapper value (separated by commas or
/// whitespace) added to `bootstrap`.
fn add_bootstrappers(value: &str, bootstrap: &mut Vec<SocketAddr>) -> Result<(), String> {
    for item in value.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
        let addr = parse_host_port(item).map_err(|e| e.0)?;
        if addr.port() == 0 {
            return Err(format!("port 0 cannot be reached, got {item:?}"));
        }
        bootstrap.push(addr);
    }
    Ok(())
}

/// An indented line continuing `key`'s value in `[dht]`: more addresses for
/// a bootstrapper list; for any other key of ours an error, as each holds
/// one value (an unknown key's continuation is ignored with the key).
fn continue_value(key: &str, value: &str, bootstrap: &mut Vec<SocketAddr>) -> Result<(), String> {
    match key {
        "bootstrapper" | "bootstrap_node" => add_bootstrappers(value, bootstrap),
        "p2p_address" | "listen_address" | "api_address" | "data_dir" => Err(format!(
            "one value expected, but an indented line continues it with {value:?}"
        )),
        _ => Ok(()),
    }
}

/// Cut `value ; comment` / `value # comment` (the marker must follow
/// whitespace, so `#` or `;` inside a word stays).
fn strip_inline_comment(s: &str) -> &str {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b';' || b == b'#') && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return s[..i].trim_end();
        }
    }
    s
}

fn unquote(s: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.trim();
        }
    }
    s
}

fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parse `host:port`: an IPv4 address, a bracketed IPv6 address, or a host
/// name (resolved now; the first address returned wins, IPv4 preferred).
pub fn parse_host_port(s: &str) -> Result<SocketAddr, AddressError> {
    let expected = || AddressError(format!("expected host:port, got {s:?}"));
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(expected)?;
        let port = after.strip_prefix(':').ok_or_else(expected)?;
        (host, port)
    } else {
        let (host, port) = s.rsplit_once(':').ok_or_else(expected)?;
        if host.contains(':') {
            return Err(AddressError(format!(
                "expected host:port with an IPv6 host in brackets ([::1]:6501), got {s:?}"
            )));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(expected());
    }
    let port: u16 = port
        .parse()
        .map_err(|_| AddressError(format!("invalid port {port:?} in {s:?} (expected 0-65535)")))?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        if s.starts_with('[') != ip.is_ipv6() {
            return Err(expected());
        }
        return Ok(SocketAddr::new(ip, port));
    }
    if host.contains(['[', ']', ' ', '/']) {
        return Err(expected());
    }
    let resolved: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| AddressError(format!("cannot resolve host {host:?}: {e}")))?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| AddressError(format!("host {host:?} has no addresses")))
}

impl fmt::Display for NodeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.p2p {
            Some(p2p) => write!(f, "p2p {p2p}")?,
            None => f.write_str("p2p unset")?,
        }
        if let Some(api) = self.api {
            write!(f, ", api {api}")?;
        }
        for b in &self.bootstrap {
            write!(f, ", bootstrap {b}")?;
        }
        if let Some(dir) = &self.data_dir {
            write!(f, ", data_dir {}", dir.display())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn parse(text: &str) -> Result<NodeSettings, ConfigError> {
        NodeSettings::parse(text, "config.ini")
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn data_dir_is_read_once_and_relative_to_the_file() {
        let s = parse("[dht]\np2p_address = 127.0.0.1:6501\ndata_dir = \"/var/lib/k\"\n").unwrap();
        assert_eq!(s.data_dir, Some(PathBuf::from("/var/lib/k")));
        assert_eq!(
            parse("[dht]\np2p_address = 127.0.0.1:6501\n")
                .unwrap()
                .data_dir,
            None
        );
        assert_eq!(
            err("[dht]\np2p_address = 127.0.0.1:1\ndata_dir = a\ndata_dir = b\n"),
            "config.ini:4: data_dir: already set on line 3"
        );
        let dir = std::env::temp_dir().join(format!("kadmium-ini-dd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.ini");
        std::fs::write(
            &file,
            "[dht]\np2p_address = 127.0.0.1:1\ndata_dir = state\n",
        )
        .unwrap();
        let s = NodeSettings::from_file(&file).unwrap();
        assert_eq!(s.data_dir, Some(dir.join("state")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn newer_edition_p2p_address() {
        let s =
            parse("[dht]\np2p_address = 127.0.0.1:6501\napi_address = 127.0.0.1:7501\n").unwrap();
        assert_eq!(
            s,
            NodeSettings {
                p2p: Some(sa("127.0.0.1:6501")),
                api: Some(sa("127.0.0.1:7501")),
                bootstrap: vec![],
                data_dir: None,
            }
        );
    }

    #[test]
    fn course_template_with_global_key_other_sections_and_inline_comments() {
        let text = "\
hostkey = /hostkey.pem        ; global key before any section
# a comment
[gossip]                      ; course template as carried by DHT-8
cache_size = 50
degree = 30
bootstrapper = 127.0.0.1:6001
listen_address = 127.0.0.1:6001
api_address = 127.0.0.1:7001
[dht]
listen_address = 127.0.0.1:6501   ; 2019 and DHT-8 use listen_address
api_address = 127.0.0.1:7501
[onion]
api_address = not an address at all
";
        let s = parse(text).unwrap();
        assert_eq!(s.p2p, Some(sa("127.0.0.1:6501")));
        assert_eq!(s.api, Some(sa("127.0.0.1:7501")));
        assert!(s.bootstrap.is_empty(), "gossip's bootstrapper is not ours");
    }

    #[test]
    fn bootstrap_keys_both_names_repeat_and_lists() {
        let text = "[DHT]\nP2P_Address: 10.0.0.1:6501\nbootstrapper = 10.0.0.2:6001\n\
                    bootstrap_node = [::1]:6002, 10.0.0.3:6003\n";
        let s = parse(text).unwrap();
        assert_eq!(s.p2p, Some(sa("10.0.0.1:6501")));
        assert_eq!(s.api, None);
        assert_eq!(
            s.bootstrap,
            vec![sa("10.0.0.2:6001"), sa("[::1]:6002"), sa("10.0.0.3:6003")]
        );
    }

    #[test]
    fn ipv6_quotes_crlf_bom_and_unknown_dht_keys() {
        let text =
            "\u{feff}[dht]\r\np2p_address = \"[::1]:6501\"\r\napi_address='[fe80::1]:7501'\r\n\
                    max_store_duration = 3600\r\nK = 20\r\n";
        let s = parse(text).unwrap();
        assert_eq!(s.p2p, Some(sa("[::1]:6501")));
        assert_eq!(s.api, Some(sa("[fe80::1]:7501")));
    }

    #[test]
    fn host_names_resolve() {
        let s = parse("[dht]\np2p_address = localhost:6501\n").unwrap();
        let p2p = s.p2p.unwrap();
        assert!(p2p.ip().is_loopback());
        assert_eq!(p2p.port(), 6501);
    }

    #[test]
    fn api_defaults_to_p2p_port_plus_1000() {
        let s = parse("[dht]\np2p_address = 127.0.0.1:6501\n").unwrap();
        assert_eq!(s.api_or_default().unwrap(), sa("127.0.0.1:7501"));
        assert_eq!(
            default_api_address(sa("[::1]:6001")).unwrap(),
            sa("[::1]:7001")
        );
        assert_eq!(
            default_api_address(sa("127.0.0.1:0")).unwrap(),
            sa("127.0.0.1:0")
        );
        assert_eq!(
            default_api_address(sa("127.0.0.1:65000")).unwrap_err().to_string(),
            "no default API address for P2P port 65000 (port + 1000 exceeds 65535); set it explicitly"
        );
        let explicit =
            parse("[dht]\np2p_address = 127.0.0.1:65000\napi_address = 127.0.0.1:1\n").unwrap();
        assert_eq!(explicit.api_or_default().unwrap(), sa("127.0.0.1:1"));
    }

    #[test]
    fn bad_value_names_file_line_and_key() {
        let text = "hostkey = x\n[gossip]\na = b\n\n[dht]\np2p_address = 127.0.0.1:6501\napi_address = abc\n";
        assert_eq!(
            err(text),
            r#"config.ini:7: api_address: expected host:port, got "abc""#
        );
    }

    #[test]
    fn every_address_error() {
        let cases = [
            (
                "p2p_address = 127.0.0.1",
                r#"config.ini:2: p2p_address: expected host:port, got "127.0.0.1""#,
            ),
            (
                "p2p_address = 127.0.0.1:99999",
                r#"config.ini:2: p2p_address: invalid port "99999" in "127.0.0.1:99999" (expected 0-65535)"#,
            ),
            (
                "listen_address = 127.0.0.1:",
                r#"config.ini:2: listen_address: invalid port "" in "127.0.0.1:" (expected 0-65535)"#,
            ),
            (
                "p2p_address = :6501",
                r#"config.ini:2: p2p_address: expected host:port, got ":6501""#,
            ),
            (
                "p2p_address = ::1:6501",
                r#"config.ini:2: p2p_address: expected host:port with an IPv6 host in brackets ([::1]:6501), got "::1:6501""#,
            ),
            (
                "p2p_address = [::1]6501",
                r#"config.ini:2: p2p_address: expected host:port, got "[::1]6501""#,
            ),
            (
                "p2p_address = [::1:6501",
                r#"config.ini:2: p2p_address: expected host:port, got "[::1:6501""#,
            ),
            (
                "p2p_address = [127.0.0.1]:6501",
                r#"config.ini:2: p2p_address: expected host:port, got "[127.0.0.1]:6501""#,
            ),
            (
                "p2p_address =",
                r#"config.ini:2: p2p_address: expected host:port, got """#,
            ),
            (
                "bootstrapper =",
                "config.ini:2: bootstrapper: expected host:port, got an empty value",
            ),
            (
                "bootstrap_node = 127.0.0.1:1, nope",
                r#"config.ini:2: bootstrap_node: expected host:port, got "nope""#,
            ),
            (
                "bootstrapper = 127.0.0.1:0",
                r#"config.ini:2: bootstrapper: port 0 cannot be reached, got "127.0.0.1:0""#,
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(err(&format!("[dht]\n{line}\n")), expected, "for {line:?}");
        }
    }

    #[test]
    fn unresolvable_host_names_the_key() {
        let e = err("[dht]\np2p_address = 127.0.0.1:1\nbootstrapper = no-such-host.invalid:6001\n");
        assert!(
            e.starts_with(
                r#"config.ini:3: bootstrapper: cannot resolve host "no-such-host.invalid": "#
            ),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn duplicates_are_errors() {
        assert_eq!(
            err("[dht]\np2p_address = 127.0.0.1:1\nlisten_address = 127.0.0.1:2\n"),
            "config.ini:3: listen_address: already set by p2p_address on line 2"
        );
        assert_eq!(
            err("[dht]\napi_address = 127.0.0.1:1\n[x]\n[dht]\napi_address = 127.0.0.1:2\n"),
            "config.ini:5: api_address: already set by api_address on line 2"
        );
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            err("[dht\np2p_address = 127.0.0.1:1\n"),
            r#"config.ini:1: malformed section header "[dht""#
        );
        assert_eq!(
            err("[dht]\np2p_address 127.0.0.1\n"),
            r#"config.ini:2: expected `key = value`, got "p2p_address 127.0.0.1""#
        );
        assert_eq!(
            err("[dht]\n = 1.2.3.4:5\n"),
            r#"config.ini:2: missing key before "=""#
        );
        // A typo'd line must not vanish: `:` inside the value is no separator
        // when the key would contain a space.
        assert_eq!(
            err("[dht]\np2p_address = 127.0.0.1:1\napi_address 127.0.0.1:7401\n"),
            r#"config.ini:3: expected `key = value` with a one-word key, got "api_address 127.0.0.1:7401""#
        );
        // Other sections and keys before any section follow the same syntax,
        // although their values are not ours...
        assert_eq!(
            err("[gossip]\njust words\n[dht]\np2p_address = 127.0.0.1:1\n"),
            r#"config.ini:2: expected `key = value`, got "just words""#
        );
        // ...and, as in `configparser`, their keys may hold spaces.
        assert!(parse("[gossip]\ncache size = 50\n[dht]\np2p_address = 127.0.0.1:1\n").is_ok());
        assert_eq!(
            err("[dht]\ncache size = 50\n"),
            r#"config.ini:2: expected `key = value` with a one-word key, got "cache size = 50""#
        );
        assert_eq!(
            err("hostkey /hostkey.pem\n[dht]\np2p_address = 127.0.0.1:1\n"),
            r#"config.ini:1: expected `key = value`, got "hostkey /hostkey.pem""#
        );
        // Blank lines, comments and headers stay what they were.
        assert!(
            parse("\n  \n; c\n# c\n[gossip]\n\n[dht]\n; c\np2p_address = 127.0.0.1:1\n").is_ok()
        );
    }

    #[test]
    fn indented_lines_continue_the_value_above() {
        // `configparser`'s multi-line values: a bootstrapper list may go on
        // over indented lines, also after an empty first line...
        let listed = parse(
            "[dht]\np2p_address = 127.0.0.1:1\nbootstrapper =\n  127.0.0.1:6001\n\n  \
             127.0.0.1:6002, 127.0.0.1:6003\napi_address = 127.0.0.1:7001\n",
        )
        .unwrap();
        assert_eq!(
            listed.bootstrap,
            vec![
                sa("127.0.0.1:6001"),
                sa("127.0.0.1:6002"),
                sa("127.0.0.1:6003")
            ]
        );
        assert_eq!(listed.api, Some(sa("127.0.0.1:7001")));
        // ...other sections' values (and unknown [dht] keys') too...
        assert!(parse(
            "[gossip]\nbanner = one\n  two words\n[dht]\nmy_key = a\n  b c\n\
             p2p_address = 127.0.0.1:1\n"
        )
        .is_ok());
        // ...but a single address or directory continued is an error, not an
        // address lost.
        assert_eq!(
            err("[dht]\np2p_address = 127.0.0.1:1\n  127.0.0.1:2\n"),
            r#"config.ini:3: p2p_address: one value expected, but an indented line continues it with "127.0.0.1:2""#
        );
        // A list left empty is still an error, at its own line.
        assert_eq!(
            err("[dht]\nbootstrapper =\np2p_address = 127.0.0.1:1\n"),
            "config.ini:2: bootstrapper: expected host:port, got an empty value"
        );
        assert_eq!(
            err("[dht]\np2p_address = 127.0.0.1:1\nbootstrapper =\n"),
            "config.ini:3: bootstrapper: expected host:port, got an empty value"
        );
        assert_eq!(
            err("[dht]\nbootstrapper =\n[gossip]\n"),
            "config.ini:2: bootstrapper: expected host:port, got an empty value"
        );
        // A bad address on a continuation line names that line.
        assert_eq!(
            err("[dht]\nbootstrapper = 127.0.0.1:6001\n  127.0.0.1\n"),
            r#"config.ini:3: bootstrapper: expected host:port, got "127.0.0.1""#
        );
    }

    #[test]
    fn missing_section_or_key() {
        assert_eq!(
            err("hostkey = x\n[gossip]\na = 1\n"),
            "config.ini: no [dht] section"
        );
        // Only the API address: the P2P address is left to the command line.
        let api_only = parse("[dht]\napi_address = 127.0.0.1:7501\n").unwrap();
        assert_eq!(api_only.p2p, None);
        assert_eq!(api_only.api_or_default().unwrap(), sa("127.0.0.1:7501"));
        let neither = parse("[dht]\nbootstrapper = 127.0.0.1:6001\n").unwrap();
        assert_eq!(
            neither.api_or_default().unwrap_err().to_string(),
            "[dht]: neither api_address nor p2p_address (or listen_address) is set"
        );
        assert_eq!(err(""), "config.ini: no [dht] section");
    }

    #[test]
    fn missing_file_names_the_file() {
        let e = NodeSettings::from_file("/nonexistent/dir/kadmium.ini").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("/nonexistent/dir/kadmium.ini: cannot read config file: "),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn from_file_reads_and_reports_non_utf8_line() {
        let dir = std::env::temp_dir().join(format!("kadmium-ini-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.ini");
        std::fs::write(
            &good,
            "[dht]\nlisten_address = 127.0.0.1:6501\nbootstrapper = 127.0.0.1:6001\n",
        )
        .unwrap();
        let s = NodeSettings::from_file(&good).unwrap();
        assert_eq!(s.bootstrap, vec![sa("127.0.0.1:6001")]);
        let bad = dir.join("bad.ini");
        std::fs::write(&bad, b"[dht]\np2p_address = 127.0.0.1:1\nx = \xff\n").unwrap();
        let msg = NodeSettings::from_file(&bad).unwrap_err().to_string();
        assert_eq!(msg, format!("{}:3: file is not valid UTF-8", bad.display()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
