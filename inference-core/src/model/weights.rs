//! The model's tensors, borrowed from the GGUF bytes, checked for shape and type at load time.

use super::config::{Arch, Config};
use super::ModelError;
use crate::gguf::{GgmlType, Gguf, TensorInfo};
use crate::kernels::K8Packed;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

/// Weight types the matmul kernels compute with.
const MATMUL_TYPES: [GgmlType; 8] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q8_0,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

/// A weight matrix (`rows` outputs of `cols` inputs) and its optional bias.
#[derive(Clone, Debug)]
pub struct Linear<'a> {
    pub weight: TensorInfo<'a>,
    pub bias: Option<Vec<f32>>,
    pub rows: usize,
    pub cols: usize,
    /// The weight regrouped for the 8-row tile of prompts and decoding
    /// (`Model::pack_k_quant_weights`), if packed.
    pub packed: Option<Arc<K8Packed>>,
}

/// Tensors of one transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights<'a> {
    pub attn_norm: Vec<f32>,
    pub wq: Linear<'a>,
    pub wk: Linear<'a>,
    pub wv: Linear<'a>,
    pub wo: Linear<'a>,
    pub q_norm: Option<Vec<f32>>,
    pub k_norm: Option<Vec<f32>>,
    pub post_attn_norm: Option<Vec<f32>>,
    pub ffn_norm: Vec<f32>,
    pub ffn_gate: Linear<'a>,
    pub ffn_up: Linear<'a>,
    pub ffn_down: Linear<'a>,
    pub post_ffn_norm: Option<Vec<f32>>,
}

impl<'a> LayerWeights<'a> {
    /// The block's seven weight matrices (Q, K, V, attention output, gate, up, down).
    pub fn linears(&self) -> [&Linear<'a>; 7] {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.ffn_gate,
            &self.ffn_up,
            &self.ffn_down,
        ]
    }

    /// [`LayerWeights::linears`], mutable.
    pub fn linears_mut(&mut self) -> [&mut Linear<'a>; 7] {
        [
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.ffn_gate,
            &mut self.ffn_up,
            &mut self.ffn_down,
        ]
    }
}

/// All tensors of a model.
#[derive(Clone, Debug)]
pub struct Weights<'a> {
    pub token_embd: TensorInfo<'a>,
    pub output_norm: Vec<f32>,
    /// The output projection; `token_embd` itself when the model ties them.
    pub output: Linear<'a>,
    pub layers: Vec<LayerWeights<'a>>,
}

fn find<'a>(g: &Gguf<'a>, name: &str) -> Result<TensorInfo<'a>, ModelError> {
    g.tensor(name)
        .copied()
        .ok_or_else(|| ModelError::MissingTensor(String::from(name)))
}

fn check_type(t: &TensorInfo<'_>) -> Result<(), ModelError> {
    if MATMUL_TYPES.contains(&t.ty) {
        Ok(())
    } else {
        Err(ModelError::UnsupportedTensorType {
            tensor: String::from(t.name),
            ty: String::from(t.ty.name()),
        })
    }
}

fn shape_err(t: &TensorInfo<'_>, want: &str) -> ModelError {
    ModelError::BadTensorShape {
        tensor: String::from(t.name),
        reason: format!(
            "shape {:?} (n_dims {}), expected {want}",
            &t.shape[..t.n_dims as usize],
            t.n_dims
        ),
    }
}

/// A vector of `len` floats (norm weight or bias), copied out as f32.
fn vector(g: &Gguf<'_>, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
    let t = find(g, name)?;
    if t.n_elements() != len as u64 {
        return Err(shape_err(&t, &format!("{len} elements")));
    }
    if !matches!(t.ty, GgmlType::F32 | GgmlType::F16) {
        return Err(ModelError::UnsupportedTensorType {
            tensor: String::from(t.name),
            ty: String::from(t.ty.name()),
        });
    }
    let mut out = vec![0.0f32; len];
    crate::quant::dequantize_row(t.ty, t.data, &mut out)
        .map_err(|e| ModelError::Quant(format!("{name}: {e}")))?;
    Ok(out)
}

fn optional_vector(g: &Gguf<'_>, name: &str, len: usize) -> Result<Option<Vec<f32>>, ModelError> {
    if g.tensor(name).is_some() {
        vector(g, name, len).map(Some)
    } else {
        Ok(None)
    }
}

/// A `rows x cols` matrix; `bias_name` is loaded when present.
fn linear<'a>(
    g: &Gguf<'a>,
    name: &str,
    cols: usize,
    rows: usize,
    bias: Option<&str>,
) -> Result<Linear<'a>, ModelError> {
    let t = find(g, name)?;
    if t.row_len() != cols || t.n_rows() != rows {
        return Err(shape_err(&t, &format!("[{cols}, {rows}]")));
    }
    check_type(&t)?;
    if !cols.is_multiple_of(t.ty.block_size()) {
        return Err(shape_err(
            &t,
            &format!("a row length that is a multiple of {}", t.ty.block_size()),
        ));
    }
    let bias = match bias {
        Some(b) => optional_vector(g, b, rows)?,
        None => None,
    };
    Ok(Linear {
        weight: t,
        bias,
        rows,
        cols,
        packed: None,
    })
}

impl<'a> Weights<'a> {
    /// Finds and checks every tensor `cfg` calls for.
    pub fn load(g: &Gguf<'a>, cfg: &Config) -> Result<Weights<'a>, ModelError> {
        let d = cfg.n_embd;
        let token_embd = find(g, "token_embd.weight")?;
        if token_embd.row_len() != d || token_embd.n_rows() != cfg.n_vocab {
            return Err(shape_err(&token_embd, &format!("[{d}, {}]", cfg.n_vocab)));
        }
        check_type(&token_embd)?;
        let output = if g.tensor("output.weight").is_some() {
            linear(g, "output.weight", d, cfg.n_vocab, None)?
        } else {
            Linear {
                weight: token_embd,
                bias: None,
                rows: cfg.n_vocab,
                cols: d,
                packed: None,
            }
        };
        let output_norm = vector(g, "output_norm.weight", d)?;
        let (q_out, kv_out, v_out) = (
            cfg.n_head * cfg.head_dim,
            cfg.n_head_kv * cfg.head_dim,
            cfg.n_head_kv * cfg.head_dim_v,
        );
        let biased = cfg.arch == Arch::Qwen2;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for il in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}");
            let bias = |s: &str| {
                if biased {
                    Some(format!("blk.{il}.{s}.bias"))
                } else {
                    None
                }
            };
            let gemma = cfg.arch == Arch::Gemma3;
            let req_if =
                |cond: bool, s: &str, len: usize| -> Result<Option<Vec<f32>>, ModelError> {
                    if cond {
                        vector(g, &n(s), len).map(Some)
                    } else {
                        optional_vector(g, &n(s), len)
                    }
                };
            layers.push(LayerWeights {
                attn_norm: vector(g, &n("attn_norm.weight"), d)?,
                wq: linear(g, &n("attn_q.weight"), d, q_out, bias("attn_q").as_deref())?,
                wk: linear(g, &n("attn_k.weight"), d, kv_out, bias("attn_k").as_deref())?,
                wv: linear(g, &n("attn_v.weight"), d, v_out, bias("attn_v").as_deref())?,
                wo: linear(
                    g,
                    &n("attn_output.weight"),
                    cfg.n_head * cfg.head_dim_v,
                    d,
                    None,
                )?,
                q_norm: req_if(gemma, "attn_q_norm.weight", cfg.head_dim)?,
                k_norm: req_if(gemma, "attn_k_norm.weight", cfg.head_dim)?,
                post_attn_norm: req_if(gemma, "post_attention_norm.weight", d)?,
                ffn_norm: vector(g, &n("ffn_norm.weight"), d)?,
                ffn_gate: linear(g, &n("ffn_gate.weight"), d, cfg.n_ff, None)?,
                ffn_up: linear(g, &n("ffn_up.weight"), d, cfg.n_ff, None)?,
                ffn_down: linear(g, &n("ffn_down.weight"), cfg.n_ff, d, None)?,
                post_ffn_norm: req_if(gemma, "post_ffw_norm.weight", d)?,
            });
        }
        Ok(Weights {
            token_embd,
            output_norm,
            output,
            layers,
        })
    }
}
