//! The model registry (`model_versions`): versions of learned models with their figures and
//! files, in states `trained` → `deployed` → `retired`. Each state change is one UPDATE, so a
//! name never has two deployed versions, on either backend.

use super::Cells;
use crate::error::AuditError;
use crate::rows::{Kind, Val};
use crate::store::AuditStore;

/// A version as listed (its file apart: [`AuditStore::model_file`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelVersionRow {
    pub name: String,
    pub version: i64,
    pub family: String,
    /// JSON.
    pub parameters: String,
    pub feature_schema: String,
    pub feature_hash: String,
    pub train_from: i64,
    pub train_to: i64,
    pub test_from: i64,
    pub test_to: i64,
    pub test_accuracy: Option<f64>,
    /// JSON.
    pub metrics: String,
    pub state: String,
    pub created_by: String,
    pub created_at: i64,
    pub deployed_at: Option<i64>,
    pub deployed_by: Option<String>,
    pub forced: bool,
    pub size_bytes: i64,
}

/// A version to store; the registry gives it the next version number of its name.
#[derive(Debug, Clone)]
pub struct NewModelVersion<'a> {
    pub name: &'a str,
    pub family: &'a str,
    pub parameters: &'a str,
    pub feature_schema: &'a str,
    pub feature_hash: &'a str,
    pub train_from: i64,
    pub train_to: i64,
    pub test_from: i64,
    pub test_to: i64,
    pub test_accuracy: Option<f64>,
    pub metrics: &'a str,
    pub created_by: &'a str,
    pub created_at: i64,
    pub bytes: &'a [u8],
}

/// What a deploy or rollback changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deployment {
    /// The version deployed before (now retired), if any.
    pub previous: Option<i64>,
    pub deployed: i64,
}

const COLUMNS: &str = "name, version, family, parameters, feature_schema, feature_hash, train_from, train_to, \
                       test_from, test_to, test_accuracy, metrics, state, created_by, created_at, deployed_at, \
                       deployed_by, forced, size_bytes";
const KINDS: [Kind; 19] = [
    Kind::Text,
    Kind::Int,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::Int,
    Kind::OptFloat,
    Kind::Text,
    Kind::Text,
    Kind::Text,
    Kind::Int,
    Kind::OptInt,
    Kind::OptText,
    Kind::Int,
    Kind::Int,
];

fn version_of(cells: Vec<crate::rows::Cell>) -> Result<ModelVersionRow, AuditError> {
    let mut c = Cells::new("model_versions", cells);
    Ok(ModelVersionRow {
        name: c.text()?,
        version: c.int()?,
        family: c.text()?,
        parameters: c.text()?,
        feature_schema: c.text()?,
        feature_hash: c.text()?,
        train_from: c.int()?,
        train_to: c.int()?,
        test_from: c.int()?,
        test_to: c.int()?,
        test_accuracy: c.opt_float()?,
        metrics: c.text()?,
        state: c.text()?,
        created_by: c.text()?,
        created_at: c.int()?,
        deployed_at: c.opt_int()?,
        deployed_by: c.opt_text()?,
        forced: c.int()? != 0,
        size_bytes: c.int()?,
    })
}

impl AuditStore {
    /// Stores `v` as the next version of its name (state `trained`) and gives its number.
    pub async fn insert_model_version(&self, v: &NewModelVersion<'_>) -> Result<i64, AuditError> {
        let hex = hex::encode(v.bytes);
        let sql = "INSERT INTO model_versions (id, name, version, family, parameters, feature_schema, feature_hash, \
                   train_from, train_to, test_from, test_to, test_accuracy, metrics, state, created_by, created_at, \
                   forced, size_bytes, bytes) \
                   SELECT $1 || '/' || CAST(COALESCE(MAX(version), 0) + 1 AS TEXT), $1, COALESCE(MAX(version), 0) + 1, \
                   $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'trained', $12, $13, 0, $14, $15 \
                   FROM model_versions WHERE name = $1 RETURNING version";
        let binds = [
            Val::Text(v.name),
            Val::Text(v.family),
            Val::Text(v.parameters),
            Val::Text(v.feature_schema),
            Val::Text(v.feature_hash),
            Val::Int(v.train_from),
            Val::Int(v.train_to),
            Val::Int(v.test_from),
            Val::Int(v.test_to),
            Val::OptFloat(v.test_accuracy),
            Val::Text(v.metrics),
            Val::Text(v.created_by),
            Val::Int(v.created_at),
            Val::Int(v.bytes.len() as i64),
            Val::Text(&hex),
        ];
        let rows = self.select("model_versions", sql, &binds, &[Kind::Int]).await?;
        let mut c = Cells::new("model_versions", rows.into_iter().next().unwrap_or_default());
        c.int()
    }

    /// The versions of `name` (every model's when `None`), by name then version.
    pub async fn model_versions(&self, name: Option<&str>) -> Result<Vec<ModelVersionRow>, AuditError> {
        let rows = match name {
            Some(n) => {
                let sql = format!("SELECT {COLUMNS} FROM model_versions WHERE name = $1 ORDER BY version");
                self.select("model_versions", &sql, &[Val::Text(n)], &KINDS).await?
            }
            None => {
                let sql = format!("SELECT {COLUMNS} FROM model_versions ORDER BY name, version");
                self.select("model_versions", &sql, &[], &KINDS).await?
            }
        };
        rows.into_iter().map(version_of).collect()
    }

    pub async fn model_version(&self, name: &str, version: i64) -> Result<Option<ModelVersionRow>, AuditError> {
        let sql = format!("SELECT {COLUMNS} FROM model_versions WHERE name = $1 AND version = $2");
        let rows = self.select("model_versions", &sql, &[Val::Text(name), Val::Int(version)], &KINDS).await?;
        rows.into_iter().next().map(version_of).transpose()
    }

    /// The model file of a version; `Err(Shape)` when the stored hex does not decode.
    pub async fn model_file(&self, name: &str, version: i64) -> Result<Option<Vec<u8>>, AuditError> {
        let sql = "SELECT bytes FROM model_versions WHERE name = $1 AND version = $2";
        let rows = self.select("model_versions", sql, &[Val::Text(name), Val::Int(version)], &[Kind::Text]).await?;
        let Some(cells) = rows.into_iter().next() else { return Ok(None) };
        let text = Cells::new("model_versions", cells).text()?;
        hex::decode(text)
            .map(Some)
            .map_err(|e| AuditError::Shape { table: "model_versions", id: format!("{name}/{version}: bytes: {e}") })
    }

    /// The deployed version of every model that has one, by name.
    pub async fn deployed_models(&self) -> Result<Vec<(String, i64)>, AuditError> {
        let sql = "SELECT name, version FROM model_versions WHERE state = 'deployed' ORDER BY name";
        let rows = self.select("model_versions", sql, &[], &[Kind::Text, Kind::Int]).await?;
        rows.into_iter()
            .map(|r| {
                let mut c = Cells::new("model_versions", r);
                Ok((c.text()?, c.int()?))
            })
            .collect()
    }

    /// Deploys `version` of `name` (the version deployed before is retired), in one UPDATE.
    /// `None` when there is no such version.
    pub async fn deploy_model(
        &self,
        name: &str,
        version: i64,
        actor: &str,
        forced: bool,
        now: i64,
    ) -> Result<Option<Deployment>, AuditError> {
        let Some(row) = self.model_version(name, version).await? else { return Ok(None) };
        let previous = self.deployed_of(name).await?.filter(|v| *v != version);
        if row.state == "deployed" {
            return Ok(Some(Deployment { previous: None, deployed: version }));
        }
        let sql = "UPDATE model_versions SET \
                   state = CASE WHEN version = $2 THEN 'deployed' WHEN state = 'deployed' THEN 'retired' ELSE state END, \
                   deployed_at = CASE WHEN version = $2 THEN $3 ELSE deployed_at END, \
                   deployed_by = CASE WHEN version = $2 THEN $4 ELSE deployed_by END, \
                   forced = CASE WHEN version = $2 THEN $5 ELSE forced END \
                   WHERE name = $1 AND (version = $2 OR state = 'deployed')";
        let binds = [Val::Text(name), Val::Int(version), Val::Int(now), Val::Text(actor), Val::Int(i64::from(forced))];
        self.select("model_versions", sql, &binds, &[]).await?;
        Ok(Some(Deployment { previous, deployed: version }))
    }

    /// The deployed version of `name`.
    pub async fn deployed_of(&self, name: &str) -> Result<Option<i64>, AuditError> {
        let sql = "SELECT version FROM model_versions WHERE name = $1 AND state = 'deployed'";
        let rows = self.select("model_versions", sql, &[Val::Text(name)], &[Kind::Int]).await?;
        rows.into_iter().next().map(|r| Cells::new("model_versions", r).int()).transpose()
    }

    /// The version to roll back to: the retired version of `name` deployed most recently
    /// before the deployed one.
    pub async fn rollback_target(&self, name: &str) -> Result<Option<i64>, AuditError> {
        let sql = "SELECT version FROM model_versions WHERE name = $1 AND state = 'retired' \
                   AND deployed_at IS NOT NULL ORDER BY deployed_at DESC, version DESC LIMIT 1";
        let rows = self.select("model_versions", sql, &[Val::Text(name)], &[Kind::Int]).await?;
        rows.into_iter().next().map(|r| Cells::new("model_versions", r).int()).transpose()
    }
}
