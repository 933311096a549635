//! The feature schema: which features, in which order, computed how. A model is trained on one
//! schema and refuses to serve under another (its file carries the schema's hash).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::features::{FEATURE_COUNT, FEATURE_NAMES, RETURN_HORIZONS};

/// Name of the feature set.
pub const SCHEMA_NAME: &str = "candle-features";
/// Bumped whenever a feature's definition changes, not only its list: the hash covers the
/// names and the parameters, the version stands for what the code does with them.
pub const SCHEMA_VERSION: u32 = 1;

/// A feature schema: name, version, the ordered feature names and their hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub name: String,
    pub version: u32,
    pub features: Vec<String>,
    /// Lower-case hex SHA-256 (first 16 bytes) of name, version, names and return horizons.
    pub hash: String,
}

impl FeatureSchema {
    /// The schema this build computes.
    pub fn current() -> Self {
        let features: Vec<String> = FEATURE_NAMES.iter().map(|s| s.to_string()).collect();
        let hash = hash_of(SCHEMA_NAME, SCHEMA_VERSION, &features);
        Self { name: SCHEMA_NAME.to_string(), version: SCHEMA_VERSION, features, hash }
    }

    /// Whether a model trained on `self` can be served by this build; otherwise why not.
    pub fn check_current(&self) -> Result<(), String> {
        let current = Self::current();
        if self.hash == current.hash && self.features.len() == FEATURE_COUNT {
            return Ok(());
        }
        Err(format!(
            "feature schema mismatch: the model was trained on {} v{} (hash {}, {} features), this build computes {} v{} (hash {}, {} features)",
            self.name,
            self.version,
            self.hash,
            self.features.len(),
            current.name,
            current.version,
            current.hash,
            current.features.len()
        ))
    }
}

fn hash_of(name: &str, version: u32, features: &[String]) -> String {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(version.to_le_bytes());
    for f in features {
        h.update(f.as_bytes());
        h.update([0]);
    }
    for r in RETURN_HORIZONS {
        h.update((r as u32).to_le_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_the_names_and_version() {
        let a = FeatureSchema::current();
        assert_eq!(a, FeatureSchema::current());
        assert_eq!(a.hash.len(), 32);
        assert!(a.check_current().is_ok());
        let mut names = a.features.clone();
        names.swap(0, 1);
        assert_ne!(hash_of(SCHEMA_NAME, SCHEMA_VERSION, &names), a.hash);
        assert_ne!(hash_of(SCHEMA_NAME, SCHEMA_VERSION + 1, &a.features), a.hash);
        let other = FeatureSchema { hash: hash_of(SCHEMA_NAME, 99, &a.features), version: 99, ..a };
        let e = other.check_current().unwrap_err();
        assert!(e.contains("feature schema mismatch") && e.contains("v99"), "{e}");
    }
}
