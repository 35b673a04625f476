//! Bearer tokens: the token file, the generated first token, and the check on each request.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Name given to the token the server generates on its first start.
pub const GENERATED_TOKEN_NAME: &str = "admin";
/// File name of the generated token inside the data directory.
pub const GENERATED_TOKEN_FILE: &str = "token";
/// Shortest token accepted, so that a guessable one never guards the API.
const MIN_TOKEN_LEN: usize = 16;

/// Why tokens cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token file could not be read or written.
    #[error("cannot {action} token file \"{path}\"")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A line of the token file is malformed. The line itself is never repeated: it may hold
    /// a token.
    #[error("token file \"{path}\" line {line}: {reason}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file has no token at all.
    #[error("token file \"{0}\" holds no token; expected lines \"name:token\"")]
    Empty(PathBuf),
}

/// The tokens that may call `/api/*`, each with the name recorded in the history.
#[derive(Clone)]
pub struct Tokens {
    /// Names with the SHA-256 of their token: comparing digests of equal length keeps the
    /// comparison constant-time whatever the length of the presented token.
    entries: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.entries.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Tokens").field("names", &names).finish_non_exhaustive()
    }
}

impl Tokens {
    /// Parses a token file: lines `name:token`, `#` comments and blank lines allowed.
    ///
    /// # Errors
    ///
    /// [`TokenError::BadLine`] naming the first bad line, or [`TokenError::Empty`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, TokenError> {
        let mut entries: Vec<(String, [u8; 32])> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| TokenError::BadLine {
                path: path.to_owned(),
                line: index + 1,
                reason: reason.to_owned(),
            };
            let Some((name, token)) = line.split_once(':') else {
                return Err(bad("expected \"name:token\", found no ':'"));
            };
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty() || !name.chars().all(is_name_char) {
                return Err(bad(
                    "the name must be letters, digits, '.', '_', '-' or '@', and not empty",
                ));
            }
            if token.len() < MIN_TOKEN_LEN || token.chars().any(char::is_whitespace) {
                return Err(bad(&format!(
                    "the token of \"{name}\" must be at least {MIN_TOKEN_LEN} characters \
                     without spaces"
                )));
            }
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if entries.iter().any(|(known, _)| known == name) {
                return Err(bad(&format!("the name \"{name}\" appears twice")));
            }
            if entries.iter().any(|(_, known)| *known == digest) {
                return Err(bad("this token is also given to another name"));
            }
            entries.push((name.to_owned(), digest));
        }
        if entries.is_empty() {
            return Err(TokenError::Empty(path.to_owned()));
        }
        Ok(Self { entries })
    }

    /// Reads and parses a token file.
    ///
    /// # Errors
    ///
    /// As [`Tokens::parse`], or [`TokenError::Io`].
    pub fn read(path: &Path) -> Result<Self, TokenError> {
        let text = fs::read_to_string(path).map_err(|source| TokenError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        })?;
        if let Ok(metadata) = fs::metadata(path)
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                auth.token_file = %path.display(),
                mode = format_args!("{:o}", metadata.permissions().mode() & 0o777),
                "the token file is readable by other users; make it mode 600"
            );
        }
        Self::parse(&text, path)
    }

    /// The tokens of `<data_dir>/token`, generating it (mode 0600) on the first start.
    ///
    /// The log names the file, never the token.
    ///
    /// # Errors
    ///
    /// [`TokenError::Io`] when the file can be neither read nor created.
    pub fn read_or_generate(data_dir: &Path) -> Result<Self, TokenError> {
        let path = data_dir.join(GENERATED_TOKEN_FILE);
        if path.exists() {
            tracing::info!(auth.token_file = %path.display(), "using the generated token");
            return Self::read(&path);
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(|err| TokenError::Io {
            action: "generate a token for",
            path: path.clone(),
            source: io::Error::other(err.to_string()),
        })?;
        let line = format!("{GENERATED_TOKEN_NAME}:{}\n", hex::encode(secret));
        let io = |action, source| TokenError::Io { action, path: path.clone(), source };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| io("create", source))?;
        file.write_all(line.as_bytes()).map_err(|source| io("write", source))?;
        file.sync_all().map_err(|source| io("sync", source))?;
        tracing::warn!(
            auth.token_file = %path.display(),
            "generated an API token; read it from this file (line \"admin:<token>\")"
        );
        Self::parse(&line, &path)
    }

    /// The name of the token `presented`, compared in constant time against every token.
    pub fn check(&self, presented: &[u8]) -> Option<&str> {
        let digest = Sha256::digest(presented);
        let mut found = None;
        // Every entry is compared, so the time taken does not tell which one matched.
        for (name, known) in &self.entries {
            if bool::from(known.ct_eq(digest.as_slice())) {
                found = Some(name.as_str());
            }
        }
        found
    }

    /// The token names, for the start-up log.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(name, _)| name.as_str())
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')
}

/// The token in an `Authorization: Bearer <token>` header value.
pub fn bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = header.split_at_checked(7)?;
    (scheme.eq_ignore_ascii_case(b"bearer ") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# operators\n\nalice: 0123456789abcdef0123\nci:ffffffffffffffff\n";

    #[test]
    fn parses_names_and_checks_tokens() {
        let tokens = Tokens::parse(GOOD, Path::new("t")).unwrap();
        assert_eq!(tokens.check(b"0123456789abcdef0123"), Some("alice"));
        assert_eq!(tokens.check(b"ffffffffffffffff"), Some("ci"));
        assert_eq!(tokens.check(b"ffffffffffffffff "), None);
        assert_eq!(tokens.check(b""), None);
        assert!(!format!("{tokens:?}").contains("0123"));
    }

    #[test]
    fn a_bad_line_is_named_without_its_content() {
        for (text, line, needle) in [
            ("a:0123456789abcdef\nno-colon-secret-value\n", 2, "no ':'"),
            ("# c\n:0123456789abcdef\n", 2, "name"),
            ("a:short\n", 1, "at least 16"),
            ("a:0123456789abcdef\na:0123456789abcdeg\n", 2, "twice"),
            ("a:0123456789abcdef\nb:0123456789abcdef\n", 2, "another name"),
        ] {
            let err = Tokens::parse(text, Path::new("/etc/t")).unwrap_err().to_string();
            assert!(err.contains(&format!("line {line}")) && err.contains(needle), "{err}");
            assert!(!err.contains("0123456789") && !err.contains("secret-value"), "{err}");
        }
        let err = Tokens::parse("# only comments\n", Path::new("t")).unwrap_err();
        assert!(matches!(err, TokenError::Empty(_)));
    }

    #[test]
    fn generates_a_private_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = Tokens::read_or_generate(dir.path()).unwrap();
        let path = dir.path().join(GENERATED_TOKEN_FILE);
        let text = fs::read_to_string(&path).unwrap();
        let token = text.trim().strip_prefix("admin:").unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(first.check(token.as_bytes()), Some("admin"));
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        let again = Tokens::read_or_generate(dir.path()).unwrap();
        assert_eq!(again.check(token.as_bytes()), Some("admin"));
    }

    #[test]
    fn reads_bearer_headers() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bear"), None);
    }
}
