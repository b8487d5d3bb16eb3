//! A bench-side WebSocket subscriber on a bare socket that can negotiate
//! permessage-deflate (tungstenite cannot), for the compression axis: the
//! same client with and without the offer, so bytes and CPU are compared on
//! equal terms. It keeps an inflater per connection and resets it per
//! message when the server answered `server_no_context_takeover` (livegate),
//! or keeps its window otherwise (servers that deflate per connection, such
//! as Node `ws`).

use flate2::{Decompress, FlushDecompress, Status};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::deflate::SYNC_TAIL;

/// Largest message it accepts.
const MAX_MESSAGE: usize = 16 << 20;

/// One subscriber connection.
pub struct RawWs {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Set when permessage-deflate was negotiated.
    inflater: Option<Decompress>,
    /// Whether the server keeps its compression context between messages.
    takeover: bool,
    raw: Vec<u8>,
}

impl RawWs {
    /// Connects to `ws://host:port/path`, offering permessage-deflate when
    /// `deflate` (and failing if the server does not accept it).
    pub async fn connect(url: &str, deflate: bool) -> Result<Self, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        let authority = uri
            .authority()
            .ok_or("no host in the URL")?
            .as_str()
            .to_owned();
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let tcp = TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("connect {authority}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let (read, mut writer) = tcp.into_split();
        let offer = if deflate {
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        } else {
            ""
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        writer
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::with_capacity(4096, read);
        let mut line = String::new();
        let mut status = None;
        let mut extensions = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("the server closed during the handshake".into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if status.is_none() {
                status = l.split_whitespace().nth(1).map(str::to_owned);
            } else if let Some((k, v)) = l.split_once(':') {
                if k.trim().eq_ignore_ascii_case("sec-websocket-extensions") {
                    extensions.push_str(v.trim());
                }
            }
        }
        if status.as_deref() != Some("101") {
            return Err(format!("handshake answered {status:?}"));
        }
        let negotiated = extensions.contains("permessage-deflate");
        if deflate && !negotiated {
            return Err("the server did not accept permessage-deflate".into());
        }
        Ok(Self {
            reader,
            writer,
            inflater: negotiated.then(|| Decompress::new(false)),
            takeover: !extensions.contains("server_no_context_takeover"),
            raw: Vec::new(),
        })
    }

    async fn write_frame(&mut self, opcode: u8, payload: &[u8]) -> Result<(), String> {
        // Masked, as a client must; the key's value does not matter here.
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let mut f = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            f.push(0x80 | len as u8);
        } else if let Ok(l) = u16::try_from(len) {
            f.push(0x80 | 126);
            f.extend_from_slice(&l.to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        self.writer.write_all(&f).await.map_err(|e| e.to_string())
    }

    /// Sends one text message (uncompressed).
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.write_frame(0x1, text.as_bytes()).await
    }

    /// The next data message into `out` (inflated when it came
    /// compressed); `false` once the connection closed. Pings are answered.
    pub async fn next_message(&mut self, out: &mut Vec<u8>) -> Result<bool, String> {
        out.clear();
        self.raw.clear();
        let mut compressed = false;
        loop {
            let mut head = [0u8; 2];
            if self.reader.read_exact(&mut head).await.is_err() {
                return Ok(false);
            }
            let len = match head[1] & 0x7f {
                126 => u64::from(self.reader.read_u16().await.map_err(|e| e.to_string())?),
                127 => self.reader.read_u64().await.map_err(|e| e.to_string())?,
                l => u64::from(l),
            };
            let len = usize::try_from(len)
                .ok()
                .filter(|l| self.raw.len() + l <= MAX_MESSAGE)
                .ok_or("message too large")?;
            let opcode = head[0] & 0x0f;
            let fin = head[0] & 0x80 != 0;
            if opcode >= 0x8 {
                let mut payload = vec![0u8; len];
                self.reader
                    .read_exact(&mut payload)
                    .await
                    .map_err(|e| e.to_string())?;
                match opcode {
                    0x8 => return Ok(false),
                    0x9 => self.write_frame(0xA, &payload).await?,
                    _ => {}
                }
                continue;
            }
            if opcode != 0 {
                compressed = head[0] & 0x40 != 0;
            }
            let at = self.raw.len();
            self.raw.resize(at + len, 0);
            self.reader
                .read_exact(&mut self.raw[at..])
                .await
                .map_err(|e| e.to_string())?;
            if fin {
                break;
            }
        }
        match (&mut self.inflater, compressed) {
            (Some(inflater), true) => {
                if !self.takeover {
                    inflater.reset(false);
                }
                self.raw.extend_from_slice(&SYNC_TAIL);
                inflate_into(inflater, &self.raw, out)?;
            }
            (None, true) => return Err("a compressed message without the extension".into()),
            (_, false) => out.extend_from_slice(&self.raw),
        }
        Ok(true)
    }
}

fn inflate_into(d: &mut Decompress, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    loop {
        out.reserve((input.len() * 4).max(4096));
        let (before_in, before_out) = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(input, out, FlushDecompress::Sync)
            .map_err(|e| e.to_string())?;
        let used = (d.total_in() - before_in) as usize;
        input = &input[used..];
        let made = d.total_out() - before_out;
        if out.len() > MAX_MESSAGE {
            return Err("message too large".into());
        }
        if matches!(status, Status::StreamEnd) || (input.is_empty() && out.len() < out.capacity()) {
            return Ok(());
        }
        if made == 0 && used == 0 {
            return Ok(());
        }
    }
}
