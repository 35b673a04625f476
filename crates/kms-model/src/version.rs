//! The target Kubernetes version and the encryption rules that change with it.

use std::fmt;
use std::str::FromStr;

/// A Kubernetes minor release (`1.X`) that ucp-kms can target, from 1.14 through 1.36.
///
/// Every rule that differs between releases is a method here, so callers never compare
/// version numbers themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KubeVersion {
    minor: u16,
}

impl KubeVersion {
    /// The oldest supported target: the release Docker UCP 3.2.5 shipped.
    pub const OLDEST: Self = Self { minor: 14 };
    /// The newest supported target.
    pub const NEWEST: Self = Self { minor: 36 };
    /// The target used when none is given.
    pub const DEFAULT: Self = Self::NEWEST;

    /// The version `1.<minor>`, if it lies in the supported range.
    pub const fn new(minor: u16) -> Option<Self> {
        if minor >= Self::OLDEST.minor && minor <= Self::NEWEST.minor {
            Some(Self { minor })
        } else {
            None
        }
    }

    /// The minor number (`36` for 1.36).
    pub const fn minor(self) -> u16 {
        self.minor
    }

    /// KMS v2 exists (alpha from 1.25).
    pub const fn has_kms_v2(self) -> bool {
        self.minor >= 25
    }

    /// KMS v2 is generally available (1.29) and is the inferred default.
    pub const fn kms_v2_is_ga(self) -> bool {
        self.minor >= 29
    }

    /// KMS v1 is deprecated (1.28).
    pub const fn kms_v1_is_deprecated(self) -> bool {
        self.minor >= 28
    }

    /// KMS v1 needs `--feature-gates=KMSv1=true` (1.29).
    pub const fn kms_v1_needs_gate(self) -> bool {
        self.minor >= 29
    }

    /// kube-apiserver has a `KMSv2` feature gate (1.25 to 1.31; it was removed in 1.32).
    pub const fn has_kms_v2_gate(self) -> bool {
        self.minor >= 25 && self.minor <= 31
    }

    /// The `KMSv2` gate is on by default (beta from 1.27).
    pub const fn kms_v2_gate_default(self) -> bool {
        self.minor >= 27
    }

    /// The `KMSv2` gate is locked on (generally available, 1.29 to 1.31).
    pub const fn kms_v2_gate_locked(self) -> bool {
        self.minor >= 29 && self.minor <= 31
    }

    /// The kms block has an `apiVersion` field (1.25).
    pub const fn has_kms_api_version_field(self) -> bool {
        self.minor >= 25
    }

    /// `--encryption-provider-config-automatic-reload` exists (1.26).
    pub const fn has_automatic_reload(self) -> bool {
        self.minor >= 26
    }

    /// Resource names are checked: lowercase, wildcards, overlaps, masking (1.27).
    pub const fn checks_resource_names(self) -> bool {
        self.minor >= 27
    }

    /// Unknown and duplicate fields are rejected when the file is decoded (1.31).
    pub const fn decodes_strictly(self) -> bool {
        self.minor >= 31
    }
}

impl Default for KubeVersion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1.{}", self.minor)
    }
}

/// Why a Kubernetes version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "kubernetes version must be 1.{oldest} to 1.{newest} (like \"1.29\"), got \"{input}\"",
    oldest = KubeVersion::OLDEST.minor,
    newest = KubeVersion::NEWEST.minor
)]
pub struct ParseKubeVersionError {
    input: String,
}

impl FromStr for KubeVersion {
    type Err = ParseKubeVersionError;

    /// Accepts `1.29`, `v1.29` and a patch release such as `1.29.3`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = || ParseKubeVersionError { input: input.to_owned() };
        let trimmed = input.strip_prefix('v').unwrap_or(input);
        let mut parts = trimmed.split('.');
        let (Some("1"), Some(minor)) = (parts.next(), parts.next()) else {
            return Err(err());
        };
        if let Some(patch) = parts.next()
            && (patch.is_empty() || !patch.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(err());
        }
        if parts.next().is_some() || minor.is_empty() || !minor.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err());
        }
        minor.parse().ok().and_then(Self::new).ok_or_else(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_supported_forms() {
        assert_eq!("1.29".parse::<KubeVersion>().unwrap().minor(), 29);
        assert_eq!("v1.14".parse::<KubeVersion>().unwrap(), KubeVersion::OLDEST);
        assert_eq!("1.36.2".parse::<KubeVersion>().unwrap(), KubeVersion::NEWEST);
    }

    #[test]
    fn refuses_out_of_range_and_garbage() {
        for input in ["1.13", "1.37", "2.0", "1", "1.x", "", "1.29.", "1.29.1.1", "1.+29"] {
            let err = input.parse::<KubeVersion>().unwrap_err();
            assert!(err.to_string().contains(&format!("\"{input}\"")), "{err}");
        }
    }

    #[test]
    fn rules_switch_at_their_release() {
        let v = |m| KubeVersion::new(m).unwrap();
        assert!(!v(24).has_kms_v2() && v(25).has_kms_v2());
        assert!(!v(28).kms_v1_needs_gate() && v(29).kms_v1_needs_gate());
        assert!(!v(30).decodes_strictly() && v(31).decodes_strictly());
        assert!(!v(26).checks_resource_names() && v(27).checks_resource_names());
    }
}
