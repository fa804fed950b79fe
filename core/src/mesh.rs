//! The cross-core mesh: bounded message channels that carry metadata requests to the core that
//! owns a key and bring the answer back.
//!
//! ```text
//!  core a ── Envelope{MetaRequest, reply} ──► inbox of core b ──► MetaStore::handle (core b)
//!        ◄──────────── MetaResponse (one-shot reply) ──────────────┘
//! ```
//!
//! Local requests skip the channel. Every inbox is bounded: a sender waits (backpressure)
//! instead of growing a queue.

use std::rc::Rc;

use tessera_meta::{CoreId, FileStorage, MetaRequest, MetaResponse, MetaStore};

/// Messages queued per core inbox. A request is ~100 bytes plus its strings; 1024 in flight
/// per core covers every concurrent connection's metadata call at default limits, and a full
/// inbox makes senders wait instead of buffering without bound.
pub const INBOX_MESSAGES_MAX: usize = 1024;

/// One request on its way to another core.
pub struct Envelope {
    /// The request.
    pub request: MetaRequest,
    /// Where the answer goes.
    pub reply: flume::Sender<MetaResponse>,
}

/// The senders to every core's inbox; shared by all cores.
#[derive(Clone)]
pub struct Mesh {
    inboxes: Vec<flume::Sender<Envelope>>,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("cores", &self.inboxes.len())
            .finish()
    }
}

impl Mesh {
    /// A mesh for `cores` cores and the inbox receiver of each.
    #[must_use]
    pub fn new(cores: usize) -> (Mesh, Vec<flume::Receiver<Envelope>>) {
        let (senders, receivers) = (0..cores)
            .map(|_| flume::bounded(INBOX_MESSAGES_MAX))
            .unzip();
        (Mesh { inboxes: senders }, receivers)
    }

    /// Number of cores.
    #[must_use]
    pub fn cores(&self) -> usize {
        self.inboxes.len()
    }
}

/// A core's inbox is closed: it has stopped (shutdown) or died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreachable(pub CoreId);

/// One core's view of the metadata of all cores.
#[derive(Clone)]
pub struct MetaClient {
    /// This core.
    pub core: CoreId,
    /// This core's store.
    pub local: MetaStore<FileStorage>,
    mesh: Mesh,
}

impl std::fmt::Debug for MetaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaClient")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl MetaClient {
    /// A client for `core` with its local store.
    #[must_use]
    pub fn new(core: CoreId, local: MetaStore<FileStorage>, mesh: Mesh) -> Self {
        MetaClient { core, local, mesh }
    }

    /// Number of cores.
    #[must_use]
    pub fn cores(&self) -> usize {
        self.mesh.cores()
    }

    /// Sends `request` to `core` (directly when it is this core) and waits for the answer.
    pub async fn call(
        &self,
        core: CoreId,
        request: MetaRequest,
    ) -> Result<MetaResponse, Unreachable> {
        if core == self.core {
            return Ok(self.local.handle(request).await);
        }
        let (reply, answer) = flume::bounded(1);
        self.mesh.inboxes[usize::from(core.0)]
            .send_async(Envelope { request, reply })
            .await
            .map_err(|_| Unreachable(core))?;
        answer.recv_async().await.map_err(|_| Unreachable(core))
    }

    /// Sends `request` to every core concurrently and returns the answers in core order.
    pub async fn broadcast(&self, request: &MetaRequest) -> Vec<Result<MetaResponse, Unreachable>> {
        let mut pending = Vec::with_capacity(self.cores());
        for core in 0..self.cores() {
            let client = self.clone();
            let request = request.clone();
            pending.push(monoio::spawn(async move {
                client.call(CoreId(core as u16), request).await
            }));
        }
        let mut answers = Vec::with_capacity(pending.len());
        for handle in pending {
            answers.push(handle.await);
        }
        answers
    }
}

/// Serves other cores' requests to this core's store until every sender is gone.
pub async fn serve_inbox(store: MetaStore<FileStorage>, inbox: flume::Receiver<Envelope>) {
    let store = Rc::new(store);
    while let Ok(envelope) = inbox.recv_async().await {
        let store = Rc::clone(&store);
        monoio::spawn(async move {
            let answer = store.handle(envelope.request).await;
            // The caller may have given up (its connection closed); nothing to do then.
            let _ = envelope.reply.send(answer);
        });
    }
}
