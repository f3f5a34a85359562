//! Reading NPZ archives (zip files of `.npy` arrays, stored or deflated) with hard limits.
//!
//! Hostile or broken files become typed errors, never panics or unbounded allocations: every entry is read
//! through a byte cap, the `.npy` preamble is checked before numpy's header text is parsed, and an array's
//! declared size is checked against the caps before any buffer is allocated. Object (pickled) arrays are never
//! unpickled.

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use npyz::{DType, NpyFile, Order, TypeChar, TypeStr};
use zip::ZipArchive;

/// Byte caps applied while reading one archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NpzLimits {
    /// Largest decompressed `.npy` entry (header and data) that is read.
    pub max_array_bytes: u64,
    /// Largest total of decompressed bytes read from one archive.
    pub max_total_bytes: u64,
    /// Largest archive file that is opened at all.
    pub max_file_bytes: u64,
    /// Most entries an archive may list.
    pub max_entries: usize,
}

const MIB: u64 = 1024 * 1024;

impl NpzLimits {
    /// Sized for the real SMPL-X model files: the largest array (posedirs, 10475×3×486) is 61 MB as float32 and
    /// 122 MB as float64, and a float64 file decompresses to about 250 MB.
    pub const MODEL: NpzLimits = NpzLimits {
        max_array_bytes: 256 * MIB,
        max_total_bytes: 512 * MIB,
        max_file_bytes: 1024 * MIB,
        max_entries: 4096,
    };

    /// Sized for per-frame parameter files: their largest array (saved vertices, 10475×3 float64) is 251 KB.
    pub const FRAME: NpzLimits = NpzLimits {
        max_array_bytes: 16 * MIB,
        max_total_bytes: 64 * MIB,
        max_file_bytes: 256 * MIB,
        max_entries: 4096,
    };
}

/// Why an archive or one of its arrays could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    #[error("cannot read the file: {0}")]
    Io(#[source] io::Error),
    #[error("the file is {bytes} bytes, over the limit of {limit} bytes")]
    FileTooLarge { bytes: u64, limit: u64 },
    #[error("not a readable NPZ (zip) archive: {0}")]
    NotZip(String),
    #[error("the archive lists {count} entries, over the limit of {limit}")]
    TooManyEntries { count: usize, limit: usize },
    #[error("array '{key}' is {bytes} bytes, over the limit of {limit} bytes")]
    ArrayTooLarge { key: String, bytes: u64, limit: u64 },
    #[error("the arrays read so far total {bytes} bytes, over the per-file limit of {limit} bytes")]
    TotalTooLarge { bytes: u64, limit: u64 },
    #[error("array '{key}' is damaged: {detail}")]
    BadEntry { key: String, detail: String },
    #[error("array '{key}' holds pickled Python objects, which are never unpickled")]
    Pickled { key: String },
    #[error("array '{key}' has dtype {dtype}, which cannot be read as {wanted}")]
    WrongDtype {
        key: String,
        dtype: String,
        wanted: &'static str,
    },
    #[error("no array '{key}' in the archive")]
    MissingKey { key: String },
}

impl NpzError {
    /// True when the archive as a whole is unusable (as opposed to one array being absent or of the wrong type).
    pub fn is_corrupt(&self) -> bool {
        !matches!(
            self,
            NpzError::Io(_)
                | NpzError::Pickled { .. }
                | NpzError::WrongDtype { .. }
                | NpzError::MissingKey { .. }
        )
    }
}

/// The element values of an array, widened or narrowed to one of three kinds.
#[derive(Clone, Debug, PartialEq)]
pub enum ArrayData {
    /// Floating-point values (float16/32/64 become f32).
    Float(Vec<f32>),
    /// Integer and boolean values.
    Int(Vec<i64>),
    /// Unicode or byte strings.
    Text(Vec<String>),
}

/// One array read from an archive: its shape (C order) and its values.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<u64>,
    pub data: ArrayData,
}

impl Array {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            ArrayData::Float(v) => v.len(),
            ArrayData::Int(v) => v.len(),
            ArrayData::Text(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32, if numeric.
    pub fn to_f32(&self) -> Option<Vec<f32>> {
        match &self.data {
            ArrayData::Float(v) => Some(v.clone()),
            ArrayData::Int(v) => Some(v.iter().map(|x| *x as f32).collect()),
            ArrayData::Text(_) => None,
        }
    }

    /// A short description such as `float32 (21, 3)` for error messages.
    pub fn describe(&self) -> String {
        let kind = match &self.data {
            ArrayData::Float(_) => "float",
            ArrayData::Int(_) => "integer",
            ArrayData::Text(_) => "string",
        };
        format!("{kind} array of shape {}", shape_string(&self.shape))
    }
}

/// Formats a shape the way numpy prints it: `(3,)`, `(21, 3)`, `()`.
pub fn shape_string(shape: &[u64]) -> String {
    match shape {
        [] => "()".to_string(),
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// An open NPZ archive. Arrays are decoded on request only, so unused keys cost nothing.
pub struct NpzArchive<R: Read + Seek> {
    zip: ZipArchive<R>,
    path: PathBuf,
    limits: NpzLimits,
    bytes_read: u64,
    /// Array names (entry names without `.npy`), in archive order, with their entry names.
    keys: Vec<(String, String)>,
}

impl NpzArchive<Cursor<Vec<u8>>> {
    /// Reads a whole (small) archive into memory and opens it: one read, then no more I/O. Frame files use this.
    pub fn read_file(path: &Path, limits: NpzLimits) -> Result<Self, NpzError> {
        let mut file = File::open(path).map_err(NpzError::Io)?;
        let len = file.metadata().map_err(NpzError::Io)?.len();
        if len > limits.max_file_bytes {
            return Err(NpzError::FileTooLarge {
                bytes: len,
                limit: limits.max_file_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.read_to_end(&mut bytes).map_err(NpzError::Io)?;
        Self::new(Cursor::new(bytes), path, limits)
    }
}

impl NpzArchive<BufReader<File>> {
    /// Opens an archive for streaming reads; large model files use this so no array is held twice.
    pub fn open(path: &Path, limits: NpzLimits) -> Result<Self, NpzError> {
        let file = File::open(path).map_err(NpzError::Io)?;
        let len = file.metadata().map_err(NpzError::Io)?.len();
        if len > limits.max_file_bytes {
            return Err(NpzError::FileTooLarge {
                bytes: len,
                limit: limits.max_file_bytes,
            });
        }
        Self::new(BufReader::with_capacity(256 * 1024, file), path, limits)
    }
}

impl<R: Read + Seek> NpzArchive<R> {
    /// Opens an archive from any seekable reader; `path` is used for messages only.
    pub fn new(reader: R, path: &Path, limits: NpzLimits) -> Result<Self, NpzError> {
        let zip = ZipArchive::new(reader).map_err(|e| match e {
            zip::result::ZipError::Io(io) if io.kind() != io::ErrorKind::UnexpectedEof => {
                NpzError::Io(io)
            }
            other => NpzError::NotZip(other.to_string()),
        })?;
        if zip.len() > limits.max_entries {
            return Err(NpzError::TooManyEntries {
                count: zip.len(),
                limit: limits.max_entries,
            });
        }
        let keys = zip
            .file_names()
            .map(|name| {
                let name = name.map_err(|e| NpzError::NotZip(e.to_string()))?;
                let key = name.strip_suffix(".npy").unwrap_or(&name);
                Ok((key.to_string(), name.to_string()))
            })
            .collect::<Result<_, NpzError>>()?;
        Ok(NpzArchive {
            zip,
            path: path.to_path_buf(),
            limits,
            bytes_read: 0,
            keys,
        })
    }

    /// The file this archive was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Array names, in archive order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(key, _)| key.as_str())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == key)
    }

    /// Reads one array, widening or narrowing its values to f32, i64 or String.
    pub fn read(&mut self, key: &str) -> Result<Array, NpzError> {
        self.with_npy(key, |key, header, data| {
            let values = match header.type_str.type_char() {
                TypeChar::Float => ArrayData::Float(decode_floats(key, header, data)?),
                TypeChar::Int | TypeChar::Uint | TypeChar::Bool => {
                    ArrayData::Int(decode_ints(key, header, data)?)
                }
                TypeChar::UnicodeStr | TypeChar::ByteStr => {
                    ArrayData::Text(decode_text(key, header, data)?)
                }
                _ => return Err(header.wrong_dtype(key, "numbers or text")),
            };
            Ok(Array {
                shape: header.shape.clone(),
                data: values,
            })
        })
    }

    /// Reads one numeric array as f32 (float64 is narrowed while streaming, so it is never held whole).
    pub fn read_f32(&mut self, key: &str) -> Result<(Vec<u64>, Vec<f32>), NpzError> {
        self.with_npy(key, |key, header, data| {
            let values = match header.type_str.type_char() {
                TypeChar::Float => decode_floats(key, header, data)?,
                TypeChar::Int | TypeChar::Uint | TypeChar::Bool => decode_ints(key, header, data)?
                    .into_iter()
                    .map(|v| v as f32)
                    .collect(),
                _ => return Err(header.wrong_dtype(key, "numbers")),
            };
            Ok((header.shape.clone(), values))
        })
    }

    /// Reads one integer array as i64.
    pub fn read_i64(&mut self, key: &str) -> Result<(Vec<u64>, Vec<i64>), NpzError> {
        self.with_npy(key, |key, header, data| match header.type_str.type_char() {
            TypeChar::Int | TypeChar::Uint | TypeChar::Bool => {
                Ok((header.shape.clone(), decode_ints(key, header, data)?))
            }
            _ => Err(header.wrong_dtype(key, "integers")),
        })
    }

    /// Opens entry `key`, checks its preamble and declared sizes against the limits, hands the parsed header
    /// and the data stream to `decode`, then drains the entry so the zip CRC is verified.
    fn with_npy<T>(
        &mut self,
        key: &str,
        decode: impl FnOnce(&str, &NpyHeader, &mut dyn Read) -> Result<T, NpzError>,
    ) -> Result<T, NpzError> {
        let entry_name = self
            .keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, name)| name.clone())
            .ok_or_else(|| NpzError::MissingKey {
                key: key.to_string(),
            })?;
        let limits = self.limits;
        let bad = |detail: String| NpzError::BadEntry {
            key: key.to_string(),
            detail,
        };
        let entry = self
            .zip
            .by_name(&entry_name)
            .map_err(|e| bad(e.to_string()))?;
        let declared = entry.size();
        if declared > limits.max_array_bytes {
            return Err(NpzError::ArrayTooLarge {
                key: key.to_string(),
                bytes: declared,
                limit: limits.max_array_bytes,
            });
        }
        if self.bytes_read + declared > limits.max_total_bytes {
            return Err(NpzError::TotalTooLarge {
                bytes: self.bytes_read + declared,
                limit: limits.max_total_bytes,
            });
        }
        // The declared size can lie (a zip bomb); the cap holds whatever the stream produces. One byte over the
        // declared size lets the zip reader see the end of the entry, which is where it checks the CRC-32.
        let mut capped = CountingReader {
            inner: entry.take(declared.saturating_add(1)),
            count: 0,
        };
        let preamble = read_preamble(&mut capped).map_err(|e| bad(e.to_string()))?;
        let header = NpyHeader::parse(key, &preamble)?;
        header.check_size(key, declared, limits)?;
        let result = decode(key, &header, &mut capped);
        // Reaching the end of the entry makes the zip reader verify the CRC-32.
        io::copy(&mut capped, &mut io::sink()).map_err(|e| bad(e.to_string()))?;
        self.bytes_read += capped.count;
        result
    }
}

/// Longest `.npy` header text accepted (numpy itself refuses more than 10,000 bytes by default).
const MAX_NPY_HEADER_BYTES: usize = 10_000;
/// Deepest bracket nesting accepted in the header text, so a hostile header cannot exhaust the parser's stack.
const MAX_NPY_HEADER_NESTING: usize = 16;
/// Elements decoded per read from the data stream.
const DECODE_CHUNK_ELEMENTS: usize = 8192;

/// Reads and checks the `.npy` magic, version, header length and header text; returns those bytes.
fn read_preamble(reader: &mut impl Read) -> io::Result<Vec<u8>> {
    let invalid = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let mut out = vec![0u8; 8];
    reader.read_exact(&mut out)?;
    if &out[..6] != b"\x93NUMPY" {
        return Err(invalid("not a .npy array (wrong magic bytes)".to_string()));
    }
    let len_bytes = match out[6] {
        1 => 2,
        2 | 3 => 4,
        v => return Err(invalid(format!("unsupported .npy format version {v}"))),
    };
    let mut len = [0u8; 4];
    reader.read_exact(&mut len[..len_bytes])?;
    out.extend_from_slice(&len[..len_bytes]);
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_NPY_HEADER_BYTES {
        return Err(invalid(format!(
            "header of {len} bytes, over the limit of {MAX_NPY_HEADER_BYTES}"
        )));
    }
    let start = out.len();
    out.resize(start + len, 0);
    reader.read_exact(&mut out[start..])?;
    let mut depth = 0usize;
    for byte in &out[start..] {
        match byte {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NPY_HEADER_NESTING {
                    return Err(invalid("header nests too deeply".to_string()));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(out)
}

/// What an `.npy` header says: a plain dtype, the shape, and the memory order.
struct NpyHeader {
    type_str: TypeStr,
    shape: Vec<u64>,
    fortran_order: bool,
}

impl NpyHeader {
    /// Parses the header. numpy always writes one fixed dict form (`{'descr': '<f4', 'fortran_order': False,
    /// 'shape': (3,), }`), read here directly; anything else goes through npyz's full Python-literal parser, which
    /// is exact but costs about 30 µs an array — most of a frame file's load time.
    fn parse(key: &str, preamble: &[u8]) -> Result<NpyHeader, NpzError> {
        let bad = |detail: String| NpzError::BadEntry {
            key: key.to_string(),
            detail,
        };
        let text_start = if preamble[6] == 1 { 10 } else { 12 };
        let fast = std::str::from_utf8(&preamble[text_start..])
            .ok()
            .and_then(parse_numpy_dict);
        let (descr, shape, fortran_order) = match fast {
            Some(parsed) => parsed,
            None => {
                let npy =
                    NpyFile::new(preamble).map_err(|e| bad(format!("bad .npy header: {e}")))?;
                let descr = match npy.dtype() {
                    DType::Plain(t) => t.to_string(),
                    other => {
                        return Err(NpzError::WrongDtype {
                            key: key.to_string(),
                            dtype: other.descr(),
                            wanted: "a plain array",
                        });
                    }
                };
                (descr, npy.shape().to_vec(), npy.order() == Order::Fortran)
            }
        };
        let type_str: TypeStr = descr
            .parse()
            .map_err(|e| bad(format!("bad dtype '{descr}': {e}")))?;
        if type_str.type_char() == TypeChar::Object {
            return Err(NpzError::Pickled {
                key: key.to_string(),
            });
        }
        Ok(NpyHeader {
            type_str,
            shape,
            fortran_order,
        })
    }

    fn len(&self) -> Option<u64> {
        self.shape
            .iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(*d))
    }

    fn item_size(&self) -> usize {
        let size = self.type_str.size_field() as usize;
        if self.type_str.type_char() == TypeChar::UnicodeStr {
            size.saturating_mul(4)
        } else {
            size
        }
    }

    /// Checks the data size the header announces against the entry's size and the limits.
    fn check_size(&self, key: &str, declared: u64, limits: NpzLimits) -> Result<(), NpzError> {
        // Items of zero bytes (`<U0`, `|S0`) would pass every byte limit at any element count.
        if self.item_size() == 0 {
            return Err(self.wrong_dtype(key, "a type of at least one byte"));
        }
        let bytes = self
            .len()
            .and_then(|len| len.checked_mul(self.item_size() as u64))
            .unwrap_or(u64::MAX);
        if bytes > limits.max_array_bytes {
            return Err(NpzError::ArrayTooLarge {
                key: key.to_string(),
                bytes,
                limit: limits.max_array_bytes,
            });
        }
        if bytes > declared {
            return Err(NpzError::BadEntry {
                key: key.to_string(),
                detail: format!(
                    "header announces {bytes} bytes of data but the entry holds only {declared} bytes"
                ),
            });
        }
        Ok(())
    }

    fn wrong_dtype(&self, key: &str, wanted: &'static str) -> NpzError {
        NpzError::WrongDtype {
            key: key.to_string(),
            dtype: self.type_str.to_string(),
            wanted,
        }
    }
}

/// Parses numpy's own header form; `None` for anything else (the caller then uses the full parser).
fn parse_numpy_dict(text: &str) -> Option<(String, Vec<u64>, bool)> {
    let mut rest = text.trim().strip_prefix('{')?.trim_start();
    let (mut descr, mut shape, mut fortran) = (None, None, None);
    while !rest.starts_with('}') {
        let quote = rest.chars().next()?;
        if quote != '\'' && quote != '"' {
            return None;
        }
        let (name, after) = rest[1..].split_once(quote)?;
        rest = after.trim_start().strip_prefix(':')?.trim_start();
        match name {
            "descr" => {
                let quote = rest.chars().next()?;
                if quote != '\'' && quote != '"' {
                    return None; // a record dtype (a list): the full parser handles it
                }
                let (value, after) = rest[1..].split_once(quote)?;
                descr = Some(value.to_string());
                rest = after;
            }
            "fortran_order" => {
                let (value, after) = if let Some(after) = rest.strip_prefix("False") {
                    (false, after)
                } else {
                    (true, rest.strip_prefix("True")?)
                };
                fortran = Some(value);
                rest = after;
            }
            "shape" => {
                let (inner, after) = rest.strip_prefix('(')?.split_once(')')?;
                let dims = inner
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(|d| d.parse::<u64>().ok())
                    .collect::<Option<Vec<u64>>>()?;
                shape = Some(dims);
                rest = after;
            }
            _ => return None,
        }
        rest = rest.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    if rest.trim() != "}" {
        return None;
    }
    Some((descr?, shape?, fortran?))
}

/// Decodes `count` elements of `item_size` bytes from the stream in chunks, so no raw copy of a large array is
/// ever held.
fn decode_elements<T: Clone>(
    key: &str,
    header: &NpyHeader,
    data: &mut dyn Read,
    convert: impl Fn(&[u8]) -> T,
) -> Result<Vec<T>, NpzError> {
    let count = header.len().unwrap_or(0) as usize;
    let item_size = header.item_size();
    if item_size == 0 {
        return Err(header.wrong_dtype(key, "a type of at least one byte"));
    }
    let mut out = Vec::with_capacity(count);
    let mut buffer = vec![0u8; item_size * DECODE_CHUNK_ELEMENTS.min(count.max(1))];
    let mut remaining = count;
    while remaining > 0 {
        let n = remaining.min(DECODE_CHUNK_ELEMENTS);
        let chunk = &mut buffer[..n * item_size];
        data.read_exact(chunk).map_err(|e| NpzError::BadEntry {
            key: key.to_string(),
            detail: if e.kind() == io::ErrorKind::UnexpectedEof {
                "the array's data ends early (truncated)".to_string()
            } else {
                e.to_string()
            },
        })?;
        out.extend(chunk.chunks_exact(item_size).map(&convert));
        remaining -= n;
    }
    Ok(into_c_order(out, &header.shape, header.fortran_order))
}

fn big_endian(header: &NpyHeader) -> bool {
    header.type_str.endianness() == npyz::Endianness::Big
}

/// Reads `N` bytes as a fixed array in the array's byte order, ready for `from_le_bytes`.
fn ordered<const N: usize>(bytes: &[u8], big_endian: bool) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[..N]);
    if big_endian {
        out.reverse();
    }
    out
}

fn decode_floats(key: &str, header: &NpyHeader, data: &mut dyn Read) -> Result<Vec<f32>, NpzError> {
    let be = big_endian(header);
    match header.type_str.size_field() {
        4 => decode_elements(key, header, data, |b| f32::from_le_bytes(ordered(b, be))),
        8 => decode_elements(key, header, data, |b| {
            f64::from_le_bytes(ordered(b, be)) as f32
        }),
        // float16 and float128 do not occur in model or frame files; say so rather than guess.
        _ => Err(header.wrong_dtype(key, "float32 or float64")),
    }
}

fn decode_ints(key: &str, header: &NpyHeader, data: &mut dyn Read) -> Result<Vec<i64>, NpzError> {
    let be = big_endian(header);
    let signed = header.type_str.type_char() == TypeChar::Int;
    match (signed, header.type_str.size_field()) {
        (_, 1) if header.type_str.type_char() == TypeChar::Bool => {
            decode_elements(key, header, data, |b| i64::from(b[0] != 0))
        }
        (true, 1) => decode_elements(key, header, data, |b| i64::from(b[0] as i8)),
        (true, 2) => decode_elements(key, header, data, |b| {
            i64::from(i16::from_le_bytes(ordered(b, be)))
        }),
        (true, 4) => decode_elements(key, header, data, |b| {
            i64::from(i32::from_le_bytes(ordered(b, be)))
        }),
        (true, 8) => decode_elements(key, header, data, |b| i64::from_le_bytes(ordered(b, be))),
        (false, 1) => decode_elements(key, header, data, |b| i64::from(b[0])),
        (false, 2) => decode_elements(key, header, data, |b| {
            i64::from(u16::from_le_bytes(ordered(b, be)))
        }),
        (false, 4) => decode_elements(key, header, data, |b| {
            i64::from(u32::from_le_bytes(ordered(b, be)))
        }),
        // uint64 wraps: the only value above i64::MAX seen in model files is u64::MAX, meaning -1.
        (false, 8) => decode_elements(key, header, data, |b| {
            u64::from_le_bytes(ordered(b, be)) as i64
        }),
        _ => Err(header.wrong_dtype(key, "integers")),
    }
}

fn decode_text(
    key: &str,
    header: &NpyHeader,
    data: &mut dyn Read,
) -> Result<Vec<String>, NpzError> {
    let be = big_endian(header);
    if header.type_str.type_char() == TypeChar::UnicodeStr {
        // UTF-32 code points, zero-padded on the right.
        decode_elements(key, header, data, |b| {
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes(ordered(c, be)))
                .take_while(|c| *c != 0)
                .map(|c| char::from_u32(c).unwrap_or(char::REPLACEMENT_CHARACTER))
                .collect()
        })
    } else {
        decode_elements(key, header, data, |b| {
            let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        })
    }
}

/// Reorders a Fortran-order array into C order (a no-op for C order and for 0-d/1-d arrays).
fn into_c_order<T: Clone>(values: Vec<T>, shape: &[u64], fortran_order: bool) -> Vec<T> {
    if !fortran_order || shape.len() < 2 || values.is_empty() {
        return values;
    }
    let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
    let mut out = Vec::with_capacity(values.len());
    let mut index = vec![0usize; dims.len()];
    for _ in 0..values.len() {
        // Fortran offset of the current C-order multi-index.
        let mut offset = 0usize;
        let mut stride = 1usize;
        for (i, d) in index.iter().zip(&dims) {
            offset += i * stride;
            stride *= d;
        }
        out.push(values[offset].clone());
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_order_is_reordered_to_c_order() {
        // 2×3 array [[1,2,3],[4,5,6]] stored column-major.
        let fortran = vec![1, 4, 2, 5, 3, 6];
        assert_eq!(into_c_order(fortran, &[2, 3], true), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn numpy_headers_parse_without_the_full_parser() {
        let parsed = parse_numpy_dict(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (10475, 3), }      ",
        );
        assert_eq!(parsed, Some(("<f4".to_string(), vec![10475, 3], false)));
        assert_eq!(
            parse_numpy_dict("{'descr': '|b1', 'fortran_order': True, 'shape': (), }"),
            Some(("|b1".to_string(), vec![], true))
        );
        assert_eq!(
            parse_numpy_dict("{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,), }"),
            None,
            "record dtypes go to the full parser"
        );
        assert_eq!(
            parse_numpy_dict("{'descr': '<f4', 'shape': (3,), }"),
            None,
            "missing key"
        );
    }

    #[test]
    fn shapes_print_like_numpy() {
        assert_eq!(shape_string(&[]), "()");
        assert_eq!(shape_string(&[3]), "(3,)");
        assert_eq!(shape_string(&[21, 3]), "(21, 3)");
    }

    #[test]
    fn preamble_rejects_huge_and_deeply_nested_headers() {
        let mut huge = b"\x93NUMPY\x02\x00".to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_preamble(&mut huge.as_slice()).is_err());

        let text = "(".repeat(100);
        let mut nested = b"\x93NUMPY\x01\x00".to_vec();
        nested.extend_from_slice(&(text.len() as u16).to_le_bytes());
        nested.extend_from_slice(text.as_bytes());
        let err = read_preamble(&mut nested.as_slice()).unwrap_err();
        assert!(err.to_string().contains("nests"), "{err}");
    }
}
