//! The ImageNet class names, and the most likely classes from the logits.

use serde::Serialize;

use super::CLASSES;
use crate::fetch::Asset;
use crate::Error;

/// The ImageNet class names in class order, from timm's synset list and synset→lemma table
/// (e.g. "tabby, tabby cat").
pub fn imagenet_labels() -> Result<Vec<String>, Error> {
    let read = |asset: Asset| -> Result<String, Error> {
        let path = asset.path()?;
        std::fs::read_to_string(&path).map_err(|source| Error::ReadAsset {
            what: asset.what,
            path,
            source,
        })
    };
    let synsets = read(crate::fetch::IMAGENET_SYNSETS)?;
    let lemmas = read(crate::fetch::IMAGENET_LEMMAS)?;
    let table: std::collections::HashMap<&str, &str> = lemmas
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(id, name)| (id.trim(), name.trim()))
        .collect();
    let labels: Vec<String> = synsets
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|id| {
            table
                .get(id)
                .map(|name| (*name).to_owned())
                .ok_or_else(|| Error::NoClassName {
                    synset: id.to_owned(),
                })
        })
        .collect::<Result<_, _>>()?;
    if labels.len() != CLASSES {
        return Err(Error::SynsetCount {
            found: labels.len(),
            expected: CLASSES,
        });
    }
    Ok(labels)
}

/// One of the most likely classes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Class {
    pub index: usize,
    pub label: String,
    pub probability: f32,
}

/// What the model says about one image: the `k` most likely classes (most likely first) and the
/// 1000 logits (for later stages: ensembles, calibration, comparisons).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Classification {
    pub top: Vec<Class>,
    pub logits: Vec<f32>,
}

/// The `k` most likely classes from logits (softmax in f64).
pub fn top_k(logits: &[f32], labels: &[String], k: usize) -> Vec<Class> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f64> = logits.iter().map(|&l| f64::from(l - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    order
        .into_iter()
        .take(k)
        .map(|index| Class {
            index,
            label: labels.get(index).cloned().unwrap_or_default(),
            probability: (exp[index] / total) as f32,
        })
        .collect()
}
