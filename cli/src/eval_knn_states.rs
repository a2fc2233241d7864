//! `eval --knn-states F`: the hidden states of `eval --knn-layers`, saved once and read back (they
//! cost a forward pass per row; the report over them takes seconds).

/// `--knn-states F`: the states saved by an earlier run over the same rows and layers, else
/// computed by `compute` and saved there (little-endian: rows, layers, width as u32, the layer
/// numbers as u32, then the f32 values layer by layer, row by row).
pub fn cached_states(
    file: Option<&str>,
    rows: usize,
    layers: &[usize],
    compute: impl FnOnce() -> Result<Vec<Vec<Vec<f32>>>, String>,
) -> Result<Vec<Vec<Vec<f32>>>, String> {
    let Some(file) = file else { return compute() };
    if let Ok(bytes) = std::fs::read(file) {
        return decode_states(&bytes, rows, layers).map_err(|e| format!("{file}: {e}"));
    }
    let states = compute()?;
    std::fs::write(file, encode_states(&states, layers)).map_err(|e| format!("{file}: {e}"))?;
    Ok(states)
}

fn encode_states(states: &[Vec<Vec<f32>>], layers: &[usize]) -> Vec<u8> {
    let rows = states.first().map_or(0, Vec::len);
    let width = states.first().and_then(|s| s.first()).map_or(0, Vec::len);
    let mut out = Vec::new();
    for v in [rows, layers.len(), width].iter().chain(layers) {
        out.extend_from_slice(&(*v as u32).to_le_bytes());
    }
    for v in states.iter().flatten().flatten() {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode_states(
    bytes: &[u8],
    rows: usize,
    layers: &[usize],
) -> Result<Vec<Vec<Vec<f32>>>, String> {
    let word = |i: usize| -> Result<u32, String> {
        let b = bytes.get(i * 4..i * 4 + 4).ok_or("truncated")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (n, l, width) = (word(0)? as usize, word(1)? as usize, word(2)? as usize);
    let saved: Vec<usize> = (0..l)
        .map(|i| word(3 + i).map(|v| v as usize))
        .collect::<Result<_, _>>()?;
    if n != rows || saved != layers {
        return Err(format!(
            "holds {n} rows at layers {saved:?}, this run wants {rows} at {layers:?}"
        ));
    }
    let start = (3 + l) * 4;
    if bytes.len() != start + n * l * width * 4 {
        return Err("wrong length".into());
    }
    let mut values = bytes[start..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    Ok((0..l)
        .map(|_| {
            (0..n)
                .map(|_| values.by_ref().take(width).collect())
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_states_come_back_only_for_the_same_rows_and_layers() {
        let states = vec![
            vec![vec![1.0f32, -2.5], vec![0.25, 3.0], vec![7.0, 8.0]],
            vec![vec![0.0f32, 1.0], vec![2.0, 3.0], vec![4.0, 5.0]],
        ];
        let bytes = encode_states(&states, &[7, 28]);
        assert_eq!(decode_states(&bytes, 3, &[7, 28]).unwrap(), states);
        assert!(decode_states(&bytes, 4, &[7, 28])
            .unwrap_err()
            .contains("3 rows"));
        assert!(decode_states(&bytes, 3, &[7]).is_err());
        assert_eq!(
            decode_states(&bytes[..bytes.len() - 1], 3, &[7, 28]).unwrap_err(),
            "wrong length"
        );
        assert_eq!(
            decode_states(&bytes[..6], 3, &[7, 28]).unwrap_err(),
            "truncated"
        );
    }
}
