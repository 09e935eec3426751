//! Small answers written with one plain `write`. hyper hands an HTTP/1 connection each answer
//! as two pieces, its head and its body, for one vectored write. For an answer of a few hundred
//! bytes (most JSON answers: a head with Backstage's security headers and a short body) the
//! kernel spends less on one buffer than on two, by more than the copy that joins them costs.
//! Larger answers go on as hyper gave them, uncopied.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes joined into one buffer: past a few kilobytes the copy costs about what the
/// second piece costs the kernel.
const JOINED: usize = 4 * 1024;

/// A connection's stream whose vectored writes of at most [`JOINED`] bytes are one plain write.
pub(crate) struct JoinedWrites<T> {
    inner: T,
    /// Where the pieces are joined: kept for the connection, never more than [`JOINED`] bytes.
    joined: Vec<u8>,
}

impl<T> JoinedWrites<T> {
    pub(crate) fn new(inner: T) -> Self {
        JoinedWrites {
            inner,
            joined: Vec::new(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JoinedWrites<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JoinedWrites<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if bufs.len() < 2 || bufs.iter().map(|b| b.len()).sum::<usize>() > JOINED {
            return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        }
        // A write takes its bytes from the front, as a vectored write takes them from the
        // pieces in order: the count it reports means the same to the caller.
        this.joined.clear();
        for buf in bufs {
            this.joined.extend_from_slice(buf);
        }
        Pin::new(&mut this.inner).poll_write(cx, &this.joined)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A stream that records its writes, each as plain or vectored with the bytes it took, and
    /// takes at most `room` bytes a write.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(&'static str, Vec<u8>)>,
        room: usize,
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let taken = buf[..buf.len().min(self.room)].to_vec();
            let n = taken.len();
            self.writes.push(("plain", taken));
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<std::io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let taken = all[..all.len().min(self.room)].to_vec();
            let n = taken.len();
            self.writes.push(("vectored", taken));
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn joined(room: usize) -> JoinedWrites<Recorder> {
        JoinedWrites::new(Recorder {
            writes: Vec::new(),
            room,
        })
    }

    #[tokio::test]
    async fn a_small_answer_is_one_plain_write_of_its_pieces_in_order() {
        let mut stream = joined(usize::MAX);
        let (head, body) = (b"HTTP/1.1 200 OK\r\n\r\n".as_slice(), b"{}".as_slice());
        let n = stream
            .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
            .await
            .unwrap();
        assert_eq!(n, head.len() + body.len());
        assert_eq!(stream.inner.writes, [("plain", [head, body].concat())]);
        assert!(stream.is_write_vectored());
    }

    #[tokio::test]
    async fn a_short_write_reports_the_bytes_taken_from_the_front() {
        let mut stream = joined(5);
        let n = stream
            .write_vectored(&[IoSlice::new(b"abc"), IoSlice::new(b"defg")])
            .await
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(stream.inner.writes, [("plain", b"abcde".to_vec())]);
    }

    #[tokio::test]
    async fn a_large_answer_and_a_single_piece_go_on_as_they_came() {
        let mut stream = joined(usize::MAX);
        let big = vec![7u8; JOINED];
        let n = stream
            .write_vectored(&[IoSlice::new(b"head"), IoSlice::new(&big)])
            .await
            .unwrap();
        assert_eq!(n, 4 + JOINED);
        let n = stream
            .write_vectored(&[IoSlice::new(b"one")])
            .await
            .unwrap();
        assert_eq!(n, 3);
        let kinds: Vec<_> = stream.inner.writes.iter().map(|w| w.0).collect();
        assert_eq!(kinds, ["vectored", "vectored"]);
        assert_eq!(stream.inner.writes[0].1.len(), 4 + JOINED);
        assert!(stream.joined.capacity() == 0, "nothing was copied");
    }
}
