//! A bound on client connections: an accepted connection beyond `connections_max` is closed at
//! once, before TLS or HTTP/2 spend anything on it. A place comes back when its connection ends.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A TCP connection holding one of the server's connection places.
pub struct Limited {
    io: TcpStream,
    _place: OwnedSemaphorePermit,
}

/// The accepted connections of `incoming`, at most `max` open at once.
pub fn limit(
    incoming: impl Stream<Item = io::Result<TcpStream>> + Send + 'static,
    max: usize,
) -> impl Stream<Item = io::Result<Limited>> + Send + 'static {
    let places = Arc::new(Semaphore::new(max.max(1)));
    incoming.filter_map(move |r| {
        let places = places.clone();
        async move {
            match r {
                Err(e) => Some(Err(e)),
                Ok(io) => match places.try_acquire_owned() {
                    Ok(p) => Some(Ok(Limited { io, _place: p })),
                    Err(_) => {
                        tracing::warn!(
                            peer = ?io.peer_addr().ok(),
                            "connection limit ({max}) reached: closing a new connection"
                        );
                        None // dropped: closed
                    }
                },
            }
        }
    })
}

impl Connected for Limited {
    type ConnectInfo = TcpConnectInfo;
    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Past the limit a new connection is closed at once; a place comes back when a connection
    /// held by the server ends.
    #[tokio::test]
    async fn connections_past_the_limit_are_closed_and_places_come_back() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let mut accepted = Box::pin(limit(incoming, 2));
        let _c1 = TcpStream::connect(addr).await.unwrap();
        let _c2 = TcpStream::connect(addr).await.unwrap();
        let mut c3 = TcpStream::connect(addr).await.unwrap();
        let s1 = accepted.next().await.unwrap().unwrap();
        let _s2 = accepted.next().await.unwrap().unwrap();
        // Both places taken: the third is accepted and closed inside the stream, which then
        // waits for a fourth connection (the wait is cut short; the stream keeps its state).
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(300), accepted.next()).await;
        assert!(waited.is_err(), "nothing past the limit is handed out");
        let mut buf = [0u8; 1];
        assert_eq!(
            c3.read(&mut buf).await.unwrap_or(0),
            0,
            "closed past the limit"
        );
        drop(s1);
        let _c4 = TcpStream::connect(addr).await.unwrap();
        let s4 = accepted.next().await.unwrap();
        assert!(s4.is_ok(), "a freed place takes a new connection");
    }
}
