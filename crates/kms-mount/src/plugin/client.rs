//! Opening a gRPC channel to a KMS plugin over its UNIX socket, a file or an abstract name.

use std::io;

use hyper_util::rt::TokioIo;
use kms_model::Endpoint;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Uri};

/// The gRPC authority kube-apiserver sends to KMS plugins; some plugins check it.
const AUTHORITY_URI: &str = "http://localhost";

/// A channel to the plugin at `endpoint`. It connects on first use, so a missing plugin shows up
/// as the error of the first call, where the caller can tell it apart from other failures.
pub fn channel(endpoint: &Endpoint) -> Channel {
    let endpoint = endpoint.clone();
    let connector = tower::service_fn(move |_: Uri| {
        let endpoint = endpoint.clone();
        async move { connect(&endpoint).await.map(TokioIo::new) }
    });
    tonic::transport::Endpoint::from_static(AUTHORITY_URI).connect_with_connector_lazy(connector)
}

/// Connects a stream to the plugin socket.
///
/// # Errors
///
/// The I/O error of the connection attempt: `NotFound` for a missing socket file,
/// `ConnectionRefused` for a socket nobody listens on.
pub async fn connect(endpoint: &Endpoint) -> io::Result<UnixStream> {
    match endpoint {
        Endpoint::Path(path) => UnixStream::connect(path).await,
        Endpoint::Abstract(name) => connect_abstract(name),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn connect_abstract(name: &str) -> io::Result<UnixStream> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;

    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    // Connecting a UNIX socket does not wait for the peer to accept, so the blocking call
    // returns at once; the stream is switched to non-blocking before tokio takes it.
    let stream = std::os::unix::net::UnixStream::connect_addr(&address)?;
    stream.set_nonblocking(true)?;
    UnixStream::from_std(stream)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn connect_abstract(name: &str) -> io::Result<UnixStream> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("abstract socket \"@{name}\" needs Linux"),
    ))
}
