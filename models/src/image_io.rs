//! Decoding untrusted image bytes: the format is guessed from the bytes (PNG or JPEG), the
//! dimensions are checked from the header before any pixel is decoded (a small file can claim
//! a huge image: a decompression bomb), and every colour type is converted to 8-bit RGB
//! (grayscale and alpha are converted, not rejected).
//!
//! [`read_rgb`] is what the image models' `prepare` does with an input path (EfficientNet,
//! MTCNN): read the file, decode it; an error names the file, so a dead letter says which image
//! was bad and why.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, Limits, RgbImage};

use crate::Error;

/// The largest width or height accepted.
pub const MAX_SIDE: u32 = 16_384;
/// The most pixels accepted (64 megapixels: larger than any camera photo a model resizes).
pub const MAX_PIXELS: u64 = 64 << 20;

/// Why bytes are not an image tandem decodes (one sentence, without the file's name).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    #[error("cannot read the image: {0}")]
    Read(std::io::Error),
    /// A format the `image` crate knows but tandem does not read (GIF, BMP, ...).
    #[error("a {format} image, a format tandem does not read: PNG or JPEG only ({bytes} bytes)")]
    Unsupported { format: String, bytes: usize },
    /// Bytes of no known image format; `head` is their first bytes in hex.
    #[error(
        "not an image in a format tandem reads (PNG or JPEG): {bytes} bytes starting {}",
        head_text(head)
    )]
    NotAnImage { bytes: usize, head: Vec<u8> },
    #[error("not a decodable image ({bytes} bytes): {source}")]
    Undecodable {
        bytes: usize,
        source: image::ImageError,
    },
    #[error("the image has no pixels ({width}x{height})")]
    NoPixels { width: u32, height: u32 },
    /// Dimensions over [`MAX_SIDE`] or [`MAX_PIXELS`]: not decoded.
    #[error("the image claims {width}x{height} pixels, over the limit of {MAX_SIDE} per side and {} megapixels (a decompression bomb?); it was not decoded", MAX_PIXELS >> 20)]
    TooLarge { width: u32, height: u32 },
}

fn head_text(head: &[u8]) -> String {
    if head.is_empty() {
        return "with nothing".to_owned();
    }
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(" ")
}

/// Reads and decodes an image file into RGB (see [`decode_rgb`]); an error names the file.
pub fn read_rgb(path: &Path) -> Result<RgbImage, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::ReadImage {
        path: path.to_owned(),
        source,
    })?;
    decode_rgb(&bytes).map_err(|source| Error::Image {
        path: path.to_owned(),
        source,
    })
}

/// Decodes `bytes` into RGB, or says in one sentence why not.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, ImageError> {
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(ImageError::Read)
    };
    let probe = reader()?;
    if let Some(format) = probe
        .format()
        .filter(|f| !matches!(f, ImageFormat::Png | ImageFormat::Jpeg))
    {
        return Err(ImageError::Unsupported {
            format: format
                .extensions_str()
                .first()
                .unwrap_or(&"?")
                .to_uppercase(),
            bytes: bytes.len(),
        });
    }
    if probe.format().is_none() {
        return Err(ImageError::NotAnImage {
            bytes: bytes.len(),
            head: bytes.iter().take(4).copied().collect(),
        });
    }
    let undecodable = |source| ImageError::Undecodable {
        bytes: bytes.len(),
        source,
    };
    let (width, height) = probe.into_dimensions().map_err(undecodable)?;
    if width == 0 || height == 0 {
        return Err(ImageError::NoPixels { width, height });
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooLarge { width, height });
    }
    let mut reader = reader()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 4 * 2);
    reader.limits(limits);
    let image = reader.decode().map_err(undecodable)?;
    Ok(image.to_rgb8())
}
