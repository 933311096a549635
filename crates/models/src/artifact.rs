//! The model file: what a registry version stores in its `bytes` and the inference stage
//! loads. Layout: the magic `TFML`, a format version (u16, little-endian), the SHA-256 of the
//! payload, then the payload (MessagePack): feature schema, labels, parameters, seed, model.
//! A file cut short or changed in any byte fails its checksum and is refused with the reason.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::family::{Model, Params};
use crate::labels::LabelSpec;
use crate::schema::FeatureSchema;

const MAGIC: &[u8; 4] = b"TFML";
const FORMAT: u16 = 1;
const HEADER: usize = 4 + 2 + 32;

/// A trained model with everything needed to serve it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Artifact {
    pub schema: FeatureSchema,
    pub labels: LabelSpec,
    pub params: Params,
    pub seed: u64,
    pub model: Model,
}

/// Why a model file is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArtifactError {
    #[error("model file is {0} bytes, shorter than its {HEADER}-byte header")]
    TooShort(usize),
    #[error("not a tradeflow model file (magic {0:02x?}, expected \"TFML\")")]
    Magic([u8; 4]),
    #[error("model file format {found}, this build reads {FORMAT}")]
    Format { found: u16 },
    #[error("model file is corrupt: checksum {found} of the payload, header says {expected}")]
    Checksum { expected: String, found: String },
    #[error("model file payload does not decode: {0}")]
    Decode(String),
    #[error("model file cannot be encoded: {0}")]
    Encode(String),
    #[error("{0}")]
    Schema(String),
}

impl Artifact {
    pub fn to_bytes(&self) -> Result<Vec<u8>, ArtifactError> {
        let payload = rmp_serde::to_vec_named(self).map_err(|e| ArtifactError::Encode(e.to_string()))?;
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&payload));
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// The model of `bytes`, refused when the file is damaged or its feature schema is not the
    /// one this build computes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ArtifactError> {
        if bytes.len() < HEADER {
            return Err(ArtifactError::TooShort(bytes.len()));
        }
        let magic: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
        if &magic != MAGIC {
            return Err(ArtifactError::Magic(magic));
        }
        let format = u16::from_le_bytes([bytes[4], bytes[5]]);
        if format != FORMAT {
            return Err(ArtifactError::Format { found: format });
        }
        let payload = &bytes[HEADER..];
        let found = Sha256::digest(payload);
        if found.as_slice() != &bytes[6..HEADER] {
            return Err(ArtifactError::Checksum {
                expected: hex::encode(&bytes[6..HEADER]),
                found: hex::encode(found),
            });
        }
        let a: Artifact = rmp_serde::from_slice(payload).map_err(|e| ArtifactError::Decode(e.to_string()))?;
        a.schema.check_current().map_err(ArtifactError::Schema)?;
        if a.model.classes.as_slice() != a.labels.classes() {
            return Err(ArtifactError::Decode(format!(
                "the model's classes {:?} are not its labels' {:?}",
                a.model.classes,
                a.labels.classes()
            )));
        }
        Ok(a)
    }
}
