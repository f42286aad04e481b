//! Hostile and corrupt files: each must fail with the specific error, a message naming the
//! problem, no panic, and no allocation out of proportion to the file's size.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{small_file, Raw};
use hanlin_gguf::{GgmlType, GgufError, GgufFile, ValueType};

/// Counts live heap bytes per thread, so each test can bound what parsing allocated.
struct Counting;

thread_local! {
    // const-initialised, so touching them never allocates (which would recurse).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// adds bookkeeping that neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours; the caller upholds it.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc`/`realloc` above, i.e. from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr`/`layout` came from `System` via this allocator; caller upholds the rest.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns what it returned and the most heap it held at once beyond what was
/// live before.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, isize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    (out, PEAK.with(Cell::get) - start)
}

/// Parses `bytes`, expecting an error; asserts the parse allocated at most a fixed multiple
/// of the input (plus slack), which a 2^63 length or count taken at face value would break.
fn parse_err(bytes: Vec<u8>) -> GgufError {
    let budget = bytes.len() as isize * 64 + (64 << 10);
    let (result, used) = peak_during(|| GgufFile::from_bytes(bytes));
    assert!(
        used <= budget,
        "parsing allocated {used} bytes (budget {budget})"
    );
    match result {
        Ok(f) => panic!("expected an error, parsed {f:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_allocation_counter_counts() {
    let (v, used) = peak_during(|| vec![1u8; 1 << 20]);
    assert!(used >= 1 << 20, "{used}");
    drop(v);
}

/// Asserts that the message says each of `needles`.
fn says(e: &GgufError, needles: &[&str]) {
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "{msg:?} does not mention {n:?}");
    }
}

/// A file with one F32 tensor `w` of `dims` at `offset`, plus `data_len` bytes of data.
fn one_tensor(name: &str, dims: &[u64], ty: u32, offset: u64, data_len: usize) -> Vec<u8> {
    let mut r = Raw::header(3, 1, 0);
    r.tensor_info(name, dims, ty, offset)
        .pad(32)
        .zeros(data_len);
    r.take()
}

#[test]
fn a_valid_one_tensor_file_parses() {
    // Guards the helpers: the variants below differ from this in one field only.
    let f = GgufFile::from_bytes(one_tensor("w", &[4], 0, 0, 16)).unwrap();
    assert_eq!(f.tensors()[0].n_bytes, 16);
}

#[test]
fn bad_magic() {
    let mut bytes = small_file();
    bytes[..4].copy_from_slice(b"GGML");
    let e = parse_err(bytes);
    assert!(
        matches!(e, GgufError::BadMagic(m) if &m == b"GGML"),
        "{e:?}"
    );
    says(&e, &["not a GGUF file", "bad magic"]);
}

#[test]
fn unsupported_versions() {
    let cases: [(u32, &str); 5] = [
        (1, "v1"),
        (0, "no GGUF version is 0"),
        (4, "supports versions 2 and 3"),
        (u32::MAX, "supports versions 2 and 3"),
        (0x0300_0000, "big-endian"),
    ];
    for (v, needle) in cases {
        let mut bytes = small_file();
        bytes[4..8].copy_from_slice(&v.to_le_bytes());
        let e = parse_err(bytes);
        assert!(
            matches!(e, GgufError::UnsupportedVersion(x) if x == v),
            "{e:?}"
        );
        says(&e, &[&format!("unsupported GGUF version {v}"), needle]);
    }
}

#[test]
fn truncated_at_every_byte() {
    let bytes = small_file();
    let full = GgufFile::from_bytes(bytes.clone()).unwrap();
    let data_end = full
        .tensors()
        .iter()
        .map(|t| t.start + t.n_bytes)
        .max()
        .unwrap() as usize;
    assert_eq!(
        data_end,
        bytes.len(),
        "small_file's last tensor should end the file"
    );
    for n in 0..bytes.len() {
        let e = parse_err(bytes[..n].to_vec());
        match &e {
            GgufError::Truncated { len, .. } => {
                assert_eq!(*len, n as u64);
                says(&e, &["truncated", &format!("file is {n} bytes")]);
            }
            GgufError::AbsurdCount { len, .. } => {
                assert_eq!(*len, n as u64);
                says(&e, &["impossible for a file of"]);
            }
            GgufError::TensorOutOfBounds { len, .. } => {
                assert_eq!(*len, n as u64);
                says(&e, &["past the end of the file"]);
            }
            other => panic!("cut at {n}: unexpected {other:?}"),
        }
    }
}

#[test]
fn truncation_names_the_key_or_tensor() {
    let mut r = Raw::header(3, 0, 1);
    r.key("some.key", ValueType::U64 as u32).bytes(&[1, 2, 3]);
    let e = parse_err(r.take());
    assert!(matches!(e, GgufError::Truncated { .. }), "{e:?}");
    says(&e, &["\"some.key\""]);

    let mut r = Raw::header(3, 1, 0);
    r.str("blk.0.w").u32(2).u64(4).u32(0);
    r.zeros(20); // enough bytes for the count check, not for the second dim + type + offset
    let mut b = r.take();
    b.truncate(b.len() - 14);
    let e = parse_err(b);
    says(&e, &["tensor #0 \"blk.0.w\""]);
}

#[test]
fn absurd_counts() {
    for (n_tensors, n_kv, what) in [
        (u64::MAX, 0, "tensor count"),
        (1 << 40, 0, "tensor count"),
        (0, u64::MAX, "metadata count"),
        (0, 1 << 27, "metadata count"),
    ] {
        let mut r = Raw::header(3, n_tensors, n_kv);
        r.zeros(64);
        let e = parse_err(r.take());
        let value = n_tensors.max(n_kv);
        assert!(
            matches!(&e, GgufError::AbsurdCount { what: w, value: v, .. } if w == what && *v == value),
            "{e:?}"
        );
        says(&e, &[&format!("{what} = {value} is impossible")]);
    }
}

#[test]
fn absurd_string_lengths() {
    let mut r = Raw::header(3, 0, 1);
    r.u64(1 << 63).bytes(b"key").zeros(16);
    let e = parse_err(r.take());
    assert!(
        matches!(&e, GgufError::AbsurdCount { value, .. } if *value == 1 << 63),
        "{e:?}"
    );
    says(&e, &["metadata key length = 9223372036854775808"]);

    let mut r = Raw::header(3, 0, 1);
    r.key("k", ValueType::String as u32)
        .u64(u64::MAX)
        .bytes(b"abc")
        .zeros(16);
    let e = parse_err(r.take());
    assert!(matches!(e, GgufError::AbsurdCount { .. }), "{e:?}");
    says(&e, &["metadata value length = 18446744073709551615"]);

    let mut r = Raw::header(3, 1, 0);
    r.u64(1 << 62).zeros(40);
    let e = parse_err(r.take());
    says(&e, &["tensor name length = 4611686018427387904"]);
}

#[test]
fn absurd_array_lengths() {
    let cases = [
        (ValueType::U8, 1u64 << 63),
        (ValueType::String, 1 << 61), // 2^61 * 8 bytes overflows u64
        (ValueType::Array, u64::MAX),
        (ValueType::U32, 100), // small, but more than the file holds
    ];
    for (elem, n) in cases {
        let mut r = Raw::header(3, 0, 1);
        r.key("arr", ValueType::Array as u32)
            .u32(elem as u32)
            .u64(n)
            .zeros(16);
        let e = parse_err(r.take());
        assert!(
            matches!(&e, GgufError::AbsurdCount { value, .. } if *value == n),
            "{e:?}"
        );
        says(
            &e,
            &[&format!("array length of \"arr\" = {n} is impossible")],
        );
    }
}

#[test]
fn array_of_huge_strings() {
    // The array count is plausible; each element's string length is not.
    let mut r = Raw::header(3, 0, 1);
    r.key("toks", ValueType::Array as u32)
        .u32(ValueType::String as u32)
        .u64(2);
    r.u64(1 << 40).zeros(16);
    let e = parse_err(r.take());
    assert!(matches!(e, GgufError::AbsurdCount { .. }), "{e:?}");
}

#[test]
fn unknown_value_types() {
    for id in [13, 0x100, u32::MAX] {
        let mut r = Raw::header(3, 0, 1);
        r.key("odd", id).zeros(8);
        let e = parse_err(r.take());
        assert!(
            matches!(&e, GgufError::BadValueType { key, id: i } if key == "odd" && *i == id),
            "{e:?}"
        );
        says(&e, &["\"odd\"", &format!("unknown value type {id}")]);

        let mut r = Raw::header(3, 0, 1);
        r.key("odd_arr", ValueType::Array as u32)
            .u32(id)
            .u64(1)
            .zeros(8);
        let e = parse_err(r.take());
        assert!(
            matches!(&e, GgufError::BadValueType { key, .. } if key == "odd_arr"),
            "{e:?}"
        );
    }
}

/// `levels` arrays nested inside each other around one u8.
fn nested(levels: u32) -> Vec<u8> {
    let mut r = Raw::header(3, 0, 1);
    r.key("deep", ValueType::Array as u32);
    for _ in 1..levels {
        r.u32(ValueType::Array as u32).u64(1);
    }
    r.u32(ValueType::U8 as u32).u64(1).u8(7);
    r.take()
}

#[test]
fn nesting_too_deep() {
    GgufFile::from_bytes(nested(4)).unwrap();
    for levels in [5, 6, 1000] {
        let e = parse_err(nested(levels));
        assert!(
            matches!(&e, GgufError::NestingTooDeep(k) if k == "deep"),
            "{e:?}"
        );
        says(&e, &["\"deep\"", "nested too deeply"]);
    }
}

#[test]
fn duplicate_and_empty_keys() {
    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("general.x", 1).kv_u32("general.x", 2);
    let e = parse_err(r.take());
    assert!(
        matches!(&e, GgufError::DuplicateKey(k) if k == "general.x"),
        "{e:?}"
    );
    says(&e, &["\"general.x\" appears twice"]);

    let mut r = Raw::header(3, 0, 2);
    r.kv_u32("a", 1).kv_u32("", 2);
    let e = parse_err(r.take());
    assert!(matches!(e, GgufError::EmptyKey(1)), "{e:?}");
    says(&e, &["#1", "empty key"]);
}

#[test]
fn duplicate_tensor_names() {
    let mut r = Raw::header(3, 2, 0);
    r.tensor_info("w", &[4], 0, 0)
        .tensor_info("w", &[4], 0, 32)
        .pad(32)
        .zeros(64);
    let e = parse_err(r.take());
    assert!(
        matches!(&e, GgufError::DuplicateTensor(n) if n == "w"),
        "{e:?}"
    );
    says(&e, &["\"w\" appears twice"]);
}

#[test]
fn tensor_name_too_long() {
    let ok = "n".repeat(64);
    GgufFile::from_bytes(one_tensor(&ok, &[4], 0, 0, 16)).unwrap();
    let long = "n".repeat(65);
    let e = parse_err(one_tensor(&long, &[4], 0, 0, 16));
    assert!(
        matches!(&e, GgufError::TensorNameTooLong { len: 65, .. }),
        "{e:?}"
    );
    says(&e, &["65 bytes long", "at most 64"]);
}

#[test]
fn bad_alignment() {
    for a in [0u32, 3, 48, u32::MAX] {
        let mut r = Raw::header(3, 0, 1);
        r.kv_u32("general.alignment", a);
        let e = parse_err(r.take());
        assert!(
            matches!(e, GgufError::BadAlignment(x) if x == u64::from(a)),
            "{e:?}"
        );
        says(
            &e,
            &[&format!("general.alignment = {a} is not a power of two")],
        );
    }
    // The spec and llama.cpp require a u32.
    let mut r = Raw::header(3, 0, 1);
    r.key("general.alignment", ValueType::U64 as u32).u64(32);
    let e = parse_err(r.take());
    assert!(matches!(e, GgufError::WrongValueType { .. }), "{e:?}");
    says(&e, &["\"general.alignment\"", "expected a u32, found U64"]);
    let mut r = Raw::header(3, 0, 1);
    r.key("general.alignment", ValueType::String as u32)
        .str("32");
    let e = parse_err(r.take());
    says(&e, &["expected a u32, found String"]);
}

#[test]
fn bad_dimension_counts() {
    for n_dims in [0u32, 5, u32::MAX] {
        let mut r = Raw::header(3, 1, 0);
        r.str("w").u32(n_dims).zeros(64);
        let e = parse_err(r.take());
        assert!(
            matches!(&e, GgufError::BadShape { name, .. } if name == "w"),
            "{e:?}"
        );
        says(
            &e,
            &[
                "\"w\"",
                &format!("{n_dims} dimensions (ggml allows 1 to 4)"),
            ],
        );
    }
}

#[test]
fn zero_dimension() {
    let e = parse_err(one_tensor("w", &[4, 0], 0, 0, 16));
    assert!(
        matches!(&e, GgufError::BadShape { dims, .. } if dims == &[4, 0]),
        "{e:?}"
    );
    says(&e, &["\"w\"", "[4, 0]", "a dimension is zero"]);
}

#[test]
fn element_count_overflow() {
    for dims in [
        &[1u64 << 32, 1 << 32][..],
        &[1 << 62, 2],
        &[u64::MAX],
        &[1 << 16, 1 << 16, 1 << 16, 1 << 16],
    ] {
        let e = parse_err(one_tensor("w", dims, 0, 0, 16));
        assert!(matches!(e, GgufError::BadShape { .. }), "{dims:?}: {e:?}");
        says(&e, &["element count does not fit in an i64"]);
    }
    // Fits an i64 as elements, but not as bytes.
    let e = parse_err(one_tensor("w", &[1 << 62], GgmlType::F32.id(), 0, 16));
    says(&e, &["byte size overflows"]);
}

#[test]
fn row_length_not_a_multiple_of_the_block() {
    let e = parse_err(one_tensor("q", &[33], GgmlType::Q4_0.id(), 0, 18));
    assert!(matches!(e, GgufError::BadShape { .. }), "{e:?}");
    says(
        &e,
        &["row length 33 is not a multiple of the Q4_0 block size 32"],
    );
    // 256 elements in total is a whole Q4_K block, but rows of 32 are not.
    let e = parse_err(one_tensor("q", &[32, 8], GgmlType::Q4_K.id(), 0, 144));
    says(
        &e,
        &["row length 32 is not a multiple of the Q4_K block size 256"],
    );
}

#[test]
fn unknown_tensor_types() {
    for id in [4u32, 5, 31, 36, 42, u32::MAX] {
        let e = parse_err(one_tensor("w", &[32], id, 0, 256));
        assert!(
            matches!(&e, GgufError::BadTensorType { name, id: i } if name == "w" && *i == id),
            "{e:?}"
        );
        says(&e, &["\"w\"", &format!("unknown type id {id}")]);
    }
}

#[test]
fn misaligned_offsets() {
    let e = parse_err(one_tensor("w", &[4], 0, 4, 64));
    assert!(
        matches!(&e, GgufError::MisalignedTensor { name, offset: 4, alignment: 32 } if name == "w"),
        "{e:?}"
    );
    says(
        &e,
        &["\"w\"", "offset 4 is not a multiple of the alignment 32"],
    );

    // The same offset is fine under alignment 4.
    let mut r = Raw::header(3, 1, 1);
    r.kv_u32("general.alignment", 4)
        .tensor_info("w", &[4], 0, 4)
        .pad(4)
        .zeros(20);
    GgufFile::from_bytes(r.take()).unwrap();
}

#[test]
fn tensor_data_past_eof() {
    let e = parse_err(one_tensor("w", &[4], 0, 0, 15));
    assert!(
        matches!(&e, GgufError::TensorOutOfBounds { name, .. } if name == "w"),
        "{e:?}"
    );
    says(&e, &["\"w\"", "past the end of the file"]);

    let e = parse_err(one_tensor("w", &[4], 0, 32, 16));
    assert!(matches!(e, GgufError::TensorOutOfBounds { .. }), "{e:?}");

    // start + size overflows u64.
    let e = parse_err(one_tensor("w", &[4], 0, !31, 16));
    assert!(
        matches!(e, GgufError::TensorOutOfBounds { end: u64::MAX, .. }),
        "{e:?}"
    );
}

#[test]
fn overlapping_tensors() {
    // b starts inside a; listed out of order so sorting by start is exercised.
    let mut r = Raw::header(3, 3, 0);
    r.tensor_info("c", &[8], 0, 96)
        .tensor_info("b", &[8], 0, 32)
        .tensor_info("a", &[16], 0, 0);
    r.pad(32).zeros(128);
    let e = parse_err(r.take());
    assert!(
        matches!(&e, GgufError::OverlappingTensors { a, b } if a == "a" && b == "b"),
        "{e:?}"
    );
    says(&e, &["tensors \"a\" and \"b\" overlap"]);

    let mut r = Raw::header(3, 2, 0);
    r.tensor_info("x", &[4], 0, 0)
        .tensor_info("y", &[4], 0, 0)
        .pad(32)
        .zeros(16);
    let e = parse_err(r.take());
    assert!(matches!(e, GgufError::OverlappingTensors { .. }), "{e:?}");

    // Adjacent is fine.
    let mut r = Raw::header(3, 2, 0);
    r.tensor_info("x", &[8], 0, 0)
        .tensor_info("y", &[8], 0, 32)
        .pad(32)
        .zeros(64);
    GgufFile::from_bytes(r.take()).unwrap();
}

#[test]
fn invalid_utf8_is_replaced_not_fatal() {
    let mut r = Raw::header(3, 0, 1);
    r.key("tok", ValueType::String as u32)
        .u64(2)
        .bytes(&[0xff, b'a']);
    let f = GgufFile::from_bytes(r.take()).unwrap();
    assert_eq!(f.get_str("tok").unwrap(), Some("\u{fffd}a"));
}
