//! Writer → reader round trips: every value type, arrays of every type, nesting, unicode,
//! both versions, several alignments, several tensors.

mod common;

use common::pattern;
use hanlin_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, Value, ValueType};

/// One value of every scalar type, picked at the edges of each range.
fn scalars() -> Vec<(&'static str, Value)> {
    vec![
        ("s.u8", Value::U8(u8::MAX)),
        ("s.i8", Value::I8(i8::MIN)),
        ("s.u16", Value::U16(u16::MAX)),
        ("s.i16", Value::I16(i16::MIN)),
        ("s.u32", Value::U32(u32::MAX)),
        ("s.i32", Value::I32(i32::MIN)),
        ("s.f32", Value::F32(-1.0e-38)),
        ("s.bool_t", Value::Bool(true)),
        ("s.bool_f", Value::Bool(false)),
        (
            "s.string",
            Value::String("翰林 ünïcødé 🦀 \u{0} \n\t\"quoted\"".into()),
        ),
        ("s.empty", Value::String(String::new())),
        ("s.u64", Value::U64(u64::MAX)),
        ("s.i64", Value::I64(i64::MIN)),
        ("s.f64", Value::F64(f64::MAX)),
    ]
}

/// An array of every element type, including an empty one and nested ones.
fn arrays() -> Vec<(&'static str, Value)> {
    use Value as V;
    let arr = |t, v| V::Array(t, v);
    vec![
        (
            "a.u8",
            arr(ValueType::U8, vec![V::U8(0), V::U8(1), V::U8(255)]),
        ),
        ("a.i8", arr(ValueType::I8, vec![V::I8(-128), V::I8(127)])),
        ("a.u16", arr(ValueType::U16, vec![V::U16(0), V::U16(65535)])),
        (
            "a.i16",
            arr(ValueType::I16, vec![V::I16(-32768), V::I16(1)]),
        ),
        (
            "a.u32",
            arr(ValueType::U32, vec![V::U32(3), V::U32(u32::MAX)]),
        ),
        (
            "a.i32",
            arr(ValueType::I32, vec![V::I32(-5), V::I32(i32::MAX)]),
        ),
        (
            "a.f32",
            arr(
                ValueType::F32,
                vec![V::F32(0.1), V::F32(-2.5), V::F32(f32::INFINITY)],
            ),
        ),
        (
            "a.bool",
            arr(ValueType::Bool, vec![V::Bool(true), V::Bool(false)]),
        ),
        (
            "a.string",
            arr(
                ValueType::String,
                vec![
                    V::String("".into()),
                    V::String("日本語".into()),
                    V::String("🦀".into()),
                ],
            ),
        ),
        (
            "a.u64",
            arr(ValueType::U64, vec![V::U64(u64::MAX), V::U64(0)]),
        ),
        (
            "a.i64",
            arr(ValueType::I64, vec![V::I64(i64::MIN), V::I64(-1)]),
        ),
        (
            "a.f64",
            arr(
                ValueType::F64,
                vec![V::F64(std::f64::consts::PI), V::F64(-0.0)],
            ),
        ),
        ("a.empty", arr(ValueType::String, vec![])),
        (
            "a.nested",
            arr(
                ValueType::Array,
                vec![
                    arr(ValueType::I32, vec![V::I32(1), V::I32(2)]),
                    arr(ValueType::String, vec![V::String("x".into())]),
                    arr(ValueType::U8, vec![]),
                ],
            ),
        ),
        (
            "a.deep",
            // Four levels of arrays: the deepest the reader accepts.
            arr(
                ValueType::Array,
                vec![arr(
                    ValueType::Array,
                    vec![arr(
                        ValueType::Array,
                        vec![arr(ValueType::U16, vec![V::U16(9)])],
                    )],
                )],
            ),
        ),
    ]
}

/// Tensors of several types and ranks whose sizes are not multiples of the alignment.
fn tensors() -> Vec<(&'static str, Vec<u64>, GgmlType)> {
    vec![
        ("t.f32", vec![3, 2], GgmlType::F32),
        ("t.f16", vec![5], GgmlType::F16),
        ("t.q4_0", vec![64, 3], GgmlType::Q4_0),
        ("t.q6_k", vec![256, 1, 2], GgmlType::Q6_K),
        ("t.i8", vec![1, 1, 1, 7], GgmlType::I8),
        ("t.bf16", vec![9], GgmlType::BF16),
    ]
}

fn build(version: u32, alignment: Option<u64>) -> GgufWriter {
    let mut w = GgufWriter::new().with_version(version);
    if let Some(a) = alignment {
        w = w.with_alignment(a).expect("valid alignment");
    }
    for (k, v) in scalars().into_iter().chain(arrays()) {
        w.set(k, v);
    }
    for (i, (name, dims, ty)) in tensors().into_iter().enumerate() {
        let n = ty.bytes_for(dims.iter().product()).expect("whole blocks") as usize;
        w.add_tensor(name, &dims, ty, pattern(n, i as u8))
            .expect("valid tensor");
    }
    w
}

fn check(version: u32, alignment: Option<u64>) {
    let bytes = build(version, alignment).to_bytes().expect("writes");
    let f = GgufFile::from_bytes(bytes).expect("parses");
    let align = alignment.unwrap_or(32);
    assert_eq!(f.version(), version);
    assert_eq!(f.alignment(), align);
    assert_eq!(f.data_offset() % align, 0);
    assert_eq!(
        f.file_len() % align,
        0,
        "the last tensor is padded like gguf-py does"
    );

    let mut expected: Vec<(String, Value)> = Vec::new();
    if let Some(a) = alignment {
        expected.push(("general.alignment".into(), Value::U32(a as u32)));
    }
    expected.extend(
        scalars()
            .into_iter()
            .chain(arrays())
            .map(|(k, v)| (k.to_string(), v)),
    );
    assert_eq!(f.metadata(), &expected[..], "metadata in file order");
    for (k, v) in &expected {
        assert_eq!(f.get(k), Some(v), "{k}");
    }
    // -0.0 == 0.0, so check the sign bit survived too.
    let neg_zero = &f.get_array("a.f64").expect("an array").expect("present")[1];
    assert!(matches!(neg_zero, Value::F64(x) if x.is_sign_negative()));

    assert_eq!(f.tensors().len(), tensors().len());
    for (i, (name, dims, ty)) in tensors().into_iter().enumerate() {
        let t = f.require_tensor(name).expect("present");
        assert_eq!(&f.tensors()[i], t, "file order");
        assert_eq!(t.dims, dims, "{name}");
        assert_eq!(t.ggml_type, ty, "{name}");
        assert_eq!(t.offset % align, 0, "{name}");
        assert_eq!(t.start, f.data_offset() + t.offset);
        assert_eq!(
            f.tensor_data(t),
            &pattern(t.n_bytes as usize, i as u8)[..],
            "{name}"
        );
    }
}

#[test]
fn v3_default_alignment() {
    check(3, None);
}

#[test]
fn v2_default_alignment() {
    check(2, None);
}

#[test]
fn custom_alignments() {
    for a in [1, 2, 8, 64, 4096] {
        check(3, Some(a));
        check(2, Some(a));
    }
}

#[test]
fn rewriting_what_we_read_gives_the_same_bytes() {
    let bytes = build(3, Some(16)).to_bytes().unwrap();
    let f = GgufFile::from_bytes(bytes.clone()).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in f.metadata() {
        w.set(k, v.clone());
    }
    for t in f.tensors() {
        w.add_tensor(&t.name, &t.dims, t.ggml_type, f.tensor_data(t).to_vec())
            .unwrap();
    }
    assert_eq!(w.to_bytes().unwrap(), bytes);
}

#[test]
fn nan_payloads_survive() {
    let mut w = GgufWriter::new();
    w.set("nan32", Value::F32(f32::from_bits(0x7fc0_1234)));
    w.set("nan64", Value::F64(f64::from_bits(0xfff8_0000_dead_beef)));
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert!(matches!(f.get("nan32"), Some(Value::F32(x)) if x.to_bits() == 0x7fc0_1234));
    assert!(matches!(f.get("nan64"), Some(Value::F64(x)) if x.to_bits() == 0xfff8_0000_dead_beef));
}

#[test]
fn no_tensors_and_no_metadata() {
    let f = GgufFile::from_bytes(GgufWriter::new().to_bytes().unwrap()).unwrap();
    assert!(f.metadata().is_empty());
    assert!(f.tensors().is_empty());
    assert_eq!(f.version(), 3);
}

#[test]
fn set_replaces_in_place() {
    let mut w = GgufWriter::new();
    w.set("a", Value::U8(1))
        .set("b", Value::U8(2))
        .set("a", Value::String("x".into()));
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    let keys: Vec<&str> = f.metadata().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(f.get_str("a").unwrap(), Some("x"));
}

#[test]
fn typed_getters() {
    let f = GgufFile::from_bytes(build(3, None).to_bytes().unwrap()).unwrap();
    assert_eq!(f.get_u64("s.u32").unwrap(), Some(u32::MAX as u64));
    assert_eq!(f.get_u64("s.u8").unwrap(), Some(255));
    assert_eq!(f.get_f64("s.i8").unwrap(), Some(-128.0));
    assert_eq!(f.get_bool("s.bool_t").unwrap(), Some(true));
    assert_eq!(f.get_str("s.empty").unwrap(), Some(""));
    assert_eq!(f.get_array("a.u8").unwrap().map(<[Value]>::len), Some(3));
    assert_eq!(f.get_str("missing").unwrap(), None);
    let e = f.get_u64("s.i64").unwrap_err();
    assert!(matches!(e, GgufError::WrongValueType { .. }), "{e:?}");
    assert!(e.to_string().contains("\"s.i64\""), "{e}");
    let e = f.get_str("s.u8").unwrap_err();
    assert!(e.to_string().contains("expected a string, found U8"), "{e}");
    let e = f.require_tensor("nope").unwrap_err();
    assert!(
        matches!(e, GgufError::MissingTensor(ref n) if n == "nope"),
        "{e:?}"
    );
}

#[test]
fn open_maps_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.gguf");
    std::fs::write(&path, build(3, None).to_bytes().unwrap()).unwrap();
    let f = GgufFile::open(&path).unwrap();
    assert_eq!(f.tensors().len(), tensors().len());

    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let e = GgufFile::open(&empty).unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e:?}");

    let e = GgufFile::open(dir.path().join("absent.gguf")).unwrap_err();
    assert!(matches!(e, GgufError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("absent.gguf"), "{e}");
}

// --- writer misuse ---------------------------------------------------------------------

fn invalid(r: hanlin_gguf::Result<impl std::fmt::Debug>, needle: &str) {
    match r {
        Err(GgufError::InvalidInput(msg)) => {
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}")
        }
        other => panic!("expected InvalidInput({needle:?}), got {other:?}"),
    }
}

#[test]
fn writer_rejects_versions_it_cannot_write() {
    for v in [0, 1, 4] {
        invalid(
            GgufWriter::new().with_version(v).to_bytes(),
            &format!("version {v}"),
        );
    }
}

#[test]
fn writer_rejects_bad_alignment() {
    for a in [0, 3, 48, 1 << 32] {
        let e = GgufWriter::new().with_alignment(a).unwrap_err();
        assert!(matches!(e, GgufError::BadAlignment(x) if x == a), "{e:?}");
        assert!(e.to_string().contains("power of two"), "{e}");
    }
    // A general.alignment set by hand must still be a u32 power of two.
    let mut w = GgufWriter::new();
    w.set("general.alignment", Value::U64(64));
    assert!(matches!(
        w.to_bytes(),
        Err(GgufError::WrongValueType { .. })
    ));
    w.set("general.alignment", Value::U32(24));
    assert!(matches!(w.to_bytes(), Err(GgufError::BadAlignment(24))));
}

#[test]
fn hand_set_alignment_drives_the_layout() {
    let mut w = GgufWriter::new();
    w.set("general.alignment", Value::U32(128));
    w.add_tensor("x", &[3], GgmlType::F32, pattern(12, 0))
        .unwrap();
    let f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.alignment(), 128);
    assert_eq!(f.data_offset() % 128, 0);
}

#[test]
fn writer_rejects_bad_values() {
    let mut w = GgufWriter::new();
    w.set(
        "mixed",
        Value::Array(ValueType::U8, vec![Value::U8(1), Value::I8(1)]),
    );
    invalid(w.to_bytes(), "holds a I8");

    let mut w = GgufWriter::new();
    w.set("", Value::U8(1));
    invalid(w.to_bytes(), "empty");

    let mut deep = Value::Array(ValueType::U8, vec![]);
    for _ in 0..4 {
        deep = Value::Array(ValueType::Array, vec![deep]);
    }
    let mut w = GgufWriter::new();
    w.set("deep", deep);
    assert!(matches!(w.to_bytes(), Err(GgufError::NestingTooDeep(k)) if k == "deep"));
}

#[test]
fn writer_rejects_bad_tensors() {
    let mut w = GgufWriter::new();
    invalid(w.add_tensor("a", &[], GgmlType::F32, vec![]), "bad dims");
    invalid(
        w.add_tensor("a", &[1, 1, 1, 1, 1], GgmlType::F32, vec![0; 4]),
        "bad dims",
    );
    invalid(
        w.add_tensor("a", &[4, 0], GgmlType::F32, vec![]),
        "bad dims",
    );
    invalid(
        w.add_tensor("a", &[u64::MAX, 2], GgmlType::F32, vec![]),
        "overflows",
    );
    invalid(
        w.add_tensor("a", &[33], GgmlType::Q4_0, vec![0; 18]),
        "not a multiple",
    );
    invalid(
        w.add_tensor("a", &[2], GgmlType::F32, vec![0; 4]),
        "4 bytes given, 8 expected",
    );
    let long = "x".repeat(65);
    assert!(matches!(
        w.add_tensor(&long, &[1], GgmlType::F32, vec![0; 4]),
        Err(GgufError::TensorNameTooLong { len: 65, .. })
    ));
    w.add_tensor(&long[..64], &[1], GgmlType::F32, vec![0; 4])
        .unwrap();
    w.add_tensor("a", &[1], GgmlType::F32, vec![0; 4]).unwrap();
    let e = w
        .add_tensor("a", &[1], GgmlType::F32, vec![0; 4])
        .unwrap_err();
    assert!(
        matches!(e, GgufError::DuplicateTensor(ref n) if n == "a"),
        "{e:?}"
    );
    assert_eq!(
        GgufFile::from_bytes(w.to_bytes().unwrap())
            .unwrap()
            .tensors()
            .len(),
        2
    );
}

#[test]
fn releasing_large_arrays_keeps_everything_else() {
    let mut w = GgufWriter::new();
    let big: Vec<Value> = (0..5000)
        .map(|i| Value::String(format!("tok{i}")))
        .collect();
    let small: Vec<Value> = (0..10).map(Value::I32).collect();
    w.set("vocab", Value::Array(ValueType::String, big))
        .set("small", Value::Array(ValueType::I32, small.clone()))
        .set("name", Value::String("m".into()));
    let mut f = GgufFile::from_bytes(w.to_bytes().unwrap()).unwrap();
    assert_eq!(f.get_array("vocab").unwrap().unwrap().len(), 5000);
    assert_eq!(f.release_large_arrays(1024), 1);
    assert!(matches!(f.get("vocab"), Some(Value::Array(ValueType::String, v)) if v.is_empty()));
    assert_eq!(f.get_array("small").unwrap().unwrap(), small.as_slice());
    assert_eq!(f.get_str("name").unwrap(), Some("m"));
    assert_eq!(f.release_large_arrays(1024), 0);
}
