//! Checks shared by the models' weight loaders.

use burn::store::ApplyResult;

use crate::Error;

/// Whether the tensors `load_from` applied fit the model: every parameter found and no error;
/// with `every_tensor_used`, also no tensor of the file left over. `what` names the weights in
/// the message ("the all-MiniLM-L6-v2 weights at PATH").
pub fn ensure_fits(result: &ApplyResult, what: &str, every_tensor_used: bool) -> Result<(), Error> {
    let unused = every_tensor_used && !result.unused.is_empty();
    if result.errors.is_empty() && result.missing.is_empty() && !unused {
        return Ok(());
    }
    Err(Error::DoNotFit {
        what: what.to_owned(),
        missing: result.missing.clone(),
        errors: result.errors.clone(),
        unused: unused.then(|| result.unused.clone()),
    })
}
