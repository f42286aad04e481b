//! The multi-tenant gateway in front of `/v1`: tenants, API keys (hashed, shown once), prices
//! in integer micro-units, an append-only idempotent usage ledger, prepaid / subscription /
//! postpaid balances with money held up front, RPM/TPM limits shared through the database,
//! upstream OpenAI-compatible channels with failover, and an admin REST API.
//!
//! Storage is behind `hanlin-store`'s traits; this crate never writes SQL.

pub mod admin;
mod error;
pub mod gateway;
pub mod layer;
pub mod limits;
pub mod meter;
pub mod money;
pub mod ops;
mod report;
pub mod secret;
pub mod upstream;

pub use error::GatewayError;
pub use gateway::{Caller, Gateway, GatewayConfig};
pub use secret::{Cipher, Secret};
