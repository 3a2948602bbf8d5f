//! A minimal WebSocket client over one `TcpStream`: the HTTP upgrade, server frames parsed
//! in place from one growing buffer, client frames masked with the all-zero key (valid per
//! RFC 6455 and free to apply). No per-frame allocation: this is what keeps the generator
//! from being the bottleneck.

use std::io;
use std::ops::Range;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// WebSocket opcodes the generator cares about.
pub const TEXT: u8 = 1;
pub const CLOSE: u8 = 8;
pub const PING: u8 = 9;
const PONG: u8 = 10;

/// One client connection.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    out: Vec<u8>,
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

impl Conn {
    /// Connects to `host` and upgrades `path` to a WebSocket.
    pub async fn open(host: &str, path: &str) -> io::Result<Self> {
        let mut stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut conn = Self {
            stream,
            buf: vec![0; 2048],
            start: 0,
            end: 0,
            out: Vec::new(),
        };
        loop {
            if conn.end == conn.buf.len() {
                return Err(invalid("upgrade response too long"));
            }
            let n = conn.stream.read(&mut conn.buf[conn.end..]).await?;
            if n == 0 {
                return Err(invalid("closed during upgrade"));
            }
            conn.end += n;
            let head = &conn.buf[..conn.end];
            if let Some(pos) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                if !head.starts_with(b"HTTP/1.1 101") {
                    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
                    return Err(invalid(&String::from_utf8_lossy(line)));
                }
                conn.start = pos + 4;
                return Ok(conn);
            }
        }
    }

    /// The bytes of a frame returned by [`Conn::next_frame`].
    pub fn payload(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// A complete frame already buffered: (opcode, payload range).
    fn buffered_frame(&mut self) -> io::Result<Option<(u8, Range<usize>)>> {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 2 {
            return Ok(None);
        }
        let opcode = avail[0] & 0x0f;
        if avail[1] & 0x80 != 0 {
            return Err(invalid("masked server frame"));
        }
        let (header, len) = match avail[1] & 0x7f {
            126 if avail.len() >= 4 => (4, u16::from_be_bytes([avail[2], avail[3]]) as usize),
            127 if avail.len() >= 10 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&avail[2..10]);
                (10, u64::from_be_bytes(b) as usize)
            }
            126 | 127 => return Ok(None),
            n => (2, n as usize),
        };
        if avail.len() < header + len {
            if header + len > self.buf.len() {
                if header + len > 16 << 20 {
                    return Err(invalid("frame over 16 MiB"));
                }
                self.buf.resize(header + len, 0);
            }
            return Ok(None);
        }
        let payload = self.start + header..self.start + header + len;
        self.start += header + len;
        Ok(Some((opcode, payload)))
    }

    /// Moves unread bytes to the front so the next read has room.
    fn compact(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// The next frame, reading from the socket as needed; `Err` on close or a bad frame.
    pub async fn next_frame(&mut self) -> io::Result<(u8, Range<usize>)> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(frame);
            }
            self.compact();
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.end += n;
        }
    }

    /// The next frame if one can be had without waiting.
    pub fn try_next_frame(&mut self) -> io::Result<Option<(u8, Range<usize>)>> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(Some(frame));
            }
            self.compact();
            match self.stream.try_read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }

    async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        self.out.clear();
        self.out.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => self.out.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                self.out.push(0x80 | 126);
                self.out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                self.out.push(0x80 | 127);
                self.out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        // The all-zero masking key: masked bytes equal the payload.
        self.out.extend_from_slice(&[0, 0, 0, 0]);
        self.out.extend_from_slice(payload);
        self.stream.write_all(&self.out).await
    }

    /// Sends one text frame.
    pub async fn send_text(&mut self, text: &[u8]) -> io::Result<()> {
        self.send(TEXT, text).await
    }

    /// Answers a WebSocket ping carried in `range`.
    pub async fn pong(&mut self, range: Range<usize>) -> io::Result<()> {
        let payload = self.buf[range].to_vec();
        self.send(PONG, &payload).await
    }

    /// Answers control frames and Engine.IO pings; true when the frame was one of them.
    pub async fn answer_keepalive(&mut self, opcode: u8, range: Range<usize>) -> io::Result<bool> {
        match opcode {
            PING => self.pong(range).await.map(|_| true),
            CLOSE => Err(io::ErrorKind::ConnectionAborted.into()),
            TEXT if self.payload(range) == b"2" => self.send_text(b"3").await.map(|_| true),
            TEXT => Ok(false),
            _ => Ok(true),
        }
    }

    /// The next text frame that is not a keepalive, answering keepalives on the way.
    pub async fn next_text(&mut self) -> io::Result<Range<usize>> {
        loop {
            let (opcode, range) = self.next_frame().await?;
            if !self.answer_keepalive(opcode, range.clone()).await? {
                return Ok(range);
            }
        }
    }

    /// Skips text frames until one starts with `prefix`.
    pub async fn wait_for(&mut self, prefix: &[u8]) -> io::Result<()> {
        loop {
            let range = self.next_text().await?;
            if self.payload(range).starts_with(prefix) {
                return Ok(());
            }
        }
    }

    /// Reads whatever is buffered or readable now, answering keepalives; never waits for data.
    pub async fn drain(&mut self) -> io::Result<()> {
        while let Some((opcode, range)) = self.try_next_frame()? {
            self.answer_keepalive(opcode, range).await?;
        }
        Ok(())
    }
}
