//! The pose-corrective matrix, held at half precision.
//!
//! It is SMPL-X's largest array (10,475 × 3 rows of 486 values: 61 MB as float32), and a lone body's forward pass
//! is bound by the time it takes to stream it from memory. Held as 16-bit floats it is half the bytes to stream
//! (one body with the matrix warm in cache: 2.3–2.75 → 2.0–2.2 ms for the whole pass). The rounding moves each
//! value by at most 2⁻¹¹ of itself, so a vertex's corrective offset moves by at most 2⁻¹¹ of
//! `Σ |posedir · feature|` — hundredths of a millimetre on a body, against millimetres per pixel.

use half::f16;
use half::slice::HalfFloatSliceExt;

use super::NUM_POSE_FEATURES;

/// Pose-corrective blend shapes, vertex-major: row `3 * v + axis` holds [`NUM_POSE_FEATURES`] values. Each value is
/// held times a power of two, [`PoseDirs::scale`], rounded to the nearest 16-bit float: the scale brings the
/// largest value just under 2¹⁵, so the matrix uses f16's full normal range (29 binades under its largest value)
/// whatever the model's units.
#[derive(Clone, Debug)]
pub struct PoseDirs {
    scaled: Vec<f16>,
    scale: f32,
}

/// The scale's exponent is kept within ±this, so that features divided by it stay normal f32s (no matrix in
/// metres comes near it).
const MAX_SCALE_EXPONENT: i32 = 60;

impl PoseDirs {
    /// Rounds `values` (the matrix as the file gives it) to half precision.
    pub fn from_f32(values: &[f32]) -> PoseDirs {
        // The largest finite magnitude, compared as bits (the same order for non-negative floats), which the
        // compiler vectorises.
        const INFINITY_BITS: u32 = 0x7f80_0000;
        let largest = f32::from_bits(
            values
                .iter()
                .map(|v| v.to_bits() & 0x7fff_ffff)
                .map(|bits| if bits < INFINITY_BITS { bits } else { 0 })
                .max()
                .unwrap_or(0),
        );
        let exponent = if largest > 0.0 {
            // largest ≤ 2^ceil(log2 largest), so largest · 2^(15 − that) ≤ 2^15 < f16::MAX.
            15 - f64::from(largest).log2().ceil() as i32
        } else {
            0
        };
        let scale = 2f32.powi(exponent.clamp(-MAX_SCALE_EXPONENT, MAX_SCALE_EXPONENT));
        let mut scaled = Vec::with_capacity(values.len());
        let mut floats = [0.0f32; 4096];
        let mut halves = [f16::ZERO; 4096];
        for values in values.chunks(floats.len()) {
            let floats = &mut floats[..values.len()];
            for (f, v) in floats.iter_mut().zip(values) {
                // Exact: a power of two only shifts the exponent.
                *f = v * scale;
            }
            let halves = &mut halves[..values.len()];
            halves.convert_from_f32_slice(floats);
            scaled.extend_from_slice(halves);
        }
        PoseDirs { scaled, scale }
    }

    /// Number of values (rows × NUM_POSE_FEATURES).
    pub fn len(&self) -> usize {
        self.scaled.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scaled.is_empty()
    }

    /// Number of rows (vertex coordinates).
    pub fn rows(&self) -> usize {
        self.scaled.len() / NUM_POSE_FEATURES
    }

    /// The power of two every value is held multiplied by.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// The values times [`PoseDirs::scale`], as held.
    pub fn scaled(&self) -> &[f16] {
        &self.scaled
    }

    /// The matrix as held, back in the file's units (each value within rounding of the file's).
    pub fn to_f32(&self) -> Vec<f32> {
        self.scaled
            .iter()
            .map(|h| h.to_f32() / self.scale)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values spread over many binades, both signs, with zeros, and the largest last.
    fn spread(largest: f32) -> Vec<f32> {
        let mut rng = fastrand::Rng::with_seed(3);
        let mut values: Vec<f32> = (0..NUM_POSE_FEATURES * 40)
            .map(|i| {
                if i % 97 == 0 {
                    return 0.0;
                }
                let magnitude = largest * 2f32.powi(-(rng.i32(0..36)));
                let value = magnitude * (0.5 + rng.f32() * 0.5);
                if rng.bool() { value } else { -value }
            })
            .collect();
        values.push(largest);
        values
    }

    #[test]
    fn each_value_is_within_half_precision_of_the_file() {
        for largest in [0.3f32, 0.005, 2e-4, 7.5, 1e-12, 3e9] {
            let values = spread(largest);
            let dirs = PoseDirs::from_f32(&values);
            assert_eq!(dirs.len(), values.len());
            // f16 normal numbers round to within 2^-11 of themselves; below 2^-14 (scaled) the step is 2^-24.
            let subnormal_step = 2f32.powi(-24) / dirs.scale();
            for (held, &file) in dirs.to_f32().iter().zip(&values) {
                let error = (held - file).abs();
                assert!(
                    error <= (file.abs() * 2f32.powi(-11)).max(subnormal_step / 2.0),
                    "largest {largest}: {file} held as {held}"
                );
                assert_eq!(file == 0.0, *held == 0.0, "zeros stay zeros");
            }
            let top = dirs
                .scaled()
                .iter()
                .map(|h| h.to_f32().abs())
                .fold(0.0, f32::max);
            assert!(
                (16384.0..=32768.0).contains(&top),
                "largest {largest}: the largest value is held at {top}, at the top of f16's range"
            );
        }
    }

    #[test]
    fn the_scale_is_a_power_of_two_so_scaling_is_exact() {
        for largest in [0.3f32, 0.005, 1e-30, 0.0] {
            let dirs = PoseDirs::from_f32(&spread(largest));
            let scale = dirs.scale();
            assert!(scale > 0.0 && scale.to_bits() & 0x007f_ffff == 0, "{scale}");
        }
        assert_eq!(PoseDirs::from_f32(&[0.0; 10]).scale(), 1.0);
        assert_eq!(PoseDirs::from_f32(&[]).rows(), 0);
    }

    #[test]
    fn non_finite_values_stay_non_finite_and_do_not_set_the_scale() {
        let dirs = PoseDirs::from_f32(&[0.25, f32::INFINITY, -0.5, f32::NAN, f32::NEG_INFINITY]);
        assert_eq!(
            dirs.scale(),
            2f32.powi(16),
            "from the largest finite value, 0.5"
        );
        let held = dirs.to_f32();
        assert_eq!(held[..3], [0.25, f32::INFINITY, -0.5]);
        assert!(held[3].is_nan());
        assert_eq!(held[4], f32::NEG_INFINITY);
    }

    #[test]
    fn half_the_bytes_of_float32() {
        let values = spread(0.01);
        let dirs = PoseDirs::from_f32(&values);
        assert_eq!(std::mem::size_of_val(dirs.scaled()), values.len() * 2);
    }
}
