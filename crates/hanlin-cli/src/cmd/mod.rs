//! One module per subcommand.

pub mod admin;
pub mod bench;
pub mod chat;
pub mod constrained;
pub mod convert;
pub mod gateway;
pub mod generate;
pub mod inspect;
pub mod loaded;
pub mod models;
pub mod pull;
pub mod resolve;
pub mod serve;
pub mod tokenize;
