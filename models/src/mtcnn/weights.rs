//! Loading facenet-pytorch's weights (`{pnet,rnet,onet}.pt`, legacy torch format) into the three
//! networks, strictly: every parameter must be in the file and every tensor of the file used.

use std::path::Path;

use burn::store::{ModuleSnapshot, PytorchStore};
use burn::tensor::Device;

use super::{ONet, PNet, RNet};
use crate::Error;

/// Loads a facenet-pytorch state dict (`conv1.weight`, `prelu1.weight`, `dense4.weight`, ...)
/// into `model`: every parameter must be in the file and every tensor of the file used.
fn load_strict<M: ModuleSnapshot>(mut model: M, name: &str, path: &Path) -> Result<M, Error> {
    let what = format!("the MTCNN {name} weights");
    if !path.is_file() {
        return Err(Error::Missing {
            what,
            path: path.to_owned(),
        });
    }
    // PReLU's parameter is `weight` in PyTorch and `alpha` in Burn; the adapter transposes the
    // Linear weights `[out, in]` -> `[in, out]`.
    let mut store =
        PytorchStore::from_file(path).with_key_remapping(r"^(prelu\d+)\.weight$", "$1.alpha");
    let result = model.load_from(&mut store).map_err(|e| Error::Unloadable {
        what: what.clone(),
        path: path.to_owned(),
        source: e.into(),
    })?;
    crate::weights::ensure_fits(&result, &format!("{what} `{}`", path.display()), true)?;
    Ok(model)
}

impl PNet {
    /// Loads facenet-pytorch's `pnet.pt`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, Error> {
        load_strict(Self::new(device), "P-Net", path)
    }

    /// Loads the fetched `pnet.pt` ([`crate::fetch::PNET`]).
    pub fn pretrained(device: &Device) -> Result<Self, Error> {
        Self::load(&crate::fetch::PNET.path()?, device)
    }
}

impl RNet {
    /// Loads facenet-pytorch's `rnet.pt`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, Error> {
        load_strict(Self::new(device), "R-Net", path)
    }

    /// Loads the fetched `rnet.pt` ([`crate::fetch::RNET`]).
    pub fn pretrained(device: &Device) -> Result<Self, Error> {
        Self::load(&crate::fetch::RNET.path()?, device)
    }
}

impl ONet {
    /// Loads facenet-pytorch's `onet.pt`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, Error> {
        load_strict(Self::new(device), "O-Net", path)
    }

    /// Loads the fetched `onet.pt` ([`crate::fetch::ONET`]).
    pub fn pretrained(device: &Device) -> Result<Self, Error> {
        Self::load(&crate::fetch::ONET.path()?, device)
    }
}
