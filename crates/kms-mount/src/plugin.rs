//! The KMS plugin over its gRPC API: a client that judges a plugin as kube-apiserver does, and a
//! development plugin to test against.
//!
//! Both KMS plugin APIs are spoken over a UNIX socket, a file or a Linux abstract name: KMS v1
//! (`v1beta1`: Version, Encrypt, Decrypt) and KMS v2 (`v2`: Status, Encrypt, Decrypt). The
//! messages are generated from `.proto` files at build time, without `protoc`.
//!
//! ```no_run
//! use kms_model::Endpoint;
//! use kms_mount::plugin::{ProbeOptions, probe};
//!
//! # async fn example() {
//! let endpoint = Endpoint::Path("/run/kmsplugin/socket.sock".to_owned());
//! let options = ProbeOptions { roundtrip: true, ..ProbeOptions::default() };
//! let report = probe(&endpoint, &options).await;
//! if !report.healthy {
//!     eprintln!("plugin unhealthy: {}", report.error().unwrap_or_default());
//! }
//! # }
//! ```

pub mod api;
pub mod client;
pub mod dev;
mod probe;

pub use probe::{
    CallRecord, DEFAULT_TIMEOUT, Diagnosis, NoListener, ProbeOptions, ProbeReport, probe,
};
