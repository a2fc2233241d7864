//! Weight matrix x activations: `out[t][r] = dot(weight row r, x[t])`.

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
use super::avx2_tile::{TC, TR};
use super::{scalar, Isa};
use crate::gguf::{GgmlType, TensorInfo};
use crate::parallel::Parallel;
use crate::quant::{QuantError, QuantizedActs};
use core::fmt;

/// Which output rows (weight rows) to compute.
#[derive(Clone, Copy, Debug)]
pub enum RowSelection<'r> {
    All,
    /// Only these weight rows, in this order (out has `rows.len()` columns).
    Rows(&'r [u32]),
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
struct OutPtr(*mut f32);
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
    unsafe fn write_run(&self, i: usize, v: &[f32]) {
        // SAFETY: guaranteed by the caller; `v` is a separate buffer, so the ranges do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(v.as_ptr(), self.0.add(i), v.len()) };
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
    let row_len = w.row_len();
    let n_rows = w.n_rows();
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
    if n_tokens == 0 || n_sel == 0 {
        return Ok(());
    }
    let acts = QuantizedActs::quantize(w.ty, x, row_len)?;
    let isa = isa.clamp_to_cpu();
    let row_bytes = w.ty.row_bytes(row_len as u64).unwrap_or(0) as usize;
    if w.data.len() != row_bytes * n_rows {
        return Err(MatmulError::Shape {
            what: "weight data",
            expected: row_bytes * n_rows,
            got: w.data.len(),
        });
    }
    let sel_row = |j: usize| match rows {
        RowSelection::All => j,
        RowSelection::Rows(r) => r[j] as usize,
    };
    let n_tiles = n_sel.div_ceil(ROW_TILE);
    let n_tasks = n_tiles.min(par.n_threads().max(1) * 4);
    let out_ptr = OutPtr(out.as_mut_ptr());
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
            // K-quants: each group of TR rows runs over every token in one call; the rows left
            // over (fewer than TR) take the row loop below.
            #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
            let jr = j;
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            let jr = if isa == Isa::Avx2 {
                k_rows_avx2(
                    w.ty,
                    &acts,
                    row_len,
                    n_tokens,
                    j..je,
                    |jj| {
                        let r = sel_row(jj);
                        &w.data[r * row_bytes..(r + 1) * row_bytes]
                    },
                    |t, jj, v: &[f32]| {
                        // SAFETY: t < n_tokens and jj + v.len() <= je <= n_sel; only this task
                        // writes columns jj..jj + v.len().
                        unsafe { out_ptr.write_run(t * n_sel + jj, v) }
                    },
                )
            } else {
                j
            };
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            if isa == Isa::Avx2 {
                while t + TC <= n_tokens {
                    let mut jj = jr;
                    while jj + TR <= je {
                        let rows: [&[u8]; TR] = core::array::from_fn(|i| {
                            let r = sel_row(jj + i);
                            &w.data[r * row_bytes..(r + 1) * row_bytes]
                        });
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
                            let r = sel_row(r_sel);
                            let wrow = &w.data[r * row_bytes..(r + 1) * row_bytes];
                            let v = dot_checked(w.ty, wrow, &acts, t + c, row_len, isa);
                            // SAFETY: as above.
                            unsafe { out_ptr.write((t + c) * n_sel + r_sel, v) };
                        }
                    }
                    t += TC;
                }
            }
            for t in t..n_tokens {
                for jj in jr..je {
                    let r = sel_row(jj);
                    let wrow = &w.data[r * row_bytes..(r + 1) * row_bytes];
                    let v = dot_checked(w.ty, wrow, &acts, t, row_len, isa);
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

/// For Q4_K / Q6_K: computes rows `j..` of the row tile `tile = j..je` for every token, `K8_ROWS` rows
/// per kernel call, and returns the first row it did not compute (`j` for other types).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn k_rows_avx2<'w>(
    ty: GgmlType,
    acts: &QuantizedActs,
    row_len: usize,
    n_tokens: usize,
    tile: core::ops::Range<usize>,
    row: impl Fn(usize) -> &'w [u8],
    write: impl Fn(usize, usize, &[f32]),
) -> usize {
    use super::avx2_k8::{rows8_q4_k_q8_k, rows8_q6_k_q8_k, K8_ROWS, KT_MAX};
    let (j, je) = (tile.start, tile.end);
    let QuantizedActs::Q8K(a) = acts else {
        return j;
    };
    // One token (decode): the row kernel streams the weights without the decode buffer.
    if n_tokens < 2 {
        return j;
    }
    let kernel = match ty {
        GgmlType::Q4_K => rows8_q4_k_q8_k,
        GgmlType::Q6_K => rows8_q6_k_q8_k,
        _ => return j,
    };
    let nb = row_len / ty.block_size();
    let mut buf = [0f32; K8_ROWS * KT_MAX];
    let mut jj = j;
    while jj + K8_ROWS <= je {
        let rows: [&[u8]; K8_ROWS] = core::array::from_fn(|i| row(jj + i));
        let mut t0 = 0;
        while t0 < n_tokens {
            let nt = (n_tokens - t0).min(KT_MAX);
            let out = &mut buf[..K8_ROWS * nt];
            // SAFETY: only called with Isa::Avx2 from clamp_to_cpu, so AVX2, FMA and F16C exist.
            unsafe { kernel(rows, &a[t0 * nb..(t0 + nt) * nb], nt, out) };
            for (c, rows) in out.chunks_exact(K8_ROWS).enumerate() {
                write(t0 + c, jj, rows);
            }
            t0 += nt;
        }
        jj += K8_ROWS;
    }
    jj
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
