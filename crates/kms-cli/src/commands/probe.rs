//! `ucp-kms probe`: ask a KMS plugin over its gRPC API whether kube-apiserver would accept it.

use std::io::{self, Write};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use kms_model::{Endpoint, KmsApiVersion};
use kms_mount::plugin::{ProbeOptions, ProbeReport};

use crate::Outcome;
use crate::cli::{GlobalArgs, OutputFormat};
use crate::output::print_json;

/// Arguments of `ucp-kms probe`.
#[derive(Debug, Args)]
pub(crate) struct ProbeArgs {
    /// The plugin's socket: /path.sock, unix:///path.sock, @name or unix:///@name (abstract).
    #[arg(long, value_name = "E", value_parser = parse_endpoint)]
    endpoint: Endpoint,

    /// The KMS plugin API to speak.
    #[arg(long, value_name = "V", value_enum, default_value_t = ApiVersion::V2)]
    api_version: ApiVersion,

    /// Also encrypt 32 random bytes and decrypt them again, as kube-apiserver does with each
    /// DEK. For KMS v1 this is kube-apiserver's own health check.
    #[arg(long)]
    roundtrip: bool,

    /// Deadline of each call, as a Go duration ("3s", "500ms"); kube-apiserver's default.
    #[arg(long, value_name = "D", default_value = "3s", value_parser = parse_timeout)]
    timeout: Duration,
}

/// The KMS plugin API, as the command line spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum ApiVersion {
    /// KMS v1, gRPC package `v1beta1` (Version, Encrypt, Decrypt).
    V1,
    /// KMS v2, gRPC package `v2` (Status, Encrypt, Decrypt).
    V2,
}

impl From<ApiVersion> for KmsApiVersion {
    fn from(version: ApiVersion) -> Self {
        match version {
            ApiVersion::V1 => Self::V1,
            ApiVersion::V2 => Self::V2,
        }
    }
}

pub(crate) fn run(args: &ProbeArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let options = ProbeOptions {
        api_version: args.api_version.into(),
        timeout: args.timeout,
        roundtrip: args.roundtrip,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(kms_mount::plugin::probe(&args.endpoint, &options));

    match global.output {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print_text(&report)?,
    }
    Ok(if report.healthy { Outcome::Yes } else { Outcome::No })
}

/// The longest key ID printed whole; longer ones are cut, with their length.
const KEY_ID_SHOWN: usize = 64;

fn print_text(report: &ProbeReport) -> io::Result<()> {
    let mut out = io::stdout().lock();
    let verdict = if report.healthy { "healthy" } else { "unhealthy" };
    writeln!(out, "KMS {} plugin at {}: {verdict}", report.api_version, report.endpoint)?;
    if let Some(version) = &report.version {
        writeln!(out, "  API version  {version:?}")?;
    }
    if let Some(key_id) = &report.key_id {
        writeln!(out, "  key ID       {}", shown_key_id(key_id))?;
    }
    for call in &report.calls {
        let status = if call.ok { "ok" } else { "failed" };
        writeln!(out, "  {:<12} {status:<6} {:>9.1} ms", call.method, call.latency_ms)?;
    }
    for diagnosis in &report.diagnoses {
        writeln!(out, "problem: {diagnosis}")?;
        writeln!(out, "  remedy: {}", diagnosis.remedy())?;
    }
    Ok(())
}

fn shown_key_id(key_id: &str) -> String {
    if key_id.len() <= KEY_ID_SHOWN {
        return format!("{key_id:?}");
    }
    let cut = (0..=KEY_ID_SHOWN).rev().find(|at| key_id.is_char_boundary(*at)).unwrap_or(0);
    format!("{:?}... ({} bytes)", &key_id[..cut], key_id.len())
}

/// Parses a plugin endpoint with the rules of `kms_endpoint`: `/path.sock`,
/// `unix:///path.sock`, `@name` or `unix:///@name`.
pub(crate) fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    text.parse::<Endpoint>().map_err(|err| err.to_string())
}

/// Parses a Go duration such as `3s` or `500ms`; it must be longer than zero.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = kms_model::duration::parse_go_duration(text).map_err(|err| err.to_string())?;
    match duration.to_std() {
        Some(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(format!("expected a duration longer than zero, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_parsed_like_kms_endpoint() {
        let path = |p: &str| Ok(Endpoint::Path(p.to_owned()));
        let name = |n: &str| Ok(Endpoint::Abstract(n.to_owned()));
        assert_eq!(parse_endpoint("/run/kms/p.sock"), path("/run/kms/p.sock"));
        assert_eq!(parse_endpoint("unix:///run/kms/p.sock"), path("/run/kms/p.sock"));
        assert_eq!(parse_endpoint("@kms"), name("kms"));
        assert_eq!(parse_endpoint("unix:///@kms"), name("kms"));
        for bad in ["run/p.sock", "unix://run/p.sock", "", "/", "@", "unix:///@", "https://x"] {
            assert!(parse_endpoint(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn timeouts_are_go_durations_longer_than_zero() {
        assert_eq!(parse_timeout("3s"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("-1s").is_err());
        assert!(parse_timeout("3").unwrap_err().contains("missing unit"));
    }

    #[test]
    fn long_key_ids_are_cut() {
        assert_eq!(shown_key_id("kek-1"), "\"kek-1\"");
        let long = shown_key_id(&"k".repeat(1025));
        assert!(long.ends_with("... (1025 bytes)") && long.len() < 90, "{long}");
    }
}
