//! One module per subcommand.

pub mod chat;
pub mod generate;
pub mod inspect;
pub mod loaded;
pub mod models;
pub mod pull;
pub mod resolve;
pub mod tokenize;
