//! Burn models and their `ModelHandler`s arrive with the inference and models issues.
