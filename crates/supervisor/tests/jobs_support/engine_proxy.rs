//! A unix-socket proxy in front of the real Docker engine that a test can
//! cut and restore, so "the engine vanishes mid-job" happens on a shared
//! machine without stopping dockerd. Cutting closes every open connection and
//! refuses new ones; restoring forwards again.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tempfile::TempDir;
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

/// The proxy; stops when dropped.
pub struct EngineProxy {
    /// `unix:///…/docker.sock`, for `Engine::connect_to`.
    pub host: String,
    /// `(up, generation)`: cancelling the generation closes its connections.
    link: Arc<Mutex<(bool, CancellationToken)>>,
    stop: CancellationToken,
    _dir: TempDir,
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.cut();
    }
}

/// The real engine's socket.
fn engine_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

impl EngineProxy {
    pub fn start() -> EngineProxy {
        let dir = TempDir::new().expect("a folder for the proxy socket");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind the engine proxy");
        let link = Arc::new(Mutex::new((true, CancellationToken::new())));
        let stop = CancellationToken::new();
        let (accepting, stopped) = (Arc::clone(&link), stop.clone());
        tokio::spawn(async move {
            loop {
                let conn = tokio::select! {
                    () = stopped.cancelled() => return,
                    c = listener.accept() => c,
                };
                let Ok((inbound, _)) = conn else { continue };
                let (up, generation) = {
                    let l = accepting.lock().expect("the proxy's lock");
                    (l.0, l.1.clone())
                };
                if !up {
                    drop(inbound); // refused: the engine is "gone"
                    continue;
                }
                tokio::spawn(forward(inbound, generation));
            }
        });
        EngineProxy {
            host: format!("unix://{}", path.display()),
            link,
            stop,
            _dir: dir,
        }
    }

    /// The engine vanishes: open connections break, new ones are refused.
    pub fn cut(&self) {
        let mut l = self.link.lock().expect("the proxy's lock");
        l.0 = false;
        l.1.cancel();
    }

    /// The engine is back.
    pub fn restore(&self) {
        let mut l = self.link.lock().expect("the proxy's lock");
        *l = (true, CancellationToken::new());
    }
}

async fn forward(mut inbound: UnixStream, generation: CancellationToken) {
    let Ok(mut outbound) = UnixStream::connect(engine_socket()).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
        () = generation.cancelled() => {}
    }
}
