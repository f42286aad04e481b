//! One module per subcommand.

pub mod bench;
pub mod chat;
pub mod convert;
pub mod generate;
pub mod inspect;
pub mod loaded;
pub mod models;
pub mod pull;
pub mod resolve;
pub mod serve;
pub mod tokenize;
