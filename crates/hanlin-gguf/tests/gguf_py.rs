//! Cross-checks with llama.cpp's gguf-py (scripts/ref/gguf_py_crosscheck.py):
//! we read exactly what gguf-py wrote, we write byte-for-byte what gguf-py writes, and
//! gguf-py reads what we wrote (the script's `check` step on testdata/hanlin_tiny.gguf).

mod common;

use std::path::PathBuf;

use common::pattern;
use hanlin_gguf::{GgmlType, GgufFile, GgufWriter, Value, ValueType};

fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

const UNICODE: &str = "翰林 — ünïcødé 🦀\n\ttab";

/// The metadata `gguf_py_crosscheck.py write` gives GGUFWriter, in its order.
fn gguf_py_metadata() -> Vec<(&'static str, Value)> {
    use Value as V;
    let arr = V::Array;
    vec![
        ("general.architecture", V::String("llama".into())),
        ("general.alignment", V::U32(64)),
        ("t.u8", V::U8(200)),
        ("t.i8", V::I8(-100)),
        ("t.u16", V::U16(60000)),
        ("t.i16", V::I16(-30000)),
        ("t.u32", V::U32(4_000_000_000)),
        ("t.i32", V::I32(-2_000_000_000)),
        ("t.f32", V::F32(3.25)),
        ("t.bool", V::Bool(true)),
        ("t.str", V::String(UNICODE.into())),
        ("t.u64", V::U64((1 << 63) + 5)),
        ("t.i64", V::I64(-(1 << 62))),
        ("t.f64", V::F64(0.1)),
        ("a.u8", arr(ValueType::U8, vec![V::U8(0), V::U8(255)])),
        ("a.i8", arr(ValueType::I8, vec![V::I8(-128), V::I8(127)])),
        ("a.u16", arr(ValueType::U16, vec![V::U16(0), V::U16(65535)])),
        (
            "a.i16",
            arr(ValueType::I16, vec![V::I16(-32768), V::I16(32767)]),
        ),
        (
            "a.u32",
            arr(ValueType::U32, vec![V::U32(0), V::U32(u32::MAX)]),
        ),
        (
            "a.i32",
            arr(ValueType::I32, vec![V::I32(i32::MIN), V::I32(i32::MAX)]),
        ),
        (
            "a.f32",
            arr(ValueType::F32, vec![V::F32(0.5), V::F32(-1.25)]),
        ),
        (
            "a.bool",
            arr(
                ValueType::Bool,
                vec![V::Bool(true), V::Bool(false), V::Bool(true)],
            ),
        ),
        (
            "a.str",
            arr(
                ValueType::String,
                ["", "a", "翰林", "🦀"]
                    .iter()
                    .map(|s| V::String(s.to_string()))
                    .collect(),
            ),
        ),
        (
            "a.u64",
            arr(ValueType::U64, vec![V::U64(0), V::U64(u64::MAX)]),
        ),
        (
            "a.i64",
            arr(ValueType::I64, vec![V::I64(i64::MIN), V::I64(i64::MAX)]),
        ),
        (
            "a.f64",
            arr(ValueType::F64, vec![V::F64(0.1), V::F64(1e300)]),
        ),
        (
            "a.nested",
            arr(
                ValueType::Array,
                vec![
                    arr(ValueType::I32, vec![V::I32(1), V::I32(2)]),
                    arr(ValueType::I32, vec![V::I32(3)]),
                ],
            ),
        ),
    ]
}

fn le_bytes<const N: usize, T: Copy>(xs: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    xs.iter().flat_map(|&x| f(x)).collect()
}

/// The tensors in gguf-py's file: name, ggml dims (numpy shape reversed), type, bytes.
fn gguf_py_tensors() -> Vec<(&'static str, Vec<u64>, GgmlType, Vec<u8>)> {
    let embd: Vec<f32> = (0..15).map(|i| i as f32 * 0.25 - 1.0).collect();
    let norm: Vec<u16> = [1.0f32, -2.5, 0.125, 65504.0]
        .iter()
        .map(|&x| half::f16::from_f32(x).to_bits())
        .collect();
    vec![
        (
            "tok_embd.weight",
            vec![5, 3],
            GgmlType::F32,
            le_bytes(&embd, f32::to_le_bytes),
        ),
        (
            "norm.weight",
            vec![4],
            GgmlType::F16,
            le_bytes(&norm, u16::to_le_bytes),
        ),
        (
            "idx",
            vec![3, 1, 2],
            GgmlType::I16,
            le_bytes(&[1i16, -2, 3, -4, 5, -6], i16::to_le_bytes),
        ),
        ("q.weight", vec![32, 2], GgmlType::Q8_0, pattern(68, 9)),
        (
            "i8",
            vec![3, 1, 2, 1],
            GgmlType::I8,
            le_bytes(&[-1i8, 2, -3, 4, -5, 6], i8::to_le_bytes),
        ),
    ]
}

#[test]
fn reads_exactly_what_gguf_py_wrote() {
    let f = GgufFile::open(testdata("gguf_py_tiny.gguf")).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.alignment(), 64);
    // gguf-py's GGUFReader reports data_offset 1216 for this file.
    assert_eq!(f.data_offset(), 1216);
    let expected = gguf_py_metadata();
    let got: Vec<(&str, &Value)> = f.metadata().iter().map(|(k, v)| (k.as_str(), v)).collect();
    let want: Vec<(&str, &Value)> = expected.iter().map(|(k, v)| (*k, v)).collect();
    assert_eq!(got, want);

    let tensors = gguf_py_tensors();
    assert_eq!(f.tensors().len(), tensors.len());
    // gguf-py's data offsets, relative to the start of the file.
    let starts = [1216, 1280, 1344, 1408, 1536];
    for ((t, (name, dims, ty, data)), start) in f.tensors().iter().zip(&tensors).zip(starts) {
        assert_eq!(t.name, *name);
        assert_eq!(&t.dims, dims, "{name}");
        assert_eq!(t.ggml_type, *ty, "{name}");
        assert_eq!(t.start, start, "{name}");
        assert_eq!(f.tensor_data(t), &data[..], "{name}");
    }
}

#[test]
fn writes_byte_for_byte_what_gguf_py_writes() {
    let mut w = GgufWriter::new().with_alignment(64).unwrap();
    for (k, v) in gguf_py_metadata() {
        w.set(k, v);
    }
    for (name, dims, ty, data) in gguf_py_tensors() {
        w.add_tensor(name, &dims, ty, data).unwrap();
    }
    // with_alignment put general.alignment first; gguf-py writes the architecture first.
    let ours = w.to_bytes().unwrap();
    let mut w2 = GgufWriter::new();
    for (k, v) in gguf_py_metadata() {
        w2.set(k, v);
    }
    for (name, dims, ty, data) in gguf_py_tensors() {
        w2.add_tensor(name, &dims, ty, data).unwrap();
    }
    let ours_in_py_order = w2.to_bytes().unwrap();
    let theirs = std::fs::read(testdata("gguf_py_tiny.gguf")).unwrap();
    assert_eq!(ours_in_py_order.len(), theirs.len());
    assert!(
        ours_in_py_order == theirs,
        "first difference at byte {:?}",
        first_diff(&ours_in_py_order, &theirs)
    );
    assert_eq!(ours.len(), theirs.len(), "key order changes no sizes");
}

fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// What `gguf_py_crosscheck.py check` expects in testdata/hanlin_tiny.gguf.
fn hanlin_tiny() -> GgufWriter {
    use Value as V;
    let arr = V::Array;
    let mut w = GgufWriter::new().with_version(2);
    w.set("general.architecture", V::String("hanlin-test".into()));
    let mut w = w.with_alignment(16).expect("valid alignment");
    let strs = |xs: &[&str]| {
        xs.iter()
            .map(|s| V::String(s.to_string()))
            .collect::<Vec<_>>()
    };
    w.set("k.u8", V::U8(255))
        .set("k.i8", V::I8(-128))
        .set("k.u16", V::U16(65535))
        .set("k.i16", V::I16(-32768))
        .set("k.u32", V::U32(u32::MAX))
        .set("k.i32", V::I32(i32::MIN))
        .set("k.f32", V::F32(-0.375))
        .set("k.bool", V::Bool(false))
        .set("k.str", V::String(UNICODE.into()))
        .set("k.empty_str", V::String(String::new()))
        .set("k.u64", V::U64(u64::MAX))
        .set("k.i64", V::I64(i64::MIN))
        .set("k.f64", V::F64(std::f64::consts::PI))
        .set(
            "arr.u8",
            arr(ValueType::U8, vec![V::U8(1), V::U8(2), V::U8(255)]),
        )
        .set(
            "arr.i8",
            arr(ValueType::I8, vec![V::I8(-1), V::I8(0), V::I8(1)]),
        )
        .set(
            "arr.u16",
            arr(ValueType::U16, vec![V::U16(7), V::U16(65535)]),
        )
        .set(
            "arr.i16",
            arr(ValueType::I16, vec![V::I16(-7), V::I16(32767)]),
        )
        .set(
            "arr.u32",
            arr(ValueType::U32, vec![V::U32(1), V::U32(u32::MAX)]),
        )
        .set(
            "arr.i32",
            arr(
                ValueType::I32,
                vec![V::I32(i32::MIN), V::I32(0), V::I32(i32::MAX)],
            ),
        )
        .set(
            "arr.f32",
            arr(ValueType::F32, vec![V::F32(0.25), V::F32(-8.0)]),
        )
        .set(
            "arr.bool",
            arr(ValueType::Bool, vec![V::Bool(false), V::Bool(true)]),
        )
        .set(
            "arr.str",
            arr(ValueType::String, strs(&["α", "", "🦀🦀", "tab\there"])),
        )
        .set("arr.u64", arr(ValueType::U64, vec![V::U64(u64::MAX)]))
        .set(
            "arr.i64",
            arr(ValueType::I64, vec![V::I64(-1), V::I64(i64::MAX)]),
        )
        .set(
            "arr.f64",
            arr(
                ValueType::F64,
                vec![V::F64(std::f64::consts::E), V::F64(-0.5)],
            ),
        )
        .set("arr.empty", arr(ValueType::U32, vec![]))
        .set(
            "arr.nested",
            arr(
                ValueType::Array,
                vec![
                    arr(ValueType::String, strs(&["x", "yz"])),
                    arr(ValueType::String, strs(&["w"])),
                ],
            ),
        );
    let tensors: [(&str, &[u64], GgmlType); 5] = [
        ("blk.0.f32", &[3, 2], GgmlType::F32),
        ("blk.0.q4_k", &[256, 2], GgmlType::Q4_K),
        ("blk.0.f16", &[5], GgmlType::F16),
        ("blk.0.q8_0", &[32, 1, 1, 2], GgmlType::Q8_0),
        ("blk.0.bf16", &[7], GgmlType::BF16),
    ];
    for (i, (name, dims, ty)) in tensors.into_iter().enumerate() {
        let n = ty.bytes_for(dims.iter().product()).expect("whole blocks") as usize;
        w.add_tensor(name, dims, ty, pattern(n, i as u8 + 1))
            .expect("valid tensor");
    }
    w
}

/// Keeps testdata/hanlin_tiny.gguf equal to what the writer produces, so the gguf-py check
/// of that file checks today's writer. `HANLIN_REGEN=1` rewrites it.
#[test]
fn hanlin_tiny_is_what_the_writer_writes() {
    let bytes = hanlin_tiny().to_bytes().unwrap();
    let path = testdata("hanlin_tiny.gguf");
    if std::env::var_os("HANLIN_REGEN").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let committed = std::fs::read(&path).unwrap();
    assert!(
        committed == bytes,
        "{} is stale (first difference at {:?}); rerun with HANLIN_REGEN=1, then \
         `python3 scripts/ref/gguf_py_crosscheck.py check`",
        path.display(),
        first_diff(&committed, &bytes)
    );
    let f = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(f.version(), 2);
    assert_eq!(f.alignment(), 16);
    assert_eq!(f.metadata().len(), 29);
    assert_eq!(f.tensors().len(), 5);
}
