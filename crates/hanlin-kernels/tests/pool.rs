//! The thread pool: coverage, reuse, nesting, panics, parking.

use hanlin_kernels::ThreadPool;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[test]
fn every_thread_runs_once_per_job() {
    for n in [1, 2, 3, 5] {
        let pool = ThreadPool::new(n);
        assert_eq!(pool.threads(), n);
        for _ in 0..200 {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            pool.run(|i, total| {
                assert_eq!(total, n);
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        }
    }
}

#[test]
fn for_each_index_covers_all() {
    let pool = ThreadPool::new(3);
    for n in [0, 1, 2, 7, 1000] {
        let seen: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        pool.for_each_index(n, |i| {
            seen[i].fetch_add(1, Ordering::Relaxed);
        });
        assert!(seen.iter().all(|s| s.load(Ordering::Relaxed) == 1), "n={n}");
    }
}

#[test]
fn many_short_jobs() {
    let pool = ThreadPool::new(2);
    let total = AtomicUsize::new(0);
    for _ in 0..20_000 {
        pool.run(|i, _| {
            total.fetch_add(i + 1, Ordering::Relaxed);
        });
    }
    assert_eq!(total.load(Ordering::Relaxed), 20_000 * 3);
}

#[test]
fn parked_workers_wake_up() {
    let pool = ThreadPool::with_spin(3, Duration::from_micros(1));
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(2));
        let c = AtomicUsize::new(0);
        pool.run(|_, _| {
            c.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(c.load(Ordering::Relaxed), 3);
    }
}

#[test]
fn nested_run_is_inline() {
    let pool = ThreadPool::new(2);
    let inner_calls = AtomicUsize::new(0);
    pool.run(|_, _| {
        pool.run(|i, n| {
            assert_eq!((i, n), (0, 1));
            inner_calls.fetch_add(1, Ordering::Relaxed);
        });
    });
    assert_eq!(inner_calls.load(Ordering::Relaxed), 2);
}

#[test]
fn worker_panic_is_reported_and_pool_survives() {
    let pool = ThreadPool::new(3);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run(|i, _| {
            if i == 2 {
                panic!("boom");
            }
        });
    }));
    assert!(r.is_err());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.run(|i, _| {
            if i == 0 {
                panic!("caller boom");
            }
        });
    }));
    assert!(r.is_err());
    let c = AtomicUsize::new(0);
    pool.run(|_, _| {
        c.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(c.load(Ordering::Relaxed), 3);
}

#[test]
fn zero_threads_means_one() {
    let pool = ThreadPool::new(0);
    assert_eq!(pool.threads(), 1);
    let c = AtomicUsize::new(0);
    pool.run(|i, n| {
        assert_eq!((i, n), (0, 1));
        c.fetch_add(1, Ordering::Relaxed);
    });
    assert_eq!(c.load(Ordering::Relaxed), 1);
}
