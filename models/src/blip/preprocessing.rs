//! BLIP's preprocessing, as transformers' `BlipImageProcessorPil` does it (pixel for pixel):
//! resized to `size x size` with Pillow's bicubic (no crop, the aspect ratio not kept), `/255`,
//! normalised with CLIP's mean and std, channels first. See [`crate::resize`].

use image::RgbImage;

use crate::clip::{MEAN, STD};
use crate::image_io::{decode_rgb, ImageError};
use crate::resize::{rescale_normalize_chw, resize_rgb, Filter};

/// Decodes an image and prepares it: `3 * size * size` floats, channels first.
pub fn prepare_image(bytes: &[u8], size: usize) -> Result<Vec<f32>, ImageError> {
    Ok(prepare_rgb(&decode_rgb(bytes)?, size))
}

/// [`prepare_image`] for an image already decoded.
pub fn prepare_rgb(rgb: &RgbImage, size: usize) -> Vec<f32> {
    let target = u32::try_from(size).expect("an image size fits in u32");
    let resized = resize_rgb(rgb, target, target, Filter::Bicubic);
    rescale_normalize_chw(&resized, &MEAN, &STD)
}
