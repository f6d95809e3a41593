//! Decoding untrusted image bytes: the format is guessed from the bytes (PNG or JPEG), the
//! dimensions are checked from the header before any pixel is decoded (a small file can claim
//! a huge image: a decompression bomb), and every colour type is converted to 8-bit RGB
//! (grayscale and alpha are converted, not rejected).

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits, RgbImage};

/// The largest width or height accepted.
pub const MAX_SIDE: u32 = 16_384;
/// The most pixels accepted (64 megapixels: larger than any camera photo a model resizes).
pub const MAX_PIXELS: u64 = 64 << 20;

/// Decodes `bytes` into RGB, or says in one sentence why not.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    let reader = || {
        ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| format!("cannot read the image: {e}"))
    };
    let probe = reader()?;
    if let Some(format) = probe
        .format()
        .filter(|f| !matches!(f, ImageFormat::Png | ImageFormat::Jpeg))
    {
        return Err(format!(
            "a {} image, a format tandem does not read: PNG or JPEG only ({} bytes)",
            format
                .extensions_str()
                .first()
                .unwrap_or(&"?")
                .to_uppercase(),
            bytes.len()
        ));
    }
    if probe.format().is_none() {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(format!(
            "not an image in a format tandem reads (PNG or JPEG): {} bytes starting {}",
            bytes.len(),
            if head.is_empty() {
                "with nothing".to_owned()
            } else {
                head.join(" ")
            }
        ));
    }
    let (w, h) = probe
        .into_dimensions()
        .map_err(|e| format!("not a decodable image ({} bytes): {e}", bytes.len()))?;
    if w == 0 || h == 0 {
        return Err(format!("the image has no pixels ({w}x{h})"));
    }
    if w > MAX_SIDE || h > MAX_SIDE || u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(format!(
            "the image claims {w}x{h} pixels, over the limit of {MAX_SIDE} per side and {} megapixels (a decompression bomb?); it was not decoded",
            MAX_PIXELS >> 20
        ));
    }
    let mut reader = reader()?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 4 * 2);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| format!("not a decodable image ({} bytes): {e}", bytes.len()))?;
    Ok(image.to_rgb8())
}
