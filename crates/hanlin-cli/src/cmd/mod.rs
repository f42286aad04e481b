//! One module per subcommand.

pub mod chat;
pub mod generate;
pub mod inspect;
pub mod models;
pub mod pull;
pub mod resolve;
pub mod tokenize;
