//! `auscult health`: asks a running server's `/health` whether it serves, for
//! container health checks (the image carries no curl). Plain HTTP/1.1 over a
//! std `TcpStream`: the probe runs every few seconds beside the server, so it
//! starts no async runtime and opens no database.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Why the probe failed; every variant means "unhealthy" to the caller.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no answer from {addr}: {source}")]
    Exchange {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr} answered {status_line:?}")]
    Unhealthy {
        addr: SocketAddr,
        status_line: String,
    },
}

/// Where a server listening on `listen` is reached from its own machine: an
/// unspecified address (`0.0.0.0`, `::`) on loopback, anything else as is.
pub fn local_addr(listen: SocketAddr) -> SocketAddr {
    match listen {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, a.port()))
        }
        other => other,
    }
}

/// GET `path` on `addr`; Ok when the answer's status is 2xx. `timeout`
/// bounds the connect and each read and write.
pub fn check(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), ProbeError> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| ProbeError::Connect { addr, source })?;
    let exchange = |source| ProbeError::Exchange { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(exchange)?;
    stream.set_write_timeout(Some(timeout)).map_err(exchange)?;
    // A loopback Host: the server always answers to it, whatever
    // AUSCULT_ALLOWED_HOSTS says.
    let host = match addr {
        SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: auscult-health\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(exchange)?;
    let status_line = read_status_line(&mut stream).map_err(exchange)?;
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        _ => Err(ProbeError::Unhealthy { addr, status_line }),
    }
}

/// The response's first line (at most 256 bytes of it).
fn read_status_line(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while line.len() < 256 {
        if stream.read(&mut byte)? == 0 || byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&line).trim_end().to_owned())
}
