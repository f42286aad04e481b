//! Block layouts and scalar quantize/dequantize/dot reference code.
