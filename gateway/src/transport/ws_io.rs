//! The socket under tungstenite on a WebSocket connection.
//!
//! Two jobs, both for memory and CPU per connection:
//!
//! - Reading: tungstenite is configured without a read buffer of its own
//!   (it asks for a few bytes at a time); this layer reads the socket only
//!   once it is readable, into a chunk allocated for that read and freed as
//!   soon as tungstenite has taken it. An idle connection holds no read
//!   buffer at all.
//! - Writing: server frames are unmasked, so a data frame is a 2-10 byte
//!   header and the payload. [`WsIo::push_frame`] queues the header inline
//!   and the payload as the shared `Bytes` every subscriber got, and
//!   [`WsIo::poll_flush_out`] sends a whole batch with one vectored write:
//!   no copy into a per-connection write buffer, no UTF-8 check per
//!   delivery. What tungstenite itself writes (pongs, close frames) goes
//!   through the same queue, so the order on the wire is the order of the
//!   calls. The queue is freed once drained.
//! - permessage-deflate, when negotiated: [`WsIo::push_message`] sets RSV1
//!   on frames whose payload is the shared deflated bytes, and reads pass
//!   through [`Inbound`], which inflates compressed client messages before
//!   tungstenite sees them (see `ws_deflate`).

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::ws_deflate::Inbound;

/// Bytes asked of the socket per read: a typical client frame and then
/// some. The chunk lives only until tungstenite has taken its bytes.
const READ_CHUNK: usize = 4096;
/// Most queue entries given to one vectored write (two slices each; Linux
/// takes up to 1024).
const MAX_WRITE_ENTRIES: usize = 64;
/// Queues this short are written with a small slice array.
const FEW: usize = 4;
/// Bytes tungstenite may queue before its writes wait for the socket (only
/// control frames take this path).
const MAX_CONTROL_BYTES: usize = 64 * 1024;

/// WebSocket opcodes this layer writes.
#[derive(Debug, Clone, Copy)]
pub enum Opcode {
    /// Text (JSON frames).
    Text = 0x1,
    /// Binary (MessagePack frames).
    Binary = 0x2,
    /// Ping.
    Ping = 0x9,
}

/// One queued piece of output: an inline frame header (`head_len` may be
/// 0) followed by a payload.
#[derive(Debug)]
struct Entry {
    head: [u8; 10],
    head_len: u8,
    payload: Bytes,
}

impl Entry {
    fn len(&self) -> usize {
        usize::from(self.head_len) + self.payload.len()
    }
}

/// A TCP connection with on-demand buffers; see the module comment.
#[derive(Debug)]
pub struct WsIo {
    tcp: TcpStream,
    /// Bytes read but not yet taken by tungstenite (hyper's leftovers after
    /// the upgrade, or the rest of a read chunk).
    rbuf: Bytes,
    out: VecDeque<Entry>,
    /// Bytes of `out[0]` already written.
    written: usize,
    /// Bytes in `out`, minus `written`.
    out_len: usize,
    /// The inflating layer, on connections that negotiated
    /// permessage-deflate, with what it made of `rbuf` that tungstenite has
    /// not taken yet (boxed: others pay one pointer).
    inbound: Option<Box<(Inbound, Bytes)>>,
}

impl WsIo {
    /// Wraps an upgraded socket and the bytes hyper had read past the request.
    pub fn new(tcp: TcpStream, read_ahead: Bytes) -> Self {
        Self {
            tcp,
            // An empty `Bytes` may still hold hyper's whole read buffer.
            rbuf: if read_ahead.is_empty() {
                Bytes::new()
            } else {
                read_ahead
            },
            out: VecDeque::new(),
            written: 0,
            out_len: 0,
            inbound: None,
        }
    }

    /// Inflates compressed client messages of up to `cap` bytes from now on.
    pub fn inflate_inbound(&mut self, cap: usize) {
        self.inbound = Some(Box::new((Inbound::new(cap), Bytes::new())));
    }

    /// Polls the socket for readability (registering the task's waker when
    /// it is not) and tells whether bytes are buffered or may be read.
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let decoded = self.inbound.as_ref().is_some_and(|b| !b.1.is_empty());
        if !self.rbuf.is_empty() || decoded {
            return Poll::Ready(());
        }
        // An error is reported by the read that follows.
        self.tcp.poll_read_ready(cx).map(|_| ())
    }

    /// Whether output waits to be written.
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Queues one complete (FIN) unmasked frame.
    pub fn push_frame(&mut self, opcode: Opcode, payload: Bytes) {
        self.push_message(opcode, payload, false);
    }

    /// Queues one complete (FIN) unmasked frame; `deflated` sets RSV1 (the
    /// payload is a permessage-deflate message).
    pub fn push_message(&mut self, opcode: Opcode, payload: Bytes, deflated: bool) {
        let mut head = [0u8; 10];
        head[0] = 0x80 | if deflated { 0x40 } else { 0 } | opcode as u8;
        let len = payload.len();
        let head_len = if len < 126 {
            head[1] = len as u8;
            2
        } else if let Ok(len) = u16::try_from(len) {
            head[1] = 126;
            head[2..4].copy_from_slice(&len.to_be_bytes());
            4
        } else {
            head[1] = 127;
            head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        self.push(Entry {
            head,
            head_len,
            payload,
        });
    }

    /// Makes room for `n` more frames at once (a batch), instead of growing
    /// the queue step by step.
    pub fn reserve(&mut self, n: usize) {
        self.out.reserve(n);
    }

    fn push(&mut self, entry: Entry) {
        self.out_len += entry.len();
        self.out.push_back(entry);
    }

    /// Writes the queue to the socket, a batch per vectored write.
    pub fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            // A quiet connection writes one frame at a time: no need to
            // clear room for a whole batch of slices then.
            let n = if self.out.len() <= FEW {
                let mut slices = [IoSlice::new(&[]); FEW * 2];
                let count = fill_slices(&self.out, self.written, &mut slices);
                ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, &slices[..count]))?
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_WRITE_ENTRIES * 2];
                let count = fill_slices(&self.out, self.written, &mut slices);
                ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, &slices[..count]))?
            };
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.advance(n);
        }
        // Drained: the buffer goes back (a batch reserves what it needs).
        self.out = VecDeque::new();
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, mut n: usize) {
        self.out_len -= n;
        while let Some(front) = self.out.front() {
            let left = front.len() - self.written;
            if n < left {
                self.written += n;
                return;
            }
            n -= left;
            self.written = 0;
            self.out.pop_front();
        }
    }
}

/// Points `slices` at the unwritten part of the queue's first entries (two
/// slices per entry at most), skipping the `written` bytes of the first;
/// returns how many it used.
fn fill_slices<'a>(out: &'a VecDeque<Entry>, written: usize, slices: &mut [IoSlice<'a>]) -> usize {
    let mut count = 0;
    let mut skip = written;
    for e in out.iter().take(slices.len() / 2) {
        let head = &e.head[..usize::from(e.head_len)];
        for part in [head, &e.payload[..]] {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices[count] = IoSlice::new(&part[skip..]);
            skip = 0;
            count += 1;
        }
    }
    count
}

impl WsIo {
    /// Makes sure `rbuf` holds bytes, reading the socket once it is
    /// readable; `false` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        while self.rbuf.is_empty() {
            // No buffer until the socket has something to read.
            ready!(self.tcp.poll_read_ready(cx))?;
            let mut chunk = BytesMut::with_capacity(READ_CHUNK);
            match self.tcp.try_read_buf(&mut chunk) {
                Ok(0) => return Poll::Ready(Ok(false)),
                Ok(_) => self.rbuf = chunk.freeze(),
                // A spurious readiness; `poll_read_ready` waits again.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(true))
    }
}

/// Copies what fits of `from` into `buf`, dropping `from`'s reference once
/// it is used up so its chunk is freed now.
fn give(from: &mut Bytes, buf: &mut ReadBuf<'_>) {
    let n = from.len().min(buf.remaining());
    buf.put_slice(&from[..n]);
    from.advance(n);
    if from.is_empty() {
        *from = Bytes::new();
    }
}

impl AsyncRead for WsIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.inbound.is_none() {
            // End of stream: an empty read.
            if ready!(this.poll_fill(cx))? {
                give(&mut this.rbuf, buf);
            }
            return Poll::Ready(Ok(()));
        }
        while this.inbound.as_ref().is_some_and(|b| b.1.is_empty()) {
            if !ready!(this.poll_fill(cx))? {
                return Poll::Ready(Ok(()));
            }
            if let Some(b) = this.inbound.as_mut() {
                // tungstenite reports the error; `ws.rs` maps it to a close code.
                b.1 =
                    b.0.feed(&mut this.rbuf)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
        }
        if let Some(b) = this.inbound.as_mut() {
            give(&mut b.1, buf);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WsIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out_len + buf.len() > MAX_CONTROL_BYTES {
            // A peer that pings without reading must not grow the queue.
            ready!(this.poll_flush_out(cx))?;
        }
        this.push(Entry {
            head: [0; 10],
            head_len: 0,
            payload: Bytes::copy_from_slice(buf),
        });
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_out(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_out(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (WsIo, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (WsIo::new(server, Bytes::from_static(b"ahead")), client)
    }

    #[tokio::test]
    async fn frames_keep_their_order_with_tungstenite_writes() {
        let (mut io, mut client) = pair().await;
        io.push_frame(Opcode::Text, Bytes::from_static(b"hi"));
        io.write_all(b"\x8a\x00").await.unwrap(); // a pong, as tungstenite writes it
        let big = Bytes::from(vec![b'x'; 300]);
        io.push_frame(Opcode::Binary, big.clone());
        let huge = Bytes::from(vec![b'y'; 70_000]);
        io.push_frame(Opcode::Binary, huge.clone());
        io.flush().await.unwrap();
        assert!(!io.has_output());
        let mut want = b"\x81\x02hi\x8a\x00\x82\x7e\x01\x2c".to_vec();
        want.extend_from_slice(&big);
        want.extend_from_slice(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        want.extend_from_slice(&huge);
        let mut got = vec![0u8; want.len()];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn partial_writes_resume_where_they_stopped() {
        let (mut io, mut client) = pair().await;
        // More than the socket buffers hold: the flush waits for the reader
        // and resumes inside headers and payloads.
        let frames: Vec<Bytes> = (0..200u8)
            .map(|i| Bytes::from(vec![i; 40_000 + usize::from(i)]))
            .collect();
        let mut want = Vec::new();
        for f in &frames {
            io.push_frame(Opcode::Binary, f.clone());
            want.extend_from_slice(&[0x82, 126]);
            want.extend_from_slice(&(f.len() as u16).to_be_bytes());
            want.extend_from_slice(f);
        }
        let len = want.len();
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; len];
            client.read_exact(&mut got).await.unwrap();
            got
        });
        io.flush().await.unwrap();
        assert_eq!(reader.await.unwrap(), want);
    }

    #[tokio::test]
    async fn reads_give_the_read_ahead_first_then_the_socket() {
        let (mut io, mut client) = pair().await;
        client.write_all(b" and more").await.unwrap();
        let mut got = Vec::new();
        let mut small = [0u8; 3];
        while got.len() < 14 {
            let n = io.read(&mut small).await.unwrap();
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, b"ahead and more");
        assert!(io.rbuf.is_empty());
        drop(client);
        assert_eq!(io.read(&mut small).await.unwrap(), 0, "end of stream");
    }
}
