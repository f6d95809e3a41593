//! `--device auto|gpu|cpu` for Burn: a wgpu GPU adapter when there is one (auto), the flex CPU
//! backend otherwise; `gpu` without a usable adapter is an error that says so.

use std::sync::OnceLock;

use burn::tensor::{Device, DeviceKind, DeviceType};
use tandem_runtime::inference::{DeviceChoice, DeviceRequest};

/// Why a device cannot be used.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// `--device gpu` without a usable GPU (and no software adapter allowed).
    #[error("no GPU can be used: {0}. Run with `--device cpu` (or `--device auto`, which falls back to the CPU).")]
    NoGpu(NoGpu),
    /// The software adapter was allowed but the Vulkan driver panicked opening it.
    #[error("the Vulkan driver panicked while opening the software adapter")]
    SoftwarePanicked,
    /// The software adapter was allowed but could not be opened (wgpu's reason).
    #[error("wgpu could not open a software adapter (install Mesa's Vulkan driver, `mesa-vulkan-drivers`): {0}")]
    Software(String),
}

/// Why there is no GPU (found once per process).
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoGpu {
    #[error("the GPU driver panicked while being probed")]
    DriverPanicked,
    #[error("wgpu finds no GPU adapter (Vulkan, Metal, DX12 or GL)")]
    NoAdapter,
    /// wgpu found an adapter but could not open it (wgpu's reason).
    #[error("wgpu could not open the GPU: {0}")]
    Open(String),
}

/// The device for a request (a `--device` choice, or a [`DeviceRequest`] that also says whether
/// `gpu` may fall back to a software adapter: never `auto`), and a name for it (for the summary).
///
/// The software adapter (Mesa's lavapipe) is for testing the wgpu path where there is no GPU,
/// not for serving (it is ~20x slower than flex): a pipeline allows it with
/// `TANDEM_SOFTWARE_GPU=1` or `handler.allow_software_gpu()`.
pub fn select(device: impl Into<DeviceRequest>) -> Result<(Device, String), DeviceError> {
    let DeviceRequest {
        choice,
        software_gpu,
    } = device.into();
    match choice {
        DeviceChoice::Cpu => Ok(cpu()),
        DeviceChoice::Gpu => match gpu() {
            Ok(found) => Ok(found.clone()),
            Err(_) if software_gpu => software(),
            Err(why) => Err(DeviceError::NoGpu(why.clone())),
        },
        DeviceChoice::Auto => Ok(match gpu() {
            Ok(found) => found.clone(),
            Err(why) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| {
                    tracing::info!("--device auto: {why}; the models run on the CPU")
                });
                cpu()
            }
        }),
    }
}

/// The software adapter (opened once, by [`wgpu_software`]).
fn software() -> Result<(Device, String), DeviceError> {
    wgpu_software().map(|device| (device, "gpu (wgpu software adapter: lavapipe)".to_owned()))
}

fn cpu() -> (Device, String) {
    keep_large_buffers();
    (Device::flex(), "cpu (burn flex)".to_owned())
}

/// Keeps the CPU backend's large buffers in the heap (once per process, when a model first
/// loads on the CPU; `TANDEM_MALLOC_TUNING=0` leaves the allocator alone).
///
/// Every tensor op on flex allocates its output; glibc serves blocks above 128 KiB..32 MiB
/// (its adaptive threshold) with a fresh `mmap` and returns them with `munmap`, so each op of a
/// convolutional model at batch 16 faults its output's pages in again, and every fault on a
/// multi-threaded process shoots down TLBs on the other cores (a quarter of EfficientNet's time
/// in `perf`). Raising the mmap threshold to 512 MiB and the trim threshold to 1 GiB lets freed
/// buffers be reused from the heap, as PyTorch's CPU allocator caches them: Lite0 at batch 16
/// goes from 22 to 29 images/s model only (BENCHMARKS.md, `models`). The process keeps its
/// peak heap instead of returning it to the system between batches.
fn keep_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if std::env::var("TANDEM_MALLOC_TUNING").is_ok_and(|v| v == "0") {
                return;
            }
            // SAFETY: `mallopt` only sets allocator parameters; it is thread-safe in glibc.
            let set = unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 20) == 1
                    && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
            };
            if !set {
                tracing::debug!("mallopt refused the CPU backend's allocator settings");
            }
        });
    }
}

/// The GPU, found once: wgpu may be initialised only once per kind of device, and probing is slow.
fn gpu() -> &'static Result<(Device, String), NoGpu> {
    static GPU: OnceLock<Result<(Device, String), NoGpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        // A broken driver may panic while probing; that is "no GPU", not a crash.
        std::panic::catch_unwind(probe_gpu).unwrap_or(Err(NoGpu::DriverPanicked))
    })
}

fn probe_gpu() -> Result<(Device, String), NoGpu> {
    // Software rasterizers (Mesa's lavapipe) show up as wgpu's `Cpu` kind: not a GPU to serve on.
    let software = Device::wgpu(DeviceKind::Cpu);
    let gpus: Vec<Device> = Device::enumerate(DeviceType::Wgpu)
        .into_iter()
        .filter(|d| *d != software)
        .collect();
    if gpus.is_empty() {
        return Err(NoGpu::NoAdapter);
    }
    let kind = [
        DeviceKind::DiscreteGpu(0),
        DeviceKind::IntegratedGpu(0),
        DeviceKind::VirtualGpu(0),
    ]
    .into_iter()
    .find(|k| gpus.contains(&Device::wgpu(k.clone())))
    .unwrap_or(DeviceKind::DefaultDevice);
    let device = Device::wgpu_options()
        .device_kind(kind.clone())
        .init()
        .map_err(|e| NoGpu::Open(e.to_string()))?;
    let name = device
        .identity()
        .map(|i| format!("gpu (wgpu: {})", i.name))
        .unwrap_or_else(|| format!("gpu (wgpu {kind:?})"));
    Ok((device, name))
}

/// wgpu on a software adapter (Mesa's lavapipe): ~20x slower than flex, but it runs the wgpu
/// code path on machines without a GPU, so tests can check it there. Not chosen by `select`.
///
/// Opened once per process: Burn registers a wgpu runtime once per kind of device, so a second
/// `init` (another test, another replica) would fail with "Service already initialized".
pub fn wgpu_software() -> Result<Device, DeviceError> {
    static SOFTWARE: OnceLock<Result<Device, DeviceError>> = OnceLock::new();
    SOFTWARE
        .get_or_init(|| {
            std::panic::catch_unwind(|| Device::wgpu_options().device_kind(DeviceKind::Cpu).init())
                .map_err(|_| DeviceError::SoftwarePanicked)?
                .map_err(|e| DeviceError::Software(e.to_string()))
        })
        .clone()
}
