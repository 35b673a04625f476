//! The log on stderr through tracing, filtered by `UCP_KMS_LOG`, then `RUST_LOG`, then `info`.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the stderr subscriber. An explicit filter in the environment wins over `-v`, so
/// operators can tune one module without restarting with other flags.
pub fn init(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = ["UCP_KMS_LOG", "RUST_LOG"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|value| !value.is_empty()))
        .and_then(|value| EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).try_init(),
        LogFormat::Text => {
            let color = std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
            builder
                .with_ansi(color && std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .try_init()
        }
    };
}
