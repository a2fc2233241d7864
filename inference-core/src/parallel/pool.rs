//! A persistent worker pool (std only). The caller takes part in each job; workers spin for a
//! short while after a job (decode issues many small matmuls back to back), then sleep.

use super::Parallel;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// Spin iterations a worker waits for the next job before sleeping on the condvar.
const SPIN_ITERS: u32 = 1 << 13;

/// A lifetime-erased pointer to the job closure of the running `for_each`.
#[derive(Clone, Copy)]
struct JobPtr {
    f: *const (dyn Fn(usize) + Sync + 'static),
    n_tasks: usize,
}
// SAFETY: the closure is Sync; the pointer is only dereferenced while `for_each` (which owns
// the borrow) waits for every worker holding it to finish (see `for_each`).
unsafe impl Send for JobPtr {}

struct State {
    generation: u64,
    job: Option<JobPtr>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    generation: AtomicU64,
    shutdown: AtomicBool,
    next: AtomicUsize,
    done: AtomicUsize,
    active: AtomicUsize,
}

impl Shared {
    fn run_tasks(&self, job: JobPtr) {
        // SAFETY: see JobPtr: the closure outlives every use, since for_each waits for
        // `active == 0` (and done == n_tasks) before its borrow ends.
        let f = unsafe { &*job.f };
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= job.n_tasks {
                break;
            }
            f(i);
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// Persistent worker threads; `n_threads` counts the calling thread too.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    submit: Mutex<()>,
}

impl ThreadPool {
    /// A pool running tasks on `n_threads` threads in all (the caller plus `n_threads - 1` workers).
    pub fn new(n_threads: usize) -> ThreadPool {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generation: 0,
                job: None,
                shutdown: false,
            }),
            wake: Condvar::new(),
            generation: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            next: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
        });
        let workers = (1..n_threads.max(1))
            .map(|_| {
                let s = Arc::clone(&shared);
                std::thread::spawn(move || worker(&s))
            })
            .collect();
        ThreadPool {
            shared,
            workers,
            submit: Mutex::new(()),
        }
    }
}

fn worker(s: &Shared) {
    let mut seen = 0u64;
    loop {
        for _ in 0..SPIN_ITERS {
            if s.generation.load(Ordering::Acquire) != seen || s.shutdown.load(Ordering::Relaxed) {
                break;
            }
            core::hint::spin_loop();
        }
        let job = {
            let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            while st.generation == seen && !st.shutdown {
                st = s.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.shutdown {
                return;
            }
            seen = st.generation;
            match st.job {
                Some(j) => {
                    s.active.fetch_add(1, Ordering::AcqRel);
                    j
                }
                None => continue,
            }
        };
        s.run_tasks(job);
        s.active.fetch_sub(1, Ordering::AcqRel);
    }
}

fn wait_until(cond: impl Fn() -> bool) {
    let mut spins = 0u32;
    while !cond() {
        if spins < SPIN_ITERS {
            spins += 1;
            core::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

impl Parallel for ThreadPool {
    fn n_threads(&self) -> usize {
        self.workers.len() + 1
    }

    fn for_each(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if n_tasks <= 1 || self.workers.is_empty() {
            (0..n_tasks).for_each(f);
            return;
        }
        let _one_job_at_a_time = self.submit.lock().unwrap_or_else(|e| e.into_inner());
        let s = &*self.shared;
        // SAFETY: erases the borrow's lifetime; this function does not return before every
        // worker that read the pointer has stopped using it (active == 0 below, after the job
        // was withdrawn under the lock so no worker can pick it up later).
        let f_static: &'static (dyn Fn(usize) + Sync) = unsafe { core::mem::transmute(f) };
        let job = JobPtr {
            f: f_static as *const _,
            n_tasks,
        };
        {
            let mut st = s.state.lock().unwrap_or_else(|e| e.into_inner());
            s.next.store(0, Ordering::Relaxed);
            s.done.store(0, Ordering::Relaxed);
            st.job = Some(job);
            st.generation += 1;
            s.generation.store(st.generation, Ordering::Release);
        }
        s.wake.notify_all();
        s.run_tasks(job);
        wait_until(|| s.done.load(Ordering::Acquire) >= n_tasks);
        s.state.lock().unwrap_or_else(|e| e.into_inner()).job = None;
        wait_until(|| s.active.load(Ordering::Acquire) == 0);
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::Relaxed);
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shutdown = true;
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_runs_exactly_once_across_many_jobs() {
        let pool = ThreadPool::new(3);
        for n in [0usize, 1, 2, 7, 64] {
            let hits: Vec<AtomicUsize> = (0..n).map(|_| AtomicUsize::new(0)).collect();
            for _ in 0..50 {
                pool.for_each(n, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
            }
            assert!(
                hits.iter().all(|h| h.load(Ordering::Relaxed) == 50),
                "n = {n}"
            );
        }
        assert_eq!(pool.n_threads(), 3);
    }
}
