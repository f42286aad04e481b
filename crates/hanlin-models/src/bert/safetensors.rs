//! The safetensors container: an 8-byte little-endian header length, a JSON header naming
//! each tensor's dtype, shape and byte range, then the data. Parsed here rather than through
//! a crate because the format is that small; every range is checked before use.

use hanlin_gguf::GgmlType;

use super::error::{BertError, Result};

/// One tensor of a safetensors file, its range already made absolute and checked.
#[derive(Clone, Debug)]
pub struct StTensor {
    /// Tensor name.
    pub name: String,
    /// The dtype string as written (`F32`, `F16`, `BF16`, `I64` …).
    pub dtype: String,
    /// Shape, outermost dimension first (PyTorch order).
    pub shape: Vec<u64>,
    /// Absolute byte offset of the first element (the size follows from dtype and shape,
    /// which [`parse`] checked against the recorded range).
    pub start: usize,
}

impl StTensor {
    /// The ggml type with the same element layout, for the float dtypes we can run.
    pub fn ggml_type(&self) -> Option<GgmlType> {
        match self.dtype.as_str() {
            "F32" => Some(GgmlType::F32),
            "F16" => Some(GgmlType::F16),
            "BF16" => Some(GgmlType::BF16),
            _ => None,
        }
    }
}

fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" => 8,
        _ => return None,
    })
}

/// Parses and validates the header of a whole safetensors file held in `bytes`.
pub fn parse(bytes: &[u8], path: &str) -> Result<Vec<StTensor>> {
    let bad = |key: &str, why: String| BertError::Config {
        path: path.to_string(),
        key: key.to_string(),
        why,
    };
    let len_bytes: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            bad(
                "header",
                "file shorter than the 8-byte header length".into(),
            )
        })?;
    let header_len = u64::from_le_bytes(len_bytes);
    let data_start = usize::try_from(header_len)
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            bad(
                "header",
                format!("header length {header_len} runs past the end of the file"),
            )
        })?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..data_start]).map_err(|source| BertError::Json {
            path: path.to_string(),
            source,
        })?;
    let obj = header
        .as_object()
        .ok_or_else(|| bad("header", "is not a JSON object".into()))?;
    let data_len = (bytes.len() - data_start) as u64;
    let mut out = Vec::with_capacity(obj.len());
    for (name, info) in obj {
        if name == "__metadata__" {
            continue;
        }
        let dtype = info
            .get("dtype")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad(name, "no dtype string".into()))?;
        let shape = info
            .get("shape")
            .and_then(|v| v.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect::<Option<Vec<u64>>>())
            .ok_or_else(|| bad(name, "shape is not an array of integers".into()))?;
        let offsets = info
            .get("data_offsets")
            .and_then(|v| v.as_array())
            .and_then(|a| a.iter().map(|d| d.as_u64()).collect::<Option<Vec<u64>>>())
            .filter(|o| o.len() == 2)
            .ok_or_else(|| bad(name, "data_offsets is not two integers".into()))?;
        let (begin, end) = (offsets[0], offsets[1]);
        if begin > end || end > data_len {
            return Err(bad(
                name,
                format!("data_offsets [{begin}, {end}] outside the {data_len} data bytes"),
            ));
        }
        if let Some(size) = dtype_size(dtype) {
            let expected = shape
                .iter()
                .try_fold(size, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| bad(name, "shape overflows".into()))?;
            if expected != end - begin {
                return Err(bad(
                    name,
                    format!(
                        "shape {shape:?} of {dtype} needs {expected} bytes, data_offsets give {}",
                        end - begin
                    ),
                ));
            }
        }
        // Fits in usize: `begin` is at most `bytes.len()`.
        out.push(StTensor {
            name: name.clone(),
            dtype: dtype.to_string(),
            shape,
            start: data_start + begin as usize,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_ranges_and_rejects_bad_ones() {
        let ok = file(
            r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            &[0; 8],
        );
        let t = parse(&ok, "x").unwrap_or_default();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].start, ok.len() - 8);
        assert_eq!(t[0].ggml_type(), Some(GgmlType::F32));

        let short = file(
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            &[0; 8],
        );
        assert!(parse(&short, "x").is_err());
        let past = file(
            r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            &[0; 8],
        );
        assert!(parse(&past, "x").is_err());
        assert!(parse(&[1, 0], "x").is_err());
        assert!(parse(&file("[]", &[]), "x").is_err());
    }
}
