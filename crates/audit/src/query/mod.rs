//! Read queries for the edge, one module per area: typed rows out, SQL kept here beside the
//! schema. Each query is written once with PostgreSQL placeholders (`$1`...) and runs on both
//! backends through `AuditStore::select`.

pub mod jobs;
pub mod market;
pub mod model_feedback;
pub mod models;
pub mod monitoring;
pub mod news;
pub mod trading;

use crate::error::AuditError;
use crate::rows::Cell;

/// Takes the cells of one row in order, refusing a cell of another kind with a precise error.
pub(crate) struct Cells {
    what: &'static str,
    cells: std::vec::IntoIter<Cell>,
}

impl Cells {
    pub(crate) fn new(what: &'static str, cells: Vec<Cell>) -> Cells {
        Cells { what, cells: cells.into_iter() }
    }

    fn bad(&self, expected: &str) -> AuditError {
        AuditError::Shape { table: self.what, id: format!("a column expected as {expected}") }
    }

    pub(crate) fn int(&mut self) -> Result<i64, AuditError> {
        match self.cells.next() {
            Some(Cell::Int(v)) => Ok(v),
            _ => Err(self.bad("integer")),
        }
    }

    pub(crate) fn opt_int(&mut self) -> Result<Option<i64>, AuditError> {
        match self.cells.next() {
            Some(Cell::OptInt(v)) => Ok(v),
            Some(Cell::Int(v)) => Ok(Some(v)),
            _ => Err(self.bad("optional integer")),
        }
    }

    pub(crate) fn float(&mut self) -> Result<f64, AuditError> {
        match self.cells.next() {
            Some(Cell::Float(v)) => Ok(v),
            _ => Err(self.bad("float")),
        }
    }

    pub(crate) fn opt_float(&mut self) -> Result<Option<f64>, AuditError> {
        match self.cells.next() {
            Some(Cell::OptFloat(v)) => Ok(v),
            Some(Cell::Float(v)) => Ok(Some(v)),
            _ => Err(self.bad("optional float")),
        }
    }

    pub(crate) fn text(&mut self) -> Result<String, AuditError> {
        match self.cells.next() {
            Some(Cell::Text(v)) => Ok(v),
            _ => Err(self.bad("text")),
        }
    }

    pub(crate) fn opt_text(&mut self) -> Result<Option<String>, AuditError> {
        match self.cells.next() {
            Some(Cell::OptText(v)) => Ok(v),
            Some(Cell::Text(v)) => Ok(Some(v)),
            _ => Err(self.bad("optional text")),
        }
    }
}
