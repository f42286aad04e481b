//! `hanlin inspect`: a GGUF file's header, metadata and tensor table, like llama.cpp's
//! gguf-dump, as text or JSON.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::Context;
use hanlin_gguf::{GgmlType, GgufFile, TensorInfo, Value, ValueType};
use serde_json::json;

/// Array items shown before the rest is summarised (without `--full`).
const SHOWN_ITEMS: usize = 8;
/// String characters shown before the rest is summarised (chat templates run to pages).
const SHOWN_CHARS: usize = 120;

/// Arguments of `hanlin inspect`.
#[derive(clap::Args, Debug, Default)]
pub struct Args {
    /// The GGUF file to read.
    pub file: PathBuf,
    /// Print every array item and whole strings instead of the first few.
    #[arg(long)]
    pub full: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> anyhow::Result<()> {
    let file = GgufFile::open(&args.file)
        .with_context(|| format!("cannot inspect {}", args.file.display()))?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = if args.json {
        let doc = to_json(&file, &args);
        serde_json::to_writer_pretty(&mut out, &doc)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write_text(&mut out, &file, &args)
    };
    match written.and_then(|()| out.flush()) {
        // `hanlin inspect big.gguf | head` is a normal way to use this.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// Per-type totals for the summary.
#[derive(Default)]
struct TypeTotal {
    tensors: u64,
    params: u64,
    bytes: u64,
}

fn totals(file: &GgufFile) -> (u64, u64, BTreeMap<u32, (GgmlType, TypeTotal)>) {
    let mut by_type: BTreeMap<u32, (GgmlType, TypeTotal)> = BTreeMap::new();
    let (mut params, mut bytes) = (0u64, 0u64);
    for t in file.tensors() {
        let e = &mut by_type
            .entry(t.ggml_type.id())
            .or_insert_with(|| (t.ggml_type, TypeTotal::default()))
            .1;
        e.tensors += 1;
        e.params += t.n_elements();
        e.bytes += t.n_bytes;
        params += t.n_elements();
        bytes += t.n_bytes;
    }
    (params, bytes, by_type)
}

fn write_text(out: &mut impl Write, file: &GgufFile, args: &Args) -> io::Result<()> {
    let n_kv = file.metadata().len();
    let n_t = file.tensors().len();
    writeln!(out, "{}", args.file.display())?;
    writeln!(out, "  GGUF version  {}", file.version())?;
    writeln!(out, "  alignment     {}", file.alignment())?;
    writeln!(
        out,
        "  data offset   {} (0x{:x})",
        group(file.data_offset()),
        file.data_offset()
    )?;
    writeln!(
        out,
        "  file size     {} bytes ({})",
        group(file.file_len()),
        human_bytes(file.file_len())
    )?;

    writeln!(out, "\nmetadata ({n_kv} keys)")?;
    let key_w = file
        .metadata()
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    for (i, (key, value)) in file.metadata().iter().enumerate() {
        let (ty, count) = match value {
            Value::Array(t, items) => (format!("[{}]", type_name(*t)), items.len()),
            v => (type_name(v.value_type()).to_string(), 1),
        };
        let shown = format_value(value, args.full);
        writeln!(
            out,
            "  {:>4}  {ty:<7} {count:>7}  {key:<key_w$} = {shown}",
            i + 1
        )?;
    }

    writeln!(out, "\ntensors ({n_t})")?;
    let rows: Vec<[String; 7]> = file
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            [
                (i + 1).to_string(),
                t.name.clone(),
                t.ggml_type.name().to_string(),
                shape(t),
                group(t.n_elements()),
                group(t.n_bytes),
                group(t.offset),
            ]
        })
        .collect();
    let header = [
        "#",
        "name",
        "type",
        "shape (ggml order)",
        "elements",
        "bytes",
        "offset",
    ];
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // Numbers right-aligned, text left-aligned.
    let right = [true, false, false, false, true, true, true];
    let mut line = |cells: &[String]| -> io::Result<()> {
        let mut s = String::from(" ");
        for ((cell, w), r) in cells.iter().zip(widths).zip(right) {
            let pad = " ".repeat(w - cell.chars().count());
            s.push_str("  ");
            if r {
                s.push_str(&pad);
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&pad);
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    if rows.is_empty() {
        writeln!(out, "  (none: a vocabulary-only or metadata-only file)")?;
    } else {
        line(&header.map(String::from))?;
        for row in &rows {
            line(row)?;
        }
    }

    let (params, bytes, by_type) = totals(file);
    writeln!(out, "\nsummary")?;
    writeln!(out, "  tensors       {n_t}")?;
    writeln!(
        out,
        "  parameters    {} ({})",
        group(params),
        human_count(params)
    )?;
    writeln!(
        out,
        "  tensor bytes  {} ({})",
        group(bytes),
        human_bytes(bytes)
    )?;
    for (ty, tot) in by_type.values() {
        let share = if bytes == 0 {
            0.0
        } else {
            tot.bytes as f64 * 100.0 / bytes as f64
        };
        writeln!(
            out,
            "  {:<8} {:>5} tensors  {:>15} params  {:>17} bytes  {share:5.1}%",
            ty.name(),
            tot.tensors,
            group(tot.params),
            group(tot.bytes),
        )?;
    }
    Ok(())
}

fn to_json(file: &GgufFile, args: &Args) -> serde_json::Value {
    let metadata: Vec<serde_json::Value> = file
        .metadata()
        .iter()
        .map(|(key, value)| {
            let mut entry = json!({
                "key": key,
                "type": type_name(value.value_type()),
                "value": value_json(value, args.full),
            });
            if let Value::Array(t, items) = value {
                entry["element_type"] = json!(type_name(*t));
                entry["count"] = json!(items.len());
                entry["truncated"] = json!(!args.full && items.len() > SHOWN_ITEMS);
            }
            entry
        })
        .collect();
    let tensors: Vec<serde_json::Value> = file
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| {
            json!({
                "index": i,
                "name": t.name,
                "type": t.ggml_type.name(),
                "shape": t.dims,
                "n_elements": t.n_elements(),
                "n_bytes": t.n_bytes,
                "offset": t.offset,
                "file_offset": t.start,
            })
        })
        .collect();
    let (params, bytes, by_type) = totals(file);
    let by_type: Vec<serde_json::Value> = by_type
        .values()
        .map(|(ty, t)| {
            json!({"type": ty.name(), "n_tensors": t.tensors, "n_params": t.params, "n_bytes": t.bytes})
        })
        .collect();
    json!({
        "file": args.file.display().to_string(),
        "version": file.version(),
        "alignment": file.alignment(),
        "data_offset": file.data_offset(),
        "file_size": file.file_len(),
        "metadata": metadata,
        "tensors": tensors,
        "summary": {
            "n_tensors": file.tensors().len(),
            "n_params": params,
            "n_bytes": bytes,
            "by_type": by_type,
        },
    })
}

/// A metadata value as JSON; arrays cut to [`SHOWN_ITEMS`] unless `full`. Non-finite floats,
/// which JSON lacks, become strings.
fn value_json(v: &Value, full: bool) -> serde_json::Value {
    let float = |x: f64| {
        if x.is_finite() {
            json!(x)
        } else {
            json!(x.to_string())
        }
    };
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => float(f64::from(*x)),
        Value::F64(x) => float(*x),
        Value::Bool(x) => json!(x),
        Value::String(s) => json!(s),
        Value::Array(_, items) => {
            let n = if full {
                items.len()
            } else {
                items.len().min(SHOWN_ITEMS)
            };
            serde_json::Value::Array(items[..n].iter().map(|x| value_json(x, full)).collect())
        }
    }
}

/// A metadata value as one line of text; long arrays and strings abbreviated unless `full`.
fn format_value(v: &Value, full: bool) -> String {
    match v {
        // Debug gives the shortest round-tripping form and switches to exponents (1e-5).
        Value::F32(x) => format!("{x:?}"),
        Value::F64(x) => format!("{x:?}"),
        Value::String(s) => {
            let n = s.chars().count();
            if full || n <= SHOWN_CHARS {
                format!("{s:?}")
            } else {
                let head: String = s.chars().take(SHOWN_CHARS).collect();
                format!("{head:?}… ({n} chars)")
            }
        }
        Value::Array(_, items) => {
            let n = if full {
                items.len()
            } else {
                items.len().min(SHOWN_ITEMS)
            };
            let mut parts: Vec<String> = items[..n].iter().map(|x| format_value(x, full)).collect();
            if n < items.len() {
                parts.push(format!("… ({} more)", items.len() - n));
            }
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}

/// gguf.cpp's short type names.
fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::U8 => "u8",
        ValueType::I8 => "i8",
        ValueType::U16 => "u16",
        ValueType::I16 => "i16",
        ValueType::U32 => "u32",
        ValueType::I32 => "i32",
        ValueType::F32 => "f32",
        ValueType::Bool => "bool",
        ValueType::String => "str",
        ValueType::Array => "arr",
        ValueType::U64 => "u64",
        ValueType::I64 => "i64",
        ValueType::F64 => "f64",
    }
}

fn shape(t: &TensorInfo) -> String {
    t.dims
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(" × ")
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_count(n: u64) -> String {
    scaled(n, 1000.0, &["", "K", "M", "B", "T"])
}

fn human_bytes(n: u64) -> String {
    scaled(n, 1024.0, &[" B", " KiB", " MiB", " GiB", " TiB"])
}

fn scaled(n: u64, base: f64, units: &[&str]) -> String {
    let mut x = n as f64;
    let mut unit = 0;
    while x >= base && unit + 1 < units.len() {
        x /= base;
        unit += 1;
    }
    if unit == 0 {
        format!("{n}{}", units[0])
    } else {
        format!("{x:.2}{}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouping_and_units() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(human_count(260_000), "260.00K");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.50 KiB");
    }

    #[test]
    fn long_values_are_abbreviated_unless_full() {
        let arr = Value::Array(ValueType::U32, (0..20).map(Value::U32).collect());
        assert_eq!(
            format_value(&arr, false),
            "[0, 1, 2, 3, 4, 5, 6, 7, … (12 more)]"
        );
        assert_eq!(format_value(&arr, true).matches(", ").count(), 19);
        let s = Value::String("x".repeat(500));
        assert!(format_value(&s, false).ends_with("… (500 chars)"));
        assert_eq!(format_value(&s, true).len(), 502);
        assert_eq!(format_value(&Value::F32(1e-5), false), "1e-5");
        assert_eq!(value_json(&Value::F64(f64::NAN), false), json!("NaN"));
        assert_eq!(
            value_json(&arr, false).as_array().map(Vec::len),
            Some(SHOWN_ITEMS)
        );
    }
}
