//! A minimal HTTP/1.1 client over one kept-alive TCP connection, for timing sequential requests
//! without a client library's own pools, retries and runtimes in the measurement.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// Largest answer accepted: every answer of the server is a few kilobytes.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// An answer: status code and body.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: u16,
    /// The body bytes.
    pub(crate) body: Vec<u8>,
}

/// One kept-alive connection with a bearer token.
pub(crate) struct Client {
    reader: BufReader<TcpStream>,
    token: String,
}

impl Client {
    /// Connects to `addr`.
    ///
    /// # Errors
    ///
    /// When the connection is refused.
    pub(crate) fn connect(addr: SocketAddr, token: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .with_context(|| format!("cannot connect to \"{addr}\""))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self { reader: BufReader::new(stream), token: token.to_owned() })
    }

    /// Sends one request and reads its answer, keeping the connection open.
    ///
    /// # Errors
    ///
    /// When the connection breaks or the answer is not HTTP/1.1 with a `Content-Length`.
    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> anyhow::Result<Answer> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/toml\r\nContent-Length: {}\r\n\r\n",
            self.token,
            body.len()
        );
        // One write for head and body, so Nagle's algorithm cannot hold the body back.
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.reader.get_mut().write_all(&request).context("cannot send the request")?;
        read_answer(&mut self.reader)
    }
}

/// Reads the status line, the headers and a `Content-Length` body.
fn read_answer(reader: &mut impl BufRead) -> anyhow::Result<Answer> {
    let mut line = String::new();
    reader.read_line(&mut line).context("cannot read the status line")?;
    let status = match line.split_whitespace().collect::<Vec<_>>()[..] {
        ["HTTP/1.1", code, ..] => code.parse().with_context(|| format!("bad status {line:?}"))?,
        _ => bail!("expected an HTTP/1.1 status line, got {line:?}"),
    };

    let mut length = None;
    loop {
        line.clear();
        if reader.read_line(&mut line).context("cannot read a header")? == 0 {
            bail!("the connection closed inside the headers");
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = Some(value.trim().parse::<usize>().context("bad Content-Length")?);
        }
    }

    let length = length.context("the answer has no Content-Length")?;
    if length > MAX_BODY {
        bail!("the answer has {length} bytes, more than the {MAX_BODY} expected at most");
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).context("cannot read the body")?;
    Ok(Answer { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_consecutive_answers_from_one_stream() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\netag: \"x\"\r\n\r\nhello\
                     HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}";
        let mut reader = &wire[..];
        let first = read_answer(&mut reader).unwrap();
        assert_eq!((first.status, first.body.as_slice()), (200, &b"hello"[..]));
        let second = read_answer(&mut reader).unwrap();
        assert_eq!((second.status, second.body.as_slice()), (400, &b"{}"[..]));
    }

    #[test]
    fn refuses_answers_it_cannot_frame() {
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
        let err = read_answer(&mut &chunked[..]).unwrap_err().to_string();
        assert!(err.contains("Content-Length"), "{err}");
        assert!(read_answer(&mut &b"SSH-2.0-OpenSSH\r\n"[..]).is_err());
    }
}
