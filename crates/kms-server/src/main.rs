//! `ucp-kms-server`: UCP's configuration API and a reconciler for the EncryptionConfiguration.

fn main() {}
