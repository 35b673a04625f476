//! The host side of ucp-kms: what the API server container mounts, whether the KMS plugin is
//! there and healthy, and the EncryptionConfiguration file ucp-kms owns on disk.
//!
//! Layer: above `kms-model` and `kms-render`; the only library crate that touches the host
//! (files, sockets, the plugin's gRPC API). Front ends call it; it never calls them.
//!
//! - [`plan`]: the API server's bind mounts and flags, a pure function of the settings.
//! - [`preflight`]: the plugin socket (missing, not a socket, stale, listening), directory
//!   modes, and the plugin's health through [`plugin`].
//! - [`install`]: the owned EncryptionConfiguration, written atomically (0600 in a 0700
//!   directory) with the previous version kept for rollback and a record of what was installed.
//! - [`drift`]: the installed file against the render of the settings, with a unified diff.
//! - [`status`]: drift, socket and plugin health in one serializable answer, the same for the
//!   command line and the server.
//!
//! Host paths are absolute and interpreted under a root directory, so every step can run in a
//! sandbox:
//!
//! ```
//! use std::path::Path;
//!
//! use kms_model::{Endpoint, KmsSettings, KubeVersion};
//! use kms_mount::drift::{self, Installation};
//! use kms_mount::install::{DEFAULT_ENCRYPTION_CONFIG, OwnedFile};
//! use kms_mount::plan::{PlanOptions, plan};
//!
//! let settings = KmsSettings {
//!     enabled: true,
//!     name: "vault".to_owned(),
//!     endpoint: Some(Endpoint::Path("/run/kmsplugin/socket.sock".to_owned())),
//!     ..KmsSettings::disabled()
//! };
//! let version = KubeVersion::DEFAULT;
//! let root = tempfile::tempdir()?;
//! let file = OwnedFile::new(root.path(), Path::new(DEFAULT_ENCRYPTION_CONFIG))?;
//!
//! // After a hand edit, the transition starts from the file ucp-kms last installed.
//! let installation = Installation::read(&file, version)?;
//! let desired = drift::desired(&settings, version, installation.start())?.expect("KMS is on");
//! file.install(&desired.yaml)?;
//! assert!(!drift::compare(file.read()?.as_deref(), Some(&desired.yaml)).is_drifted());
//!
//! let plan = plan(&settings, version, &PlanOptions::default().with_installed(&desired.config))?;
//! assert_eq!(plan.mounts[1].source, Path::new("/run/kmsplugin"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
pub mod drift;
pub mod install;
pub mod plan;
pub mod plugin;
pub mod preflight;
pub mod status;
