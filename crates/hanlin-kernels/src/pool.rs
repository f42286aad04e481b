//! A small persistent thread pool for kernel fan-out.
//!
//! Workers wait on an epoch counter: they spin briefly after each job (decode issues one
//! mat-vec after another within microseconds, and waking a parked thread costs more than the
//! job), then park on a condvar so an idle pool costs no CPU. A job is a borrowed closure; the
//! calling thread runs share 0 and returns only after every worker finished, which is what makes
//! lending a stack closure to other threads sound. Nothing is allocated per job.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long an idle worker spins before parking, unless set with [`ThreadPool::with_spin`].
pub const DEFAULT_SPIN: Duration = Duration::from_micros(100);

/// A type-erased `&F where F: Fn(usize, usize) + Sync`.
#[derive(Clone, Copy)]
struct JobRef {
    data: *const (),
    call: unsafe fn(*const (), usize, usize),
}

/// Calls the closure behind a [`JobRef`].
///
/// # Safety
/// `data` must point to a live `F`.
unsafe fn call_job<F: Fn(usize, usize) + Sync>(data: *const (), idx: usize, n: usize) {
    // SAFETY: the caller guarantees `data` came from `&F` that outlives this call.
    let f = unsafe { &*data.cast::<F>() };
    f(idx, n);
}

struct Inner {
    n_threads: AtomicUsize,
    spin: Duration,
    /// Bumped once per job (and on shutdown); workers run a job per epoch they see.
    epoch: AtomicU64,
    /// Written by the caller before bumping `epoch`, read by workers after seeing it.
    job: UnsafeCell<Option<JobRef>>,
    /// Workers still running the current job.
    pending: AtomicUsize,
    /// Workers parked (or about to park) on `cv`.
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cv: Condvar,
    shutdown: AtomicBool,
    panicked: AtomicBool,
    /// Set while a job is in flight; a nested or concurrent `run` then runs inline.
    busy: AtomicBool,
}

// SAFETY: `job` is the only non-Sync field. It is written only by the thread that won `busy`,
// before the Release/SeqCst bump of `epoch` and while no worker is inside a job (`pending` was
// 0), and read by workers only after they observed that bump; the pointee is `Sync`.
unsafe impl Sync for Inner {}
// SAFETY: as above; the raw pointer inside `job` is only dereferenced under that protocol.
unsafe impl Send for Inner {}

/// Persistent worker threads that run one closure on all threads at once.
pub struct ThreadPool {
    inner: Arc<Inner>,
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// A pool of `n_threads` (the caller counts as one; 0 is treated as 1).
    ///
    /// If the OS refuses to spawn a thread the pool keeps the ones it has; see
    /// [`ThreadPool::threads`].
    pub fn new(n_threads: usize) -> Self {
        Self::with_spin(n_threads, DEFAULT_SPIN)
    }

    /// Like [`ThreadPool::new`] with how long idle workers spin before parking.
    pub fn with_spin(n_threads: usize, spin: Duration) -> Self {
        let want = n_threads.max(1);
        let inner = Arc::new(Inner {
            n_threads: AtomicUsize::new(want),
            spin,
            epoch: AtomicU64::new(0),
            job: UnsafeCell::new(None),
            pending: AtomicUsize::new(0),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cv: Condvar::new(),
            shutdown: AtomicBool::new(false),
            panicked: AtomicBool::new(false),
            busy: AtomicBool::new(false),
        });
        let mut workers = Vec::with_capacity(want - 1);
        for idx in 1..want {
            let shared = Arc::clone(&inner);
            let spawned = std::thread::Builder::new()
                .name(format!("hanlin-kernel-{idx}"))
                .spawn(move || worker_loop(&shared, idx));
            match spawned {
                Ok(h) => workers.push(h),
                Err(_) => break,
            }
        }
        // Workers read the count only inside a job, after the epoch bump that publishes it.
        inner.n_threads.store(workers.len() + 1, Ordering::Relaxed);
        Self { inner, workers }
    }

    /// Threads that share each job, the caller included.
    pub fn threads(&self) -> usize {
        self.inner.n_threads.load(Ordering::Relaxed)
    }

    /// Runs `f(thread_idx, n_threads)` on every thread, `thread_idx` in `0..n_threads`, and
    /// returns when all are done. The caller runs index 0.
    ///
    /// A call made while the pool is busy (from inside a job, or from another thread) runs
    /// `f(0, 1)` inline instead. A panic in any share is re-raised here after all shares ended.
    pub fn run<F: Fn(usize, usize) + Sync>(&self, f: F) {
        let inner = &*self.inner;
        let n = self.threads();
        if n == 1 || inner.busy.swap(true, Ordering::Acquire) {
            f(0, 1);
            return;
        }
        let job = JobRef {
            data: (&f as *const F).cast(),
            call: call_job::<F>,
        };
        // SAFETY: we won `busy`, and the previous job (if any) ended with `pending == 0`, so no
        // worker is reading `job` now; workers read it only after the epoch bump below.
        unsafe { *inner.job.get() = Some(job) };
        inner.pending.store(n - 1, Ordering::Relaxed);
        inner.epoch.fetch_add(1, Ordering::SeqCst);
        if inner.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = inner.lock.lock().unwrap_or_else(PoisonError::into_inner);
            inner.cv.notify_all();
        }
        let mine = catch_unwind(AssertUnwindSafe(|| f(0, n)));
        // `f` must outlive every worker's use of it: wait even if our share panicked.
        let mut spins = 0u32;
        while inner.pending.load(Ordering::Acquire) != 0 {
            spins = spins.wrapping_add(1);
            if spins < 1 << 10 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // SAFETY: all workers are done with the job (pending == 0) and we still hold `busy`.
        unsafe { *inner.job.get() = None };
        let worker_panicked = inner.panicked.swap(false, Ordering::Relaxed);
        inner.busy.store(false, Ordering::Release);
        if let Err(p) = mine {
            resume_unwind(p);
        }
        if worker_panicked {
            panic!("a hanlin-kernels worker thread panicked");
        }
    }

    /// Calls `f(i)` for every `i` in `0..n`, handing indices to threads as they free up.
    pub fn for_each_index<F: Fn(usize) + Sync>(&self, n: usize, f: F) {
        if n <= 1 || self.threads() == 1 {
            (0..n).for_each(f);
            return;
        }
        let next = AtomicUsize::new(0);
        self.run(|_, _| loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            f(i);
        });
    }
}

fn shutdown(inner: &Inner, workers: &mut Vec<JoinHandle<()>>) {
    inner.shutdown.store(true, Ordering::SeqCst);
    inner.epoch.fetch_add(1, Ordering::SeqCst);
    {
        let _g = inner.lock.lock().unwrap_or_else(PoisonError::into_inner);
        inner.cv.notify_all();
    }
    for h in workers.drain(..) {
        // A worker that panicked outside a job has nothing left to report.
        let _ = h.join();
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        shutdown(&self.inner, &mut self.workers);
    }
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .field("spin", &self.inner.spin)
            .finish()
    }
}

/// Waits until `epoch` differs from `seen`: spin for `inner.spin`, then park.
fn wait_epoch(inner: &Inner, seen: u64) -> u64 {
    let start = Instant::now();
    let mut i = 0u32;
    loop {
        let e = inner.epoch.load(Ordering::Acquire);
        if e != seen {
            return e;
        }
        std::hint::spin_loop();
        i = i.wrapping_add(1);
        if i.is_multiple_of(64) && start.elapsed() >= inner.spin {
            break;
        }
    }
    let mut g = inner.lock.lock().unwrap_or_else(PoisonError::into_inner);
    // SeqCst pairs with the caller's SeqCst epoch bump + sleepers load: either it sees us here
    // and notifies under the lock, or we see its new epoch below.
    inner.sleepers.fetch_add(1, Ordering::SeqCst);
    loop {
        let e = inner.epoch.load(Ordering::SeqCst);
        if e != seen {
            inner.sleepers.fetch_sub(1, Ordering::SeqCst);
            return e;
        }
        g = inner.cv.wait(g).unwrap_or_else(PoisonError::into_inner);
    }
}

fn worker_loop(inner: &Inner, idx: usize) {
    let mut seen = 0u64;
    loop {
        seen = wait_epoch(inner, seen);
        if inner.shutdown.load(Ordering::SeqCst) {
            return;
        }
        // SAFETY: we observed the epoch bump that published `job` (Acquire/SeqCst), and the
        // caller does not touch `job` again until we decrement `pending` below.
        let job = unsafe { *inner.job.get() };
        if let Some(job) = job {
            // SAFETY: the caller keeps the closure alive until `pending` reaches 0.
            let r = catch_unwind(AssertUnwindSafe(|| unsafe {
                (job.call)(job.data, idx, inner.n_threads.load(Ordering::Relaxed))
            }));
            if r.is_err() {
                inner.panicked.store(true, Ordering::Relaxed);
            }
        }
        inner.pending.fetch_sub(1, Ordering::Release);
    }
}
