//! The part of Go's `net/url.Parse` that decides whether kube-apiserver accepts a KMS endpoint.
//!
//! kube-apiserver parses `kms.endpoint` with `url.Parse` and then wants the scheme `unix`. Only
//! the checks that can make `url.Parse` fail are reproduced, with Go's wording, plus the pieces
//! the socket address is taken from.

/// The pieces of a parsed endpoint that matter to kube-apiserver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GoUrl {
    /// The scheme, lowercased as Go does.
    pub(crate) scheme: String,
    /// The host of `scheme://host/...`, empty when there is none.
    pub(crate) host: String,
    /// The percent-decoded path, where a unix socket's address is taken from.
    pub(crate) path: String,
    /// Text after the scheme that is not a path (`unix:foo`).
    pub(crate) opaque: String,
    /// Whether the URL had a `?query` or `#fragment`, which the socket address drops.
    pub(crate) has_query_or_fragment: bool,
}

/// Parses like Go's `url.Parse`; the error reads like Go's `*url.Error`.
pub(crate) fn parse(raw: &str) -> Result<GoUrl, String> {
    let wrap = |url: &str, err: &str| format!("parse {}: {err}", go_quote(url));
    let (without_fragment, fragment) = match raw.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (raw, None),
    };
    let mut url =
        parse_without_fragment(without_fragment).map_err(|e| wrap(without_fragment, &e))?;
    if let Some(fragment) = fragment {
        unescape(fragment, Mode::Fragment).map_err(|e| wrap(raw, &e))?;
        url.has_query_or_fragment = true;
    }
    Ok(url)
}

fn parse_without_fragment(raw: &str) -> Result<GoUrl, String> {
    if raw.bytes().any(|b| b < b' ' || b == 0x7f) {
        return Err("net/url: invalid control character in URL".to_owned());
    }
    let mut url = GoUrl {
        scheme: String::new(),
        host: String::new(),
        path: String::new(),
        opaque: String::new(),
        has_query_or_fragment: false,
    };
    if raw == "*" {
        url.path = "*".to_owned();
        return Ok(url);
    }
    let (scheme, mut rest) = scheme(raw)?;
    url.scheme = scheme.to_ascii_lowercase();
    if let Some((head, _query)) = rest.split_once('?') {
        rest = head;
        url.has_query_or_fragment = true;
    }
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            url.opaque = rest.to_owned();
            return Ok(url);
        }
        let segment = rest.split('/').next().unwrap_or_default();
        if segment.contains(':') {
            return Err("first path segment in URL cannot contain colon".to_owned());
        }
    }
    if (!url.scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let authority_and_path = &rest[2..];
        let (authority, path) = match authority_and_path.find('/') {
            Some(i) => authority_and_path.split_at(i),
            None => (authority_and_path, ""),
        };
        url.host = host(authority)?;
        rest = path;
    }
    url.path = unescape(rest, Mode::Path)?;
    Ok(url)
}

/// Go's `getScheme`.
fn scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i == 0 => return Ok(("", raw)),
            b'0'..=b'9' | b'+' | b'-' | b'.' => {}
            b':' if i == 0 => return Err("missing protocol scheme".to_owned()),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// Go's `parseAuthority` and `parseHost`, reduced to the checks that can fail.
fn host(authority: &str) -> Result<String, String> {
    let host = match authority.rfind('@') {
        Some(i) => {
            let userinfo = &authority[..i];
            if !userinfo.bytes().all(valid_userinfo_byte) {
                return Err("net/url: invalid userinfo".to_owned());
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    if let Some(bracketed) = host.strip_prefix('[') {
        let Some(end) = bracketed.find(']') else {
            return Err("missing ']' in host".to_owned());
        };
        let port = &bracketed[end + 1..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {} after host", go_quote(port)));
        }
        return unescape(host, Mode::Host);
    }
    if let Some(i) = host.rfind(':') {
        let port = &host[i..];
        if !valid_optional_port(port) {
            return Err(format!("invalid port {} after host", go_quote(port)));
        }
    }
    unescape(host, Mode::Host)
}

fn valid_optional_port(port: &str) -> bool {
    port.is_empty() || port.strip_prefix(':').is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
}

fn valid_userinfo_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Host,
    Fragment,
}

/// Go's `unescape`: `%XX` must be two hex digits; a host may hold only certain characters.
fn unescape(text: &str, mode: Mode) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
                match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 3;
                    }
                    _ => {
                        let end = (i + 3).min(bytes.len());
                        let shown = String::from_utf8_lossy(&bytes[i..end]);
                        return Err(format!("invalid URL escape {}", go_quote(&shown)));
                    }
                }
            }
            b if mode == Mode::Host && b < 0x80 && !valid_host_byte(b) => {
                let shown = (b as char).to_string();
                return Err(format!("invalid character {} in host name", go_quote(&shown)));
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn valid_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.~!$&'()*+,;=:[]<>\"".contains(&b)
}

/// Go's `strconv.Quote`, as `%q` prints strings in errors.
pub(crate) fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\u{7}' => quoted.push_str("\\a"),
            '\u{8}' => quoted.push_str("\\b"),
            '\u{c}' => quoted.push_str("\\f"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            '\u{b}' => quoted.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                quoted.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_unix_endpoints() {
        let url = parse("unix:///var/run/kms-provider.sock").unwrap();
        assert_eq!(
            (url.scheme.as_str(), url.path.as_str()),
            ("unix", "/var/run/kms-provider.sock")
        );
        let url = parse("UNIX:///@abstract").unwrap();
        assert_eq!((url.scheme.as_str(), url.path.as_str()), ("unix", "/@abstract"));
        let url = parse("unix://run/kms.sock").unwrap();
        assert_eq!((url.host.as_str(), url.path.as_str()), ("run", "/kms.sock"));
        let url = parse("unix:///a%20b?x#y").unwrap();
        assert_eq!(url.path, "/a b");
        assert!(url.has_query_or_fragment);
        assert_eq!(parse("unix:relative").unwrap().opaque, "relative");
    }

    #[test]
    fn schemes_as_go_sees_them() {
        assert_eq!(parse("/run/kms.sock").unwrap().scheme, "");
        assert_eq!(parse("run/kms.sock").unwrap().scheme, "");
        assert_eq!(parse("https://www.foo.com").unwrap().scheme, "https");
        assert_eq!(parse("tcp://127.0.0.1:8080").unwrap().scheme, "tcp");
        assert_eq!(parse("localhost:8080").unwrap().scheme, "localhost");
    }

    #[test]
    fn fails_where_go_fails() {
        let cases = [
            (
                "unix:///foo\n.socket",
                r#"parse "unix:///foo\n.socket": net/url: invalid control character in URL"#,
            ),
            (":foo", r#"parse ":foo": missing protocol scheme"#),
            (
                "1.2.3.4:80/x",
                r#"parse "1.2.3.4:80/x": first path segment in URL cannot contain colon"#,
            ),
            (
                "unix://host:port/x",
                r#"parse "unix://host:port/x": invalid port ":port" after host"#,
            ),
            ("unix:///a%zzb", r#"parse "unix:///a%zzb": invalid URL escape "%zz""#),
            ("unix:///a%2", r#"parse "unix:///a%2": invalid URL escape "%2""#),
            ("unix://a b/x", r#"parse "unix://a b/x": invalid character " " in host name"#),
            ("unix:///x#%zz", r#"parse "unix:///x#%zz": invalid URL escape "%zz""#),
        ];
        for (input, message) in cases {
            assert_eq!(parse(input).unwrap_err(), message, "{input}");
        }
    }
}
