//! The backup operator: one plan per BackupPolicy and night, the Backup and
//! Restore runs, and retention.

pub mod schedule;

/// Name of this controller in metrics, events and its field manager (`mutu-backup`).
pub const NAME: &str = "backup";
