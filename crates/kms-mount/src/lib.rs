//! The host side of ucp-kms: what the API server container mounts, whether the KMS plugin is
//! there and healthy, and the EncryptionConfiguration file ucp-kms owns on disk.
//!
//! Layer: above `kms-model` and `kms-render`; the only library crate that touches the host
//! (files, sockets, the plugin's gRPC API). Front ends call it; it never calls them.
pub mod plugin;
pub mod drift;
pub mod install;
pub mod plan;
pub mod preflight;
