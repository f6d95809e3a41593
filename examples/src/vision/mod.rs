//! Helpers shared by the vision examples (`cascade`, `image_search`, `shadow`): a source of
//! image files (the sample photos by default), drawing faces, a model handler that carries a
//! tag along with its input, a sink that reports once the run ended well, and percentiles.

pub mod carry;
pub mod draw;
pub mod images;
pub mod report;

pub use carry::Carry;
pub use images::{sample_photos, ImageFiles};
pub use report::{percentile, AtEnd};
