//! A TCP proxy for fault tests: between a pod and Redis or PostgreSQL, it can hold every
//! byte while keeping the sockets open (a blackholed link), resume, or cut every
//! connection.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A TCP proxy to a local port that can stop moving bytes while keeping every socket
/// open (a blackholed link), and resume.
pub struct Proxy {
    pub port: u16,
    open: watch::Sender<bool>,
    accept: JoinHandle<()>,
    /// The pumps of the connections made so far.
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let (open, _) = watch::channel(true);
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept = {
            let open = open.clone();
            let tasks = tasks.clone();
            tokio::spawn(async move {
                while let Ok((down, _)) = listener.accept().await {
                    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        continue; // Nothing upstream: the client sees its socket close.
                    };
                    let (down_r, down_w) = down.into_split();
                    let (up_r, up_w) = up.into_split();
                    let mut tasks = tasks.lock().unwrap_or_else(|e| e.into_inner());
                    tasks.push(tokio::spawn(pump(down_r, up_w, open.subscribe())));
                    tasks.push(tokio::spawn(pump(up_r, down_w, open.subscribe())));
                }
            })
        };
        Self {
            port,
            open,
            accept,
            tasks,
        }
    }

    /// The proxy as a Redis URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Forwards (`true`) or holds every byte (`false`).
    pub fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }

    /// Closes every connection made so far; bytes held are lost.
    pub fn cut(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Copies `from` to `to` while the proxy is open; holds what it read while it is not.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut open: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if open.wait_for(|o| *o).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if open.wait_for(|o| *o).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
