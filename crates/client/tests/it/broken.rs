//! A deliberately broken HTTP/1.1 server on `127.0.0.1:0`, written on raw
//! TCP so it can send what no framework would: garbage, lies, stalls.
//!
//! Each connection reads one request (headers and a `Content-Length` body),
//! records it, and then acts out a [`Reply`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Makes an answer from the request's text.
pub type MakeReply = dyn Fn(&str) -> Vec<u8> + Send + Sync;

/// What the server does after reading a request.
#[derive(Clone)]
pub enum Reply {
    /// Writes these bytes, then closes.
    Raw(Vec<u8>),
    /// Writes the head, then `body_len` bytes of `x` in 64 KiB
    /// chunked-encoding pieces, then the last chunk.
    Chunked { head: String, body_len: usize },
    /// Writes these bytes, then holds the connection open without a word.
    Stall(Vec<u8>),
    /// Writes what the function makes of the request (head and body), then
    /// closes: for servers that echo what they were sent.
    Echo(Arc<MakeReply>),
}

/// A running broken server. Dropping it stops accepting.
pub struct Broken {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Broken {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Broken {
    /// The base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request seen so far, head and body as text.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// Starts a server that answers every request with `reply`.
    pub async fn start(reply: Reply) -> Broken {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let reply = reply.clone();
                let seen = seen.clone();
                held.push(tokio::spawn(serve_one(sock, reply, seen)));
            }
        });
        Broken {
            addr,
            requests,
            task,
        }
    }
}

async fn serve_one(mut sock: TcpStream, reply: Reply, seen: Arc<Mutex<Vec<String>>>) {
    let request = read_request(&mut sock).await;
    seen.lock().unwrap().push(request.clone());
    match reply {
        Reply::Echo(make) => {
            let _ = sock.write_all(&make(&request)).await;
            let _ = sock.shutdown().await;
        }
        Reply::Raw(bytes) => {
            let _ = sock.write_all(&bytes).await;
            let _ = sock.shutdown().await;
        }
        Reply::Chunked { head, body_len } => {
            let _ = sock.write_all(head.as_bytes()).await;
            let piece = vec![b'x'; 64 * 1024];
            let mut left = body_len;
            while left > 0 {
                let n = left.min(piece.len());
                let frame = [format!("{n:x}\r\n").as_bytes(), &piece[..n], b"\r\n"].concat();
                if sock.write_all(&frame).await.is_err() {
                    return;
                }
                left -= n;
            }
            let _ = sock.write_all(b"0\r\n\r\n").await;
        }
        Reply::Stall(bytes) => {
            let _ = sock.write_all(&bytes).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
}

/// Reads one request: the head up to the blank line, then `Content-Length`
/// bytes of body.
async fn read_request(sock: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        match sock.read(&mut byte).await {
            Ok(0) | Err(_) => return String::from_utf8_lossy(&buf).into_owned(),
            Ok(n) => buf.extend_from_slice(&byte[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        match sock.read(&mut byte).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&byte[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A complete HTTP/1.1 answer with a `Content-Length`.
pub fn answer(status: &str, content_type: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{extra_headers}connection: close\r\n\r\n",
        body.len()
    );
    [head.as_bytes(), body].concat()
}

/// A JSON answer.
pub fn json(status: &str, body: &str) -> Reply {
    Reply::Raw(answer(status, "application/json", "", body.as_bytes()))
}
