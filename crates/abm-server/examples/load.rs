//! A lean HTTP/1.1 load client for `abm serve` (bench/serve.py drives it): `--clients`
//! keep-alive connections on one thread (a current-thread tokio runtime, so the client takes
//! at most one of the machine's cores), each sending GETs one after another for `--seconds`
//! (at most 300), on loopback only. Paths come from `--paths FILE` (one a line), picked at
//! random. Prints one JSON line: requests, errors (status not 200, or a broken connection),
//! requests per second, p50/p90/p99/max in milliseconds.
//!
//! cargo run --release -p abm-server --example load -- --addr 127.0.0.1:8080 --token T \
//!     --paths paths.txt [--clients 64] [--seconds 30]

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

struct Args {
    addr: SocketAddr,
    token: String,
    paths: Vec<String>,
    clients: usize,
    seconds: u64,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut addr, mut token, mut paths, mut clients, mut seconds) = (None, None, None, 64, 30);
    while let Some(a) = it.next() {
        let mut v = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--addr" => addr = Some(v()?),
            "--token" => token = Some(v()?),
            "--paths" => paths = Some(v()?),
            "--clients" => clients = v()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--seconds" => seconds = v()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    let addr: SocketAddr = addr
        .ok_or("--addr is required")?
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr}: loopback addresses only"));
    }
    let file = paths.ok_or("--paths is required")?;
    let paths: Vec<String> = std::fs::read_to_string(&file)
        .map_err(|e| format!("{file}: {e}"))?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if paths.is_empty() {
        return Err(format!("{file}: no paths"));
    }
    Ok(Args {
        addr,
        token: token.ok_or("--token is required")?,
        paths,
        clients: clients.clamp(1, 1024),
        seconds: seconds.clamp(1, 300),
    })
}

/// One keep-alive connection.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// Send `request`, read one response: its status (the body is read and dropped).
    async fn call(&mut self, request: &[u8]) -> std::io::Result<u16> {
        let mut sent = 0;
        while sent < request.len() {
            self.stream.writable().await?;
            match self.stream.try_write(&request[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            if self.read_more().await? == 0 {
                return Err(bad("connection closed"));
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).map_err(|_| bad("head"))?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("status line"))?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .ok_or_else(|| bad("no content-length"))?;
        while self.buf.len() < head_end + length {
            if self.read_more().await? == 0 {
                return Err(bad("connection closed in a body"));
            }
        }
        Ok(status)
    }

    async fn read_more(&mut self) -> std::io::Result<usize> {
        let mut chunk = [0u8; 16 << 10];
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A small xorshift: the paths each client picks.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

async fn client(
    seed: u64,
    a: std::sync::Arc<Args>,
    requests: std::sync::Arc<Vec<Vec<u8>>>,
    stop: Instant,
) -> (Vec<u32>, u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut took = Vec::with_capacity(1 << 16);
    let mut errors = 0u64;
    let mut conn = None;
    while Instant::now() < stop {
        let req = &requests[rng.below(requests.len())];
        let t = Instant::now();
        if conn.is_none() {
            conn = Conn::open(a.addr).await.ok();
        }
        let ok = match conn.as_mut() {
            Some(c) => match c.call(req).await {
                Ok(status) => status == 200,
                Err(_) => {
                    conn = None;
                    false
                }
            },
            None => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                false
            }
        };
        took.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        errors += u64::from(!ok);
    }
    (took, errors)
}

fn main() {
    let a = match args() {
        Ok(a) => std::sync::Arc::new(a),
        Err(e) => {
            eprintln!("load: {e}");
            std::process::exit(2);
        }
    };
    let requests: Vec<Vec<u8>> = a
        .paths
        .iter()
        .map(|p| {
            format!(
                "GET {p} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
                a.addr, a.token
            )
            .into_bytes()
        })
        .collect();
    let requests = std::sync::Arc::new(requests);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let stop = started + Duration::from_secs(a.seconds);
    let (mut took, errors) = rt.block_on(async {
        let tasks: Vec<_> = (0..a.clients)
            .map(|i| tokio::spawn(client(i as u64 + 1, a.clone(), requests.clone(), stop)))
            .collect();
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (mine, bad) = t.await.expect("a client task");
            all.extend(mine);
            errors += bad;
        }
        (all, errors)
    });
    let secs = started.elapsed().as_secs_f64();
    took.sort_unstable();
    let q = |p: f64| {
        took.get(((took.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(f64::NAN, |&us| us as f64 / 1e3)
    };
    println!(
        "{{\"requests\": {}, \"errors\": {}, \"seconds\": {:.2}, \"per_second\": {:.0}, \"p50_ms\": {:.3}, \"p90_ms\": {:.3}, \"p99_ms\": {:.3}, \"max_ms\": {:.3}}}",
        took.len(),
        errors,
        secs,
        took.len() as f64 / secs,
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
}
