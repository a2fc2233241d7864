//! Weight matrix x activations: `out[t][r] = dot(weight row r, x[t])`.

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use super::avx2_tile::{TC, TR};
use super::k8_packed::K8Packed;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use super::matmul_k8::{self, K8Weight};
use super::{scalar, Isa};
use crate::gguf::{GgmlType, TensorInfo};
use crate::parallel::Parallel;
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use crate::quant::BlockQ8K;
use crate::quant::{QuantError, QuantizedActs};
use alloc::vec::Vec;
use core::fmt;

/// Which output rows (weight rows) to compute.
#[derive(Clone, Copy, Debug)]
pub enum RowSelection<'r> {
    All,
    /// Only these weight rows, in this order (out has `rows.len()` columns).
    Rows(&'r [u32]),
}

impl RowSelection<'_> {
    /// The bytes of the weight row behind output column `j` (`row_bytes` long; the caller checked
    /// the selection against the weight).
    pub(super) fn row<'w>(&self, w: &TensorInfo<'w>, row_bytes: usize, j: usize) -> &'w [u8] {
        let r = match self {
            RowSelection::All => j,
            RowSelection::Rows(r) => r[j] as usize,
        };
        &w.data[r * row_bytes..(r + 1) * row_bytes]
    }
}

/// Why a matmul was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MatmulError {
    Quant(QuantError),
    /// `x` or `out` has the wrong length.
    Shape {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// A selected row is past the end of the weight.
    RowOutOfRange {
        row: u32,
        n_rows: usize,
    },
}

impl fmt::Display for MatmulError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatmulError::Quant(e) => write!(f, "matmul: {e}"),
            MatmulError::Shape {
                what,
                expected,
                got,
            } => {
                write!(f, "matmul: {what} has length {got}, expected {expected}")
            }
            MatmulError::RowOutOfRange { row, n_rows } => {
                write!(
                    f,
                    "matmul: selected row {row} but the weight has {n_rows} rows"
                )
            }
        }
    }
}

impl From<QuantError> for MatmulError {
    fn from(e: QuantError) -> Self {
        MatmulError::Quant(e)
    }
}

/// Weight rows computed together against every token (keeps them in L1 across tokens).
const ROW_TILE: usize = 16;

/// A pointer to the output that tasks write disjoint elements of.
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: tasks write disjoint output elements (each task owns a distinct range of selected
// rows), and `for_each` returns only after all tasks finished.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// # Safety
    /// `i` is inside the output and no other task writes element `i`.
    #[inline(always)]
    unsafe fn write(&self, i: usize, v: f32) {
        // SAFETY: guaranteed by the caller.
        unsafe { *self.0.add(i) = v };
    }

    /// # Safety
    /// `i..i + v.len()` is inside the output and no other task writes those elements.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[inline(always)]
    pub(super) unsafe fn write_run(&self, i: usize, v: &[f32]) {
        match <&[f32; 8]>::try_from(v) {
            // SAFETY (both arms): guaranteed by the caller; `v` is a separate buffer, so the
            // ranges do not overlap. A full row group is one unaligned 32-byte store.
            Ok(r8) => unsafe { self.0.add(i).cast::<[f32; 8]>().write_unaligned(*r8) },
            Err(_) => unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), self.0.add(i), v.len()) },
        }
    }
}

/// `out[t * n_sel + j] = dot(row sel[j] of w, x[t])` for every token t, where `x` holds
/// `n_tokens` rows of `w.row_len()` f32 values. Activations are quantised once to the
/// weight type's companion format (like llama.cpp), then rows are split across `par`.
pub fn matmul(
    w: &TensorInfo,
    x: &[f32],
    n_tokens: usize,
    out: &mut [f32],
    rows: RowSelection,
    isa: Isa,
    par: &dyn Parallel,
) -> Result<(), MatmulError> {
    MatmulContext::new(isa, par).run(w, x, n_tokens, out, rows)
}

/// One weight of [`MatmulContext::run_shared_jobs`]: the weight, its packed copy (if any) and
/// where its rows' results go.
pub struct SharedJob<'j, 'w> {
    pub w: &'j TensorInfo<'w>,
    pub packed: Option<&'j K8Packed>,
    pub out: &'j mut [f32],
}

/// What a sequence of matmuls shares: the ISA (clamped to the CPU once), the threads, and the
/// quantised-activation buffer, kept between calls so that a forward pass does not allocate and
/// clear it per matmul.
pub struct MatmulContext<'p> {
    isa: Isa,
    par: &'p dyn Parallel,
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    q8k: Vec<BlockQ8K>,
}

impl<'p> MatmulContext<'p> {
    pub fn new(isa: Isa, par: &'p dyn Parallel) -> Self {
        MatmulContext {
            isa: isa.clamp_to_cpu(),
            par,
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            q8k: Vec::new(),
        }
    }

    /// `outs[i] = every row of weights[i] · x` for weights that read the same input: with the
    /// K-quant tile, the activations are quantised once and all the weights' rows share one
    /// dispatch; otherwise one [`MatmulContext::run`] per weight. Results are the same either way.
    pub fn run_shared(
        &mut self,
        x: &[f32],
        n_tokens: usize,
        jobs: &mut [(&TensorInfo, &mut [f32])],
    ) -> Result<(), MatmulError> {
        let mut jobs: Vec<SharedJob<'_, '_>> = jobs
            .iter_mut()
            .map(|(w, out)| SharedJob {
                w,
                packed: None,
                out,
            })
            .collect();
        self.run_shared_jobs(x, n_tokens, &mut jobs)
    }

    /// [`MatmulContext::run_shared`] for weights that may carry a packed copy.
    pub fn run_shared_jobs(
        &mut self,
        x: &[f32],
        n_tokens: usize,
        jobs: &mut [SharedJob<'_, '_>],
    ) -> Result<(), MatmulError> {
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        if let Some(j0) = jobs.first() {
            let row_len = j0.w.row_len();
            let usable: Vec<Option<&K8Packed>> = jobs
                .iter()
                .map(|j| matmul_k8::usable(j.w, j.packed, RowSelection::All))
                .collect();
            if self.isa == Isa::Avx2
                && jobs.iter().all(|j| j.w.row_len() == row_len)
                && matmul_k8::takes(
                    jobs.iter().zip(&usable).map(|(j, p)| (j.w.ty, p.is_some())),
                    row_len,
                    n_tokens,
                )
            {
                for j in jobs.iter() {
                    selected_rows(j.w, x, n_tokens, j.out, RowSelection::All)?;
                }
                let weights: Vec<K8Weight<'_>> = jobs
                    .iter_mut()
                    .zip(usable)
                    .map(|(j, packed)| K8Weight {
                        w: j.w,
                        packed,
                        rows: RowSelection::All,
                        n_sel: j.w.n_rows(),
                        out: OutPtr(j.out.as_mut_ptr()),
                    })
                    .collect();
                matmul_k8::run(&mut self.q8k, self.par, x, row_len, n_tokens, &weights);
                return Ok(());
            }
        }
        for j in jobs.iter_mut() {
            self.run_packed(j.w, j.packed, x, n_tokens, j.out, RowSelection::All)?;
        }
        Ok(())
    }

    /// [`matmul`] with this context's ISA, threads and buffer.
    pub fn run(
        &mut self,
        w: &TensorInfo,
        x: &[f32],
        n_tokens: usize,
        out: &mut [f32],
        rows: RowSelection,
    ) -> Result<(), MatmulError> {
        self.run_packed(w, None, x, n_tokens, out, rows)
    }

    /// [`MatmulContext::run`] with `w`'s packed copy, if it has one: the K-quant tile then reads
    /// its row groups from it (same results, less decoding per matmul).
    #[cfg_attr(
        not(all(target_arch = "x86_64", target_feature = "sse2")),
        allow(unused_variables)
    )]
    pub fn run_packed(
        &mut self,
        w: &TensorInfo,
        packed: Option<&K8Packed>,
        x: &[f32],
        n_tokens: usize,
        out: &mut [f32],
        rows: RowSelection,
    ) -> Result<(), MatmulError> {
        let (isa, par) = (self.isa, self.par);
        let row_len = w.row_len();
        let n_sel = selected_rows(w, x, n_tokens, out, rows)?;
        if n_tokens == 0 || n_sel == 0 {
            return Ok(());
        }
        let row_bytes = w.row_bytes();
        let row = |j: usize| rows.row(w, row_bytes, j);
        let out_ptr = OutPtr(out.as_mut_ptr());
        // K-quants with several tokens (or one, with a packed copy): the 8-row tile computes every
        // selected row.
        #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
        if isa == Isa::Avx2 {
            let packed = matmul_k8::usable(w, packed, rows);
            if matmul_k8::takes([(w.ty, packed.is_some())], row_len, n_tokens) {
                let job = K8Weight {
                    w,
                    packed,
                    rows,
                    n_sel,
                    out: out_ptr,
                };
                matmul_k8::run(&mut self.q8k, par, x, row_len, n_tokens, &[job]);
                return Ok(());
            }
        }
        let acts = QuantizedActs::quantize(w.ty, x, row_len)?;
        let n_tiles = n_sel.div_ceil(ROW_TILE);
        let n_tasks = n_tiles.min(par.n_threads().max(1) * 4);
        let task = |k: usize| {
            let (t0, t1) = (n_tiles * k / n_tasks, n_tiles * (k + 1) / n_tasks);
            let (j0, j1) = (t0 * ROW_TILE, (t1 * ROW_TILE).min(n_sel));
            let mut j = j0;
            while j < j1 {
                let je = (j + ROW_TILE).min(j1);
                // Without SIMD (soft-float targets) every token takes the row loop below.
                #[cfg_attr(
                    not(all(target_arch = "x86_64", target_feature = "sse2")),
                    allow(unused_mut)
                )]
                let mut t = 0;
                #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
                if isa == Isa::Avx2 {
                    while t + TC <= n_tokens {
                        let mut jj = j;
                        while jj + TR <= je {
                            let rows: [&[u8]; TR] = core::array::from_fn(|i| row(jj + i));
                            let mut o = [[0f32; TR]; TC];
                            if !tile_avx2(w.ty, rows, &acts, t, row_len, &mut o) {
                                break;
                            }
                            for (c, oc) in o.iter().enumerate() {
                                for (i, &v) in oc.iter().enumerate() {
                                    // SAFETY: t + c < n_tokens, jj + i < n_sel; only this task
                                    // writes column jj + i.
                                    unsafe { out_ptr.write((t + c) * n_sel + jj + i, v) };
                                }
                            }
                            jj += TR;
                        }
                        for c in 0..TC {
                            for r_sel in jj..je {
                                let v = dot_checked(w.ty, row(r_sel), &acts, t + c, row_len, isa);
                                // SAFETY: as above.
                                unsafe { out_ptr.write((t + c) * n_sel + r_sel, v) };
                            }
                        }
                        t += TC;
                    }
                }
                for t in t..n_tokens {
                    for jj in j..je {
                        let v = dot_checked(w.ty, row(jj), &acts, t, row_len, isa);
                        // SAFETY: t < n_tokens and jj < n_sel, so the index is inside `out`
                        // (length n_tokens * n_sel); only this task writes column jj.
                        unsafe { out_ptr.write(t * n_sel + jj, v) };
                    }
                }
                j = je;
            }
        };
        par.for_each(n_tasks, &task);
        Ok(())
    }
}

/// The number of output columns (selected rows), once the shapes of `x`, `out` and the weight
/// data and the selected rows are checked.
fn selected_rows(
    w: &TensorInfo,
    x: &[f32],
    n_tokens: usize,
    out: &[f32],
    rows: RowSelection,
) -> Result<usize, MatmulError> {
    let (row_len, n_rows) = (w.row_len(), w.n_rows());
    let n_sel = match rows {
        RowSelection::All => n_rows,
        RowSelection::Rows(r) => {
            if let Some(&bad) = r.iter().find(|&&i| i as usize >= n_rows) {
                return Err(MatmulError::RowOutOfRange { row: bad, n_rows });
            }
            r.len()
        }
    };
    let want_x = row_len.saturating_mul(n_tokens);
    if x.len() != want_x {
        return Err(MatmulError::Shape {
            what: "x",
            expected: want_x,
            got: x.len(),
        });
    }
    if out.len() != n_sel.saturating_mul(n_tokens) {
        return Err(MatmulError::Shape {
            what: "out",
            expected: n_sel.saturating_mul(n_tokens),
            got: out.len(),
        });
    }
    let row_bytes = w.ty.row_bytes(row_len as u64).unwrap_or(0) as usize;
    if w.data.len() != row_bytes * n_rows {
        return Err(MatmulError::Shape {
            what: "weight data",
            expected: row_bytes * n_rows,
            got: w.data.len(),
        });
    }
    Ok(n_sel)
}

/// One dot product whose shapes matmul has already checked.
#[inline]
fn dot_checked(
    ty: GgmlType,
    w: &[u8],
    acts: &QuantizedActs,
    t: usize,
    row_len: usize,
    isa: Isa,
) -> f32 {
    let nb = row_len / ty.block_size();
    #[cfg(all(target_arch = "x86_64", not(target_feature = "sse2")))]
    if let Some(v) = super::exact_scalar(ty, w, acts, t, nb) {
        return v;
    }
    macro_rules! go {
        ($f:ident, $a:expr, $per:expr) => {{
            let a = &$a[t * $per..(t + 1) * $per];
            match isa {
                #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
                // SAFETY: `isa` came from clamp_to_cpu, so AVX2 and FMA are available.
                Isa::Avx2 => unsafe { super::avx2::$f(w, a) },
                _ => scalar::$f(w, a),
            }
        }};
    }
    match (ty, acts) {
        (GgmlType::F32, QuantizedActs::F32(x)) => go!(dot_f32_f32, x, row_len),
        (GgmlType::F16, QuantizedActs::F32(x)) => go!(dot_f16_f32, x, row_len),
        (GgmlType::Q4_0, QuantizedActs::Q8_0(a)) => go!(dot_q4_0_q8_0, a, nb),
        (GgmlType::Q4_1, QuantizedActs::Q8_1(a)) => go!(dot_q4_1_q8_1, a, nb),
        (GgmlType::Q5_0, QuantizedActs::Q8_0(a)) => go!(dot_q5_0_q8_0, a, nb),
        (GgmlType::Q8_0, QuantizedActs::Q8_0(a)) => go!(dot_q8_0_q8_0, a, nb),
        (GgmlType::Q4_K, QuantizedActs::Q8K(a)) => go!(dot_q4_k_q8_k, a, nb),
        (GgmlType::Q6_K, QuantizedActs::Q8K(a)) => go!(dot_q6_k_q8_k, a, nb),
        // QuantizedActs::quantize picked the companion format of `ty`, so this is unreachable
        // for supported types; unsupported types were refused before.
        _ => 0.0,
    }
}

/// Runs the AVX2 tile kernel for `ty` on tokens `t..t + TC`; false when `ty` has none.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline]
fn tile_avx2(
    ty: GgmlType,
    rows: [&[u8]; TR],
    acts: &QuantizedActs,
    t: usize,
    row_len: usize,
    o: &mut [[f32; TR]; TC],
) -> bool {
    use super::avx2_tile as k;
    let nb = row_len / ty.block_size();
    let tok = |c: usize| (t + c) * nb..(t + c + 1) * nb;
    // SAFETY (all arms): only called with Isa::Avx2 from clamp_to_cpu, so AVX2, FMA and F16C exist.
    match (ty, acts) {
        (GgmlType::Q4_1, QuantizedActs::Q8_1(a)) => unsafe {
            k::tile_q4_1_q8_1(rows, core::array::from_fn(|c| &a[tok(c)]), o)
        },
        (GgmlType::Q8_0, QuantizedActs::Q8_0(a)) => unsafe {
            k::tile_q8_0_q8_0(rows, core::array::from_fn(|c| &a[tok(c)]), o)
        },
        (GgmlType::Q4_0, QuantizedActs::Q8_0(a)) => unsafe {
            k::tile_q4_0_q8_0(rows, core::array::from_fn(|c| &a[tok(c)]), o)
        },
        (GgmlType::Q5_0, QuantizedActs::Q8_0(a)) => unsafe {
            k::tile_q5_0_q8_0(rows, core::array::from_fn(|c| &a[tok(c)]), o)
        },

        _ => return false,
    }
    true
}
