use super::{OpSpec, Role};

/// Runs a model on batches of the stream: one `PredictionResult` per element.
pub const SPEC: OpSpec = OpSpec {
    name: "run_inference",
    role: Role::Element,
    args: Some(1),
    kind: "Inference",
    check: "run_inference",
    usage: "run_inference(handler)",
    loads: true,
};
