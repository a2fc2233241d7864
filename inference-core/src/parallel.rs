//! Task parallelism for the kernels: `Sequential` (no_std) and, with `std`, a persistent
//! `ThreadPool` whose workers spin briefly, then sleep on a condvar, between jobs.

/// Runs `n_tasks` independent tasks, possibly in parallel; returns when all are done.
pub trait Parallel: Sync {
    /// Threads that run tasks (including the caller).
    fn n_threads(&self) -> usize;
    fn for_each(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync));
}

/// Runs every task on the calling thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sequential;

impl Parallel for Sequential {
    fn n_threads(&self) -> usize {
        1
    }

    fn for_each(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        (0..n_tasks).for_each(f);
    }
}

/// Runs `f(i, piece)` for the `chunk`-long pieces of `buf` (the last may be shorter), split across
/// `par`. Each piece sits behind its own lock, taken once by the one task that owns it, so this
/// needs no `unsafe` and stays sound whatever `par` does.
pub fn for_each_chunk_mut<T: Send>(
    par: &dyn Parallel,
    buf: &mut [T],
    chunk: usize,
    f: &(dyn Fn(usize, &mut [T]) + Sync),
) {
    let pieces: alloc::vec::Vec<spin::Mutex<&mut [T]>> =
        buf.chunks_mut(chunk.max(1)).map(spin::Mutex::new).collect();
    par.for_each(pieces.len(), &|i| f(i, &mut pieces[i].lock()));
}

#[cfg(any(test, feature = "std"))]
mod pool;
#[cfg(any(test, feature = "std"))]
pub use pool::ThreadPool;
