//! Operator commands over the bus's library functions.

pub mod ctl;
pub mod dlq;
pub mod streams;

/// Prints `value` as pretty JSON.
pub(crate) fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
