//! TensorBoard's event files: the `Event` protobuf (the few messages a run
//! writes, declared with `prost`'s derive from TensorFlow's
//! `event.proto`, `summary.proto` and `tensor.proto`) and the record
//! framing around each event.
//!
//! A record is: the event's length (u64, little-endian), the length's
//! masked CRC32C (u32), the event's bytes, their masked CRC32C (u32). The
//! mask is `((crc >> 15) | (crc << 17)) + 0xa282ead8`, as TensorFlow's
//! `crc32c::Mask`. The CRC itself comes from the `crc32c` crate.
//!
//! A file opens with an event whose `file_version` is "brain.Event:2";
//! every other event here carries a summary: scalars (`simple_value`),
//! PNG images, and text (a string tensor tagged for the text plugin).
//!
//! May import: `error` only.

use crate::error::{GanError, Result};
use std::path::Path;

/// tensorflow.Event (event.proto); only the fields a run writes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// tensorflow.Summary (summary.proto).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// tensorflow.Summary.Value: a tag and one of a scalar, an image, a tensor.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    #[prost(message, optional, tag = "4")]
    pub image: Option<Image>,
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
}

/// tensorflow.Summary.Image: an encoded PNG with its size.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    #[prost(int32, tag = "1")]
    pub height: i32,
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// tensorflow.TensorProto, as a string tensor (the text plugin's).
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// tensorflow.DataType; 7 is DT_STRING.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShapeProto>,
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeProto {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<TensorShapeDim>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShapeDim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// tensorflow.SummaryMetadata: which plugin reads the value.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
}

const DT_STRING: i32 = 7;
/// The version string every event file opens with.
pub const FILE_VERSION: &str = "brain.Event:2";

fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One event as a record: length, its masked CRC, the bytes, their masked CRC.
pub fn record(event: &Event) -> Vec<u8> {
    use prost::Message;
    let data = event.encode_to_vec();
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(&masked_crc(&data).to_le_bytes());
    out
}

/// The events of a file's bytes, every CRC checked. A record cut short at
/// the end (a writer killed mid-record) ends the list without an error;
/// a wrong CRC is an error naming `path` and the record's offset.
pub fn read_records(path: &Path, bytes: &[u8]) -> Result<Vec<Event>> {
    use prost::Message;
    let mut events = Vec::new();
    let mut at = 0usize;
    let bad = |at: usize, why: &str| GanError::data(path, format!("event record at byte {at}: {why}"));
    while at + 12 <= bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
        if masked_crc(len_bytes) != len_crc {
            return Err(bad(at, "the length's CRC does not match"));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let end = at.saturating_add(12).saturating_add(len).saturating_add(4);
        if end > bytes.len() {
            break;
        }
        let data = &bytes[at + 12..at + 12 + len];
        let crc = u32::from_le_bytes(bytes[end - 4..end].try_into().expect("4 bytes"));
        if masked_crc(data) != crc {
            return Err(bad(at, "the event's CRC does not match"));
        }
        events.push(Event::decode(data).map_err(|e| bad(at, &e.to_string()))?);
        at = end;
    }
    Ok(events)
}

/// The event a file opens with.
pub fn file_version_event(wall_time: f64) -> Event {
    Event { wall_time, step: 0, file_version: Some(FILE_VERSION.into()), summary: None }
}

fn summary_event(wall_time: f64, step: u64, value: Vec<Value>) -> Event {
    Event { wall_time, step: step as i64, file_version: None, summary: Some(Summary { value }) }
}

/// Scalars at one step: (tag, value) pairs.
pub fn scalars_event(wall_time: f64, step: u64, scalars: &[(&str, f32)]) -> Event {
    let value = scalars
        .iter()
        .map(|(tag, v)| Value { tag: (*tag).into(), simple_value: Some(*v), ..Default::default() })
        .collect();
    summary_event(wall_time, step, value)
}

/// A PNG image at one step (`png` is the file's bytes; its size and colour
/// type are read from its header).
pub fn image_event(wall_time: f64, step: u64, tag: &str, png: Vec<u8>) -> Result<Event> {
    // IHDR: 8-byte signature, 4 length, "IHDR", width, height (big-endian),
    // bit depth, colour type.
    if png.len() < 26 || &png[12..16] != b"IHDR" {
        return Err(GanError::data(tag, "not a PNG file"));
    }
    let be = |i: usize| i32::from_be_bytes(png[i..i + 4].try_into().expect("4 bytes"));
    let colorspace = match png[25] {
        0 => 1,
        4 => 2,
        2 | 3 => 3,
        _ => 4,
    };
    let image = Image { width: be(16), height: be(20), colorspace, encoded_image_string: png };
    Ok(summary_event(wall_time, step, vec![Value { tag: tag.into(), image: Some(image), ..Default::default() }]))
}

/// Text (Markdown) at one step, for TensorBoard's text plugin.
pub fn text_event(wall_time: f64, step: u64, tag: &str, text: &str) -> Event {
    let tensor = TensorProto {
        dtype: DT_STRING,
        tensor_shape: Some(TensorShapeProto { dim: Vec::new() }),
        string_val: vec![text.as_bytes().to_vec()],
    };
    let metadata = SummaryMetadata { plugin_data: Some(PluginData { plugin_name: "text".into() }) };
    let value = Value { tag: tag.into(), tensor: Some(tensor), metadata: Some(metadata), ..Default::default() };
    summary_event(wall_time, step, vec![value])
}
