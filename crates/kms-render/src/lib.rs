//! Turns validated UCP KMS settings into the EncryptionConfiguration file kube-apiserver loads.
//!
//! Layer: above `kms-model`, below the host side and the front ends. It does no file I/O: the
//! caller reads the installed file and writes the result.
