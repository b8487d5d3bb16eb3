//! One proxied connection: optional request-head inspection, then a
//! bounded byte-for-byte copy in both directions that honours the stall
//! and delay switches.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::head::{self, MAX_HEAD};
use crate::state::{ConnGuard, KillReceiver, State};

/// Size of the copy buffer of each direction.
const COPY_BUF: usize = 16 * 1024;

pub const RESPONSE_503: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

enum Outcome {
    Done(io::Result<()>),
    Killed(tokio::sync::oneshot::Sender<()>),
}

pub async fn handle(
    state: Arc<State>,
    mut client: TcpStream,
    guard: ConnGuard,
    mut kill: KillReceiver,
) {
    let mut upstream: Option<TcpStream> = None;
    let outcome = {
        let work = serve(&state, &mut client, &mut upstream);
        tokio::pin!(work);
        tokio::select! {
            r = &mut work => Outcome::Done(r),
            Ok(ack) = &mut kill => Outcome::Killed(ack),
        }
    };
    match outcome {
        Outcome::Done(Ok(())) => drop(guard),
        Outcome::Done(Err(_)) => {
            // A reset or failed write on one side: close the other side
            // abortively too, as a direct connection would have been.
            abort(client, upstream);
            drop(guard);
        }
        Outcome::Killed(ack) => {
            abort(client, upstream);
            drop(guard);
            let _ = ack.send(());
        }
    }
}

/// Closes both sockets at once with a RST (zero linger), discarding
/// anything still buffered.
fn abort(client: TcpStream, upstream: Option<TcpStream>) {
    let _ = client.set_zero_linger();
    drop(client);
    if let Some(up) = upstream {
        let _ = up.set_zero_linger();
        drop(up);
    }
}

async fn serve(
    state: &State,
    client: &mut TcpStream,
    upstream_slot: &mut Option<TcpStream>,
) -> io::Result<()> {
    let mut head = Vec::new();
    if state.inspecting() {
        read_head(client, &mut head).await?;
        if let Some(end) = head::head_end(&head) {
            let found = head::inspect(&head[..end]);
            let s = &state.stats;
            let refused: Option<&AtomicU64> =
                if found.websocket && state.refuse_ws.load(Ordering::SeqCst) {
                    Some(&s.refused_ws)
                } else if found.sse && state.refuse_sse.load(Ordering::SeqCst) {
                    Some(&s.refused_sse)
                } else if found.poll && state.refuse_poll.load(Ordering::SeqCst) {
                    Some(&s.refused_poll)
                } else {
                    None
                };
            if let Some(counter) = refused {
                counter.fetch_add(1, Ordering::SeqCst);
                return refuse(client).await;
            }
        }
    }

    let addr = state.upstream();
    let up = match TcpStream::connect(addr).await {
        Ok(s) => upstream_slot.insert(s),
        Err(e) => {
            eprintln!("faultproxy: connecting to upstream {addr}: {e}");
            return Err(e);
        }
    };
    let _ = client.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (client_r, client_w) = client.split();
    let (up_r, up_w) = up.split();
    tokio::try_join!(
        pipe(state, client_r, up_w, &head),
        pipe(state, up_r, client_w, &[]),
    )?;
    Ok(())
}

/// Reads until the end of the first request head, EOF, or `MAX_HEAD`
/// bytes, whichever comes first. Everything read stays in `head`.
async fn read_head(client: &mut TcpStream, head: &mut Vec<u8>) -> io::Result<()> {
    head.resize(MAX_HEAD, 0);
    let mut len = 0;
    let result = loop {
        let n = match client.read(&mut head[len..]).await {
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        let searched_from = len.saturating_sub(3);
        len += n;
        if n == 0 || len == MAX_HEAD || head::head_end(&head[searched_from..len]).is_some() {
            break Ok(());
        }
    };
    head.truncate(len);
    result
}

/// Answers 503 and closes. The rest of the request is drained briefly so
/// that unread bytes do not turn the close into a RST that could destroy
/// the response before the client reads it.
async fn refuse(client: &mut TcpStream) -> io::Result<()> {
    client.write_all(RESPONSE_503).await?;
    client.shutdown().await?;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(n) = client.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    Ok(())
}

async fn wait_unstalled(stall: &mut watch::Receiver<bool>) {
    // The sender lives in `State` for the whole process, so this cannot
    // fail; if it ever did, forwarding simply continues.
    let _ = stall.wait_for(|stalled| !*stalled).await;
}

/// Copies `r` to `w` until EOF, then half-closes `w`. `prefix` (bytes
/// already read during head inspection) is forwarded first.
async fn pipe<R, W>(state: &State, mut r: R, mut w: W, prefix: &[u8]) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut stall = state.stall.subscribe();
    if !prefix.is_empty() {
        forward(state, &mut stall, &mut w, prefix).await?;
    }
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        // While stalled, leave incoming bytes in the socket.
        wait_unstalled(&mut stall).await;
        let n = r.read(&mut buf).await?;
        if n == 0 {
            // A FIN is data too: hold it while stalled.
            wait_unstalled(&mut stall).await;
            return w.shutdown().await;
        }
        forward(state, &mut stall, &mut w, &buf[..n]).await?;
    }
}

async fn forward<W>(
    state: &State,
    stall: &mut watch::Receiver<bool>,
    w: &mut W,
    mut data: &[u8],
) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    if let Some(delay) = state.delay() {
        tokio::time::sleep(delay).await;
    }
    while !data.is_empty() {
        wait_unstalled(stall).await;
        let n = w.write(data).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    Ok(())
}
