//! Pixels: the only code that touches GL, plus the images every backend shares.

mod image;

pub use image::RgbaImage;
