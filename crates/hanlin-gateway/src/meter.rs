//! The per-request meter: the gateway layer puts one in a task-local before the handler runs;
//! whatever generates tokens (the server's `Generation`) reports to it, so the ledger row is
//! written before the response completes, and a stream cut short still pays for what it got.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::gateway::{Admission, Gateway};
use crate::money::Tokens;

tokio::task_local! {
    static METER: Arc<RequestMeter>;
}

/// Meters one admitted request; settles it exactly once.
pub struct RequestMeter {
    gateway: Gateway,
    admission: Mutex<Option<Admission>>,
    attached: AtomicBool,
}

impl std::fmt::Debug for RequestMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestMeter")
            .field("attached", &self.attached.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The meter of the request this task serves, if the gateway is on.
pub fn current() -> Option<Arc<RequestMeter>> {
    METER.try_with(Arc::clone).ok()
}

impl RequestMeter {
    pub(crate) fn new(gateway: Gateway, admission: Admission) -> Arc<Self> {
        Arc::new(RequestMeter {
            gateway,
            admission: Mutex::new(Some(admission)),
            attached: AtomicBool::new(false),
        })
    }

    /// Runs `fut` with this meter as the task's current one.
    pub(crate) async fn scope<F: std::future::Future>(self: &Arc<Self>, fut: F) -> F::Output {
        METER.scope(self.clone(), fut).await
    }

    /// A generator takes over reporting (it will call [`RequestMeter::finish`]).
    pub fn attach(&self) {
        self.attached.store(true, Ordering::Release);
    }

    /// Whether a generator took over.
    pub fn attached(&self) -> bool {
        self.attached.load(Ordering::Acquire)
    }

    fn take(&self) -> Option<Admission> {
        match self.admission.lock() {
            Ok(mut g) => g.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    /// The request id of the ledger row.
    pub fn request_id(&self) -> Option<String> {
        match self.admission.lock() {
            Ok(g) => g.as_ref().map(|a| a.request_id.clone()),
            Err(_) => None,
        }
    }

    /// Settles with these counts (once; later calls do nothing). `status` 499 marks a stream
    /// the client abandoned: billed for what was generated.
    pub async fn finish(&self, prompt: usize, cached: usize, completion: usize, status: u16) {
        if let Some(adm) = self.take() {
            let t = Tokens {
                prompt: prompt as i64,
                cached: cached as i64,
                completion: completion as i64,
            };
            self.gateway.settle(adm, t, status).await;
        }
    }

    /// [`RequestMeter::finish`] from a place that cannot wait (a `Drop`): spawned on the
    /// current runtime.
    pub fn finish_in_background(
        self: Arc<Self>,
        prompt: usize,
        cached: usize,
        completion: usize,
        status: u16,
    ) {
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move { self.finish(prompt, cached, completion, status).await });
            }
            Err(_) => tracing::error!("no runtime to settle a cut-short request on"),
        }
    }
}
