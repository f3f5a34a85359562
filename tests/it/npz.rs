//! NPZ reading: every dtype the users' files hold, and hostile or broken archives as typed errors.

use std::io::Cursor;
use std::path::Path;

use meshreel::frames::npz::{ArrayData, NpzArchive, NpzError, NpzLimits};
use meshreel::synth::{NpzContents, Rng, Values, npy_with_header, pickled_object_npy};

fn archive(bytes: Vec<u8>, limits: NpzLimits) -> Result<NpzArchive<Cursor<Vec<u8>>>, NpzError> {
    NpzArchive::new(Cursor::new(bytes), Path::new("test.npz"), limits)
}

/// Opens the bytes and reads every array; returns the first error.
fn read_all(bytes: Vec<u8>, limits: NpzLimits) -> Result<usize, NpzError> {
    let mut archive = archive(bytes, limits)?;
    let keys: Vec<String> = archive.keys().map(str::to_string).collect();
    for key in &keys {
        archive.read(key)?;
    }
    Ok(keys.len())
}

fn sample() -> NpzContents {
    let mut c = NpzContents::default();
    c.push(
        "f32",
        &[2, 3],
        Values::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5]),
    );
    c.push("f64", &[1, 3], Values::F64(vec![0.25, -1.0, 1e-3]));
    c.push("i64", &[2], Values::I64(vec![-5, 4_294_967_295]));
    c.push("u32", &[3], Values::U32(vec![0, 7, u32::MAX]));
    c.push("bool", &[2], Values::Bool(vec![true, false]));
    c.push(
        "text",
        &[],
        Values::Text(vec!["frames/frame_0001.jpg".into()]),
    );
    c.push("big", &[2000], Values::F32(vec![0.5; 2000]));
    c
}

#[test]
fn every_supported_dtype_reads_back_from_stored_and_deflated_archives() {
    for compressed in [false, true] {
        let mut a = archive(sample().to_bytes(compressed).unwrap(), NpzLimits::FRAME).unwrap();
        let f32s = a.read("f32").unwrap();
        assert_eq!(f32s.shape, vec![2, 3]);
        assert_eq!(
            f32s.data,
            ArrayData::Float(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.5])
        );
        assert_eq!(
            a.read("f64").unwrap().data,
            ArrayData::Float(vec![0.25, -1.0, 1e-3])
        );
        assert_eq!(
            a.read("i64").unwrap().data,
            ArrayData::Int(vec![-5, 4_294_967_295])
        );
        assert_eq!(
            a.read("u32").unwrap().data,
            ArrayData::Int(vec![0, 7, i64::from(u32::MAX)])
        );
        assert_eq!(a.read("bool").unwrap().data, ArrayData::Int(vec![1, 0]));
        assert_eq!(
            a.read("text").unwrap().data,
            ArrayData::Text(vec!["frames/frame_0001.jpg".into()])
        );
        assert_eq!(
            a.read_f32("u32").unwrap().1,
            vec![0.0, 7.0, u32::MAX as f32]
        );
    }
}

#[test]
fn fortran_order_arrays_read_in_c_order() {
    let header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }";
    let data: Vec<u8> = [1.0f32, 4.0, 2.0, 5.0, 3.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut c = NpzContents::default();
    c.push("m", &[2, 3], Values::RawNpy(npy_with_header(header, &data)));
    let mut a = archive(c.to_bytes(false).unwrap(), NpzLimits::FRAME).unwrap();
    assert_eq!(
        a.read("m").unwrap().data,
        ArrayData::Float(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    );
}

#[test]
fn big_endian_arrays_read_correctly() {
    let header = "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }";
    let data: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let mut c = NpzContents::default();
    c.push("m", &[2], Values::RawNpy(npy_with_header(header, &data)));
    let mut a = archive(c.to_bytes(true).unwrap(), NpzLimits::FRAME).unwrap();
    assert_eq!(a.read("m").unwrap().data, ArrayData::Float(vec![1.5, -2.0]));
}

#[test]
fn pickled_arrays_are_reported_never_unpickled() {
    let mut c = sample();
    c.push("joint2num", &[], Values::RawNpy(pickled_object_npy()));
    let mut a = archive(c.to_bytes(false).unwrap(), NpzLimits::FRAME).unwrap();
    assert!(matches!(a.read("joint2num"), Err(NpzError::Pickled { .. })));
    // The archive stays usable after the refusal.
    assert!(a.read("f32").is_ok());
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(99);
    for round in 0..300 {
        let len = rng.index(600);
        let mut bytes: Vec<u8> = (0..len).map(|_| (rng.unit() * 256.0) as u8).collect();
        if round % 2 == 0 && len >= 4 {
            bytes[..4].copy_from_slice(b"PK\x03\x04");
        }
        assert!(read_all(bytes, NpzLimits::FRAME).is_err());
    }
}

#[test]
fn zero_byte_and_non_zip_files_are_not_zip() {
    for bytes in [
        Vec::new(),
        b"\x93NUMPY not a zip".to_vec(),
        b"hello".repeat(100),
    ] {
        let error = read_all(bytes, NpzLimits::FRAME).unwrap_err();
        assert!(matches!(error, NpzError::NotZip(_)), "{error}");
        assert!(error.is_corrupt());
    }
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    for compressed in [false, true] {
        let bytes = sample().to_bytes(compressed).unwrap();
        for cut in (0..bytes.len()).step_by(7) {
            let result = read_all(bytes[..cut].to_vec(), NpzLimits::FRAME);
            assert!(result.is_err(), "cut at {cut} of {} read fine", bytes.len());
        }
    }
}

#[test]
fn a_flipped_data_byte_fails_the_crc_check() {
    let bytes = sample().to_bytes(false).unwrap();
    // Flip a byte inside the 2000 × 0.5 run of the stored "big" entry.
    let run = [0u8, 0, 0, 0x3f].repeat(100);
    let at = bytes
        .windows(run.len())
        .position(|w| w == run.as_slice())
        .unwrap()
        + 50;
    let mut damaged = bytes.clone();
    damaged[at] ^= 0x55;
    let mut a = archive(damaged, NpzLimits::FRAME).unwrap();
    let error = a.read("big").unwrap_err();
    assert!(
        error.to_string().to_lowercase().contains("checksum"),
        "{error}"
    );
    assert!(error.is_corrupt());
}

#[test]
fn entries_that_are_not_npy_report_wrong_magic() {
    let mut c = NpzContents::default();
    c.push(
        "x",
        &[],
        Values::RawNpy(b"PK not an npy file at all".to_vec()),
    );
    let mut a = archive(c.to_bytes(false).unwrap(), NpzLimits::FRAME).unwrap();
    let error = a.read("x").unwrap_err().to_string();
    assert!(error.contains("wrong magic"), "{error}");
}

#[test]
fn a_zip_bomb_is_refused_before_it_is_inflated() {
    let mut c = NpzContents::default();
    c.push("zeros", &[20_000_000], Values::F32(vec![0.0; 20_000_000]));
    let bytes = c.to_bytes(true).unwrap();
    assert!(
        bytes.len() < 1_000_000,
        "80 MB of zeros deflate to {} bytes",
        bytes.len()
    );
    let mut a = archive(bytes, NpzLimits::FRAME).unwrap();
    let error = a.read("zeros").unwrap_err();
    assert!(
        matches!(
            error,
            NpzError::ArrayTooLarge {
                bytes: 80_000_128,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn a_header_announcing_more_data_than_the_entry_holds_is_refused_without_allocating() {
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }";
    let mut c = NpzContents::default();
    c.push(
        "liar",
        &[],
        Values::RawNpy(npy_with_header(header, &[0u8; 64])),
    );
    let mut a = archive(c.to_bytes(false).unwrap(), NpzLimits::MODEL).unwrap();
    let error = a.read("liar").unwrap_err();
    assert!(matches!(error, NpzError::ArrayTooLarge { .. }), "{error}");

    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000,), }";
    let mut c = NpzContents::default();
    c.push(
        "short",
        &[],
        Values::RawNpy(npy_with_header(header, &[0u8; 64])),
    );
    let mut a = archive(c.to_bytes(false).unwrap(), NpzLimits::MODEL).unwrap();
    let error = a.read("short").unwrap_err().to_string();
    assert!(error.contains("holds only"), "{error}");
}

#[test]
fn the_per_file_total_is_enforced_across_arrays() {
    let limits = NpzLimits {
        max_array_bytes: 10_000,
        max_total_bytes: 12_000,
        ..NpzLimits::FRAME
    };
    let mut c = NpzContents::default();
    c.push("a", &[2000], Values::F32(vec![1.0; 2000]));
    c.push("b", &[2000], Values::F32(vec![1.0; 2000]));
    let mut a = archive(c.to_bytes(false).unwrap(), limits).unwrap();
    assert!(a.read("a").is_ok());
    assert!(matches!(a.read("b"), Err(NpzError::TotalTooLarge { .. })));
}

#[test]
fn unsupported_dtypes_are_named() {
    let header = "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }";
    let mut c = NpzContents::default();
    c.push("z", &[], Values::RawNpy(npy_with_header(header, &[0u8; 8])));
    let mut a = archive(c.to_bytes(false).unwrap(), NpzLimits::FRAME).unwrap();
    let error = a.read("z").unwrap_err();
    assert!(matches!(error, NpzError::WrongDtype { .. }), "{error}");
}

#[test]
fn headers_numpy_did_not_write_itself_go_through_the_full_parser() {
    // A record dtype: valid .npy, parsed by npyz, refused as not a plain array.
    let header = "{'descr': [('a', '<i4'), ('b', '<f4')], 'fortran_order': False, 'shape': (1,), }";
    let mut c = NpzContents::default();
    c.push(
        "record",
        &[],
        Values::RawNpy(npy_with_header(header, &[0u8; 8])),
    );
    // Double quotes, other key order, no trailing comma: still the same array.
    let header = r#"{"shape": (2,), "fortran_order": False, "descr": "<i2"}"#;
    c.push(
        "reordered",
        &[],
        Values::RawNpy(npy_with_header(header, &[1, 0, 2, 0])),
    );
    let mut a = archive(c.to_bytes(false).unwrap(), NpzLimits::FRAME).unwrap();
    assert!(matches!(a.read("record"), Err(NpzError::WrongDtype { .. })));
    assert_eq!(
        a.read("reordered").unwrap().data,
        ArrayData::Int(vec![1, 2])
    );
}

#[test]
fn format_version_2_headers_read() {
    let text = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }          \n";
    let mut npy = b"\x93NUMPY\x02\x00".to_vec();
    npy.extend_from_slice(&(text.len() as u32).to_le_bytes());
    npy.extend_from_slice(text.as_bytes());
    npy.extend_from_slice(&2.5f32.to_le_bytes());
    let mut c = NpzContents::default();
    c.push("v2", &[], Values::RawNpy(npy));
    let mut a = archive(c.to_bytes(true).unwrap(), NpzLimits::FRAME).unwrap();
    assert_eq!(a.read("v2").unwrap().data, ArrayData::Float(vec![2.5]));
}

#[test]
fn zero_width_items_cannot_demand_a_huge_allocation() {
    // 0 bytes per item pass any byte limit, whatever the element count: refused before anything is allocated.
    for descr in ["<U0", "|S0"] {
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': False, 'shape': (1000000000000000,), }}"
        );
        let mut c = NpzContents::default();
        c.push(
            "empty_strings",
            &[],
            Values::RawNpy(npy_with_header(&header, &[])),
        );
        let mut a = archive(c.to_bytes(false).unwrap(), NpzLimits::FRAME).unwrap();
        assert!(a.read("empty_strings").is_err(), "{descr}");
    }
}
